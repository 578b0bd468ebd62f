"""A cancel lands inside a diffusers call: the per-step callback stops the denoising loop at its next step."""
from __future__ import annotations

import threading
import time

import pytest

from ecomforge.errors import Cancelled
from ecomforge.run import cancel
from ecomforge_diffusers.generators import SdInpaintGenerator

from diffusers_testutil import FAST, request_for

STEPS = 40


def test_a_cancel_from_another_thread_stops_a_long_inpaint_call_mid_loop(tiny_sd_inpaint):
    """40 denoising steps; cancelled after the third UNet call, the call ends within a step; the cached
    pipeline is left usable (its lock free, its own scheduler back)."""
    gen = SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST, "steps": STEPS}, device="cpu")
    request = request_for(gen, seeds=(1, 2))
    pipe = gen._pipeline(request.config).pipe
    scheduler = pipe.scheduler
    calls: list[int] = []
    hook = pipe.unet.register_forward_hook(lambda module, args, out: calls.append(1))
    token = cancel.CancelToken()
    at_cancel: list[int] = []

    def canceller():
        while len(calls) < 3:
            time.sleep(0.001)
        at_cancel.append(len(calls))
        token.cancel()

    try:
        threading.Thread(target=canceller, daemon=True).start()
        with cancel.scope(token), pytest.raises(Cancelled):
            gen.generate(request)
        assert len(calls) <= at_cancel[0] + 1 < STEPS  # one UNet call per step (CFG is batched): stopped mid-loop
        assert pipe.scheduler is scheduler
        calls.clear()
        out = gen.generate(request_for(gen, seeds=(1,), steps=2))  # no token: runs to the end
        assert len(out) == 1 and out[0].failed is None and len(calls) == 2
    finally:
        hook.remove()
