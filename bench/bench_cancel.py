"""What cooperative cancel costs when nobody cancels, and how soon a cancel lands inside a diffusers call.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_cancel.py [--steps 30] [--repeat 3]

1. ``ecomforge.run.cancel.check()`` with no token set, and with a live (not cancelled) token, each as a
   ratio to an empty Python function call: the price every loop pays for being cancellable.
2. The tiny random-weight inpainting pipeline (``ecomforge.testing``) run for ``--steps`` denoising
   steps; a second thread cancels after the third step. Reported: the time from ``cancel()`` to the
   call's end as a ratio to one step (about 1 means it lands within one step), and the call's time as
   a share of the uncancelled one. Results: printed, and written to bench/results/cancel.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def check_cost(n: int = 1_000_000) -> dict[str, float]:
    """check()'s cost without and with a live token, as ratios to an empty call."""
    from ecomforge.run import cancel

    def empty() -> None:
        return None

    base = min(timeit.repeat(empty, number=n, repeat=5))
    idle = min(timeit.repeat(cancel.check, number=n, repeat=5))
    with cancel.scope(cancel.CancelToken()):
        live = min(timeit.repeat(cancel.check, number=n, repeat=5))
    return {"empty_call_ns": base / n * 1e9, "no_token_ratio": idle / base, "live_token_ratio": live / base}


def diffusers_latency(steps: int, repeat: int) -> dict[str, float]:
    """Cancel → end of a tiny SD inpaint call, in steps; the cancelled call's share of a full one."""
    from ecomforge.errors import Cancelled
    from ecomforge.run import cancel
    from ecomforge.testing.tiny_diffusers import build_tiny_pipeline
    from ecomforge_diffusers.generators import SdInpaintGenerator

    from diffusers_testutil import FAST, request_for  # the diffusers plugin's test helpers

    folder = build_tiny_pipeline(Path(tempfile.mkdtemp()) / "sd-inpaint", kind="inpaint")
    gen = SdInpaintGenerator({"model": str(folder), **FAST, "steps": steps}, device="cpu")
    request = request_for(gen, seeds=(1, 2))
    pipe = gen._pipeline(request.config).pipe
    stamps: list[float] = []
    hook = pipe.unet.register_forward_hook(lambda *a: stamps.append(time.perf_counter()))
    gen.generate(request)  # warm-up
    t0 = time.perf_counter()
    stamps.clear()
    gen.generate(request)
    full = time.perf_counter() - t0
    step = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
    lands, shares = [], []
    for _ in range(repeat):
        stamps.clear()
        token, at = cancel.CancelToken(), []

        def canceller(token: cancel.CancelToken, at: list[float]) -> None:
            while len(stamps) < 3:
                time.sleep(0.0005)
            at.append(time.perf_counter())
            token.cancel()

        threading.Thread(target=canceller, args=(token, at), daemon=True).start()
        t0 = time.perf_counter()
        try:
            with cancel.scope(token):
                gen.generate(request)
        except Cancelled:
            pass
        end = time.perf_counter()
        lands.append((end - at[0]) / step)
        shares.append((end - t0) / full)
    hook.remove()
    return {"steps": steps, "step_s": step, "full_call_s": full,
            "cancel_to_end_in_steps": statistics.median(lands), "cancelled_call_share": statistics.median(shares)}


def main() -> None:
    """Run both measurements and write bench/results/cancel.json."""
    import sys

    sys.path.insert(0, str(ROOT / "plugins" / "ecomforge-diffusers" / "tests"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    out = {"check": check_cost(), "diffusers": diffusers_latency(args.steps, args.repeat)}
    print(json.dumps(out, indent=2))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "cancel.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
