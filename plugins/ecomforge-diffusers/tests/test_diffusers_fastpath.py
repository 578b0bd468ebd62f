"""The GPU fast path's code, exercised on CPU: precisions and the safe VAE, a fixed VAE, the TAESD preview,
regional compile."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ecomforge.imaging.masks import erode
from ecomforge.testing.tiny_diffusers import build_tiny_taesd
from ecomforge_diffusers import fastpath
from ecomforge_diffusers.generators import SdInpaintGenerator

from diffusers_testutil import FAST, changed_fraction, request_for


@pytest.mark.parametrize("device,bf16,expected", [
    ("cuda", True, torch.bfloat16), ("cuda:1", False, torch.float16), ("mps", False, torch.float16),
    ("cpu", True, torch.float32),
])
def test_auto_precision_by_device(monkeypatch, device, bf16, expected):
    """auto: bfloat16 where the GPU has it, float16 on older GPUs and MPS, float32 on CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert fastpath.torch_dtype("auto", device) == expected
    assert fastpath.vae_dtype(torch.float16, False) == torch.float32  # SD's VAE overflows in float16
    assert fastpath.vae_dtype(torch.float16, True) == torch.float16  # unless it is an fp16-fixed one
    assert fastpath.vae_dtype(torch.bfloat16, False) == torch.bfloat16


@pytest.mark.parametrize("dtype,vae_dtype,fixed", [("float16", torch.float32, False),
                                                   ("bfloat16", torch.bfloat16, False),
                                                   ("float16", torch.float16, True)])
def test_half_precision_keeps_the_vae_safe_and_generates(tiny_sd_inpaint, dtype, vae_dtype, fixed):
    """Half-precision UNet, VAE as the rule says (a given fixed VAE may stay half); the image is usable."""
    extra = {"vae": str(tiny_sd_inpaint / "vae")} if fixed else {}
    gen = SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST, "dtype": dtype, **extra}, device="cpu")
    req = request_for(gen, seeds=(1,), mask_feather=2)
    cand = gen.generate(req)[0]
    pipe = gen._pipeline(gen.config).pipe
    assert pipe.unet.dtype == getattr(torch, dtype) and pipe.vae.dtype == vae_dtype
    assert cand.failed is None and cand.info["reproduce"]["dtype"] == dtype
    core = erode(req.mask.data, 2) > 0
    assert np.array_equal(cand.image[core], req.reference.image[core])
    assert cand.info["speed"]["sdpa"] is True and ("vae" in cand.info["speed"]) == fixed


def test_tiny_autoencoder_preview_decodes_instead(tiny_sd_inpaint, ecomforge_tiny_dir):
    """preview_vae decodes with TAESD: other pixels than the full VAE, the product still exact."""
    taesd = build_tiny_taesd(ecomforge_tiny_dir / "taesd")
    full = SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST}, device="cpu")
    quick = SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST, "preview_vae": str(taesd)}, device="cpu")
    a = full.generate(request_for(full, seeds=(1,), mask_feather=2))[0]
    req = request_for(quick, seeds=(1,), mask_feather=2)
    b = quick.generate(req)[0]
    assert b.info["speed"]["preview_vae"] == str(taesd)
    assert changed_fraction(a.image, b.image, req.mask.data == 0) > 0.5
    core = erode(req.mask.data, 2) > 0
    assert np.array_equal(b.image[core], req.reference.image[core])
    assert not hasattr(full._pipeline(full.config).pipe, "ecomforge_preview_vae")  # separate cache entries


def test_regional_compile_marks_each_repeated_block(tiny_sd_inpaint):
    """regional compile wraps every transformer block (compiled lazily, on first call on the GPU)."""
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention import BasicTransformerBlock

    unet = UNet2DConditionModel.from_pretrained(str(tiny_sd_inpaint / "unet"))
    assert fastpath.compile_unet(unet, "regional") == "regional"
    blocks = [m for m in unet.modules() if isinstance(m, BasicTransformerBlock)]
    assert blocks and all(getattr(m, "_compiled_call_impl", None) is not None for m in blocks)
    assert fastpath.compile_unet(unet, "off") == "off"
