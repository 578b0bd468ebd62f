"""sd-img2img, single-file checkpoints and LoRAs, through the tiny models on disk."""
from __future__ import annotations

import re

import numpy as np
import pytest

from ecomforge.imaging.masks import erode
from ecomforge.models import MODEL_CACHE
from ecomforge.testing.tiny_diffusers import build_tiny_lora, build_tiny_single_file
from ecomforge_diffusers.generators import SdImg2ImgGenerator, SdInpaintGenerator

from diffusers_testutil import FAST, changed_fraction, request_for


@pytest.fixture
def gen(tiny_sd_img2img):
    return SdImg2ImgGenerator({"model": str(tiny_sd_img2img), **FAST, "strength": 0.5}, device="cpu")


def test_img2img_restyles_and_pastes_product_back(gen):
    """The whole reference is restyled; the product (eroded by the feather) is the photographed pixels."""
    req = request_for(gen, seeds=(1, 2), mask_feather=3)
    a, b = gen.generate(req)
    ref, mask = req.reference.image, req.mask.data
    core = erode(mask, 3) > 0
    for cand in (a, b):
        assert np.array_equal(cand.image[core], ref[core])
        assert changed_fraction(cand.image, ref, mask == 0) > 0.5
    assert changed_fraction(a.image, b.image, mask == 0) > 0.3
    assert a.params["strength"] == 0.5 and a.plugin == "sd-img2img"


def test_img2img_without_paste_back_changes_the_product(gen):
    """paste_back: false leaves the restyled product as generated."""
    req = request_for(gen, seeds=(1,), paste_back=False)
    out = gen.generate(req)[0]
    assert changed_fraction(out.image, req.reference.image, req.mask.data > 0) > 0.5


def test_img2img_seam_pass_keeps_product_exact(gen):
    """The seam pass of img2img borrows an inpainting view of the same modules; the product stays exact."""
    req = request_for(gen, seeds=(1,), seam_pass=True, mask_feather=2)
    out = gen.generate(req)[0]
    core = erode(req.mask.data, 2) > 0
    assert np.array_equal(out.image[core], req.reference.image[core])
    assert "seam_pass" in out.info


def test_single_file_checkpoint_matches_its_folder(tiny_root, tiny_sd_inpaint):
    """An original-layout .safetensors file loads via from_single_file and gives the folder's pixels."""
    single = build_tiny_single_file(tiny_root / "tiny-inpaint.safetensors", kind="inpaint")
    by_file = SdInpaintGenerator({"model": str(single), "base_config": str(single) + ".config", **FAST},
                                 device="cpu")
    by_folder = SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST}, device="cpu")
    a = by_file.generate(request_for(by_file, seeds=(4,)))[0]
    b = by_folder.generate(request_for(by_folder, seeds=(4,)))[0]
    assert np.array_equal(a.image, b.image)
    assert a.models["weights"].startswith("a1111-hash:")
    assert any(k[2] == str(single) for k in MODEL_CACHE.keys())


@pytest.mark.parametrize("fmt", ["diffusers", "kohya"])
def test_lora_changes_output_and_unloads_exactly(tiny_root, tiny_sd_inpaint, fmt):
    """A LoRA (diffusers or kohya keys) changes the image; afterwards the cached pipeline is restored exactly."""
    lora = build_tiny_lora(tiny_sd_inpaint, tiny_root / f"lora-{fmt}.safetensors", format=fmt)
    gen = SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST}, device="cpu")
    before = gen.generate(request_for(gen, seeds=(5,)))[0]
    with_lora = gen.generate(request_for(gen, seeds=(5,), loras=[{"path": str(lora), "scale": 1.0}]))[0]
    half = gen.generate(request_for(gen, seeds=(5,), loras=[{"path": str(lora), "scale": 0.3}]))[0]
    after = gen.generate(request_for(gen, seeds=(5,)))[0]
    background = before.mask == 0
    assert changed_fraction(before.image, with_lora.image, background) > 0.3
    assert not np.array_equal(with_lora.image, half.image)  # the per-adapter scale is applied
    assert np.array_equal(before.image, after.image)
    assert with_lora.models[f"lora:{lora.name}"].startswith("a1111-hash:")
    assert not gen._pipeline(gen.config).pipe.get_list_adapters()


def test_two_loras_with_their_own_scales(tiny_root, tiny_sd_inpaint):
    """Two adapters apply together; swapping their scales changes the result."""
    a = build_tiny_lora(tiny_sd_inpaint, tiny_root / "lora-a.safetensors", seed=1)
    b = build_tiny_lora(tiny_sd_inpaint, tiny_root / "lora-b.safetensors", seed=2, format="kohya")
    gen = SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST}, device="cpu")
    one = gen.generate(request_for(gen, seeds=(1,), loras=[{"path": str(a), "scale": 1.0},
                                                          {"path": str(b), "scale": 0.2}]))[0]
    two = gen.generate(request_for(gen, seeds=(1,), loras=[{"path": str(a), "scale": 0.2},
                                                          {"path": str(b), "scale": 1.0}]))[0]
    assert not np.array_equal(one.image, two.image)
    assert len([k for k in one.models if k.startswith("lora:")]) == 2
    # the infotext names them as A1111 does: <lora:name:weight> tags and their addnet hashes, no paths
    from ecomforge.imaging.infotext import candidate_text

    rec = {"id": "x", "prompt": "a product photo", "negative_prompt": ""}
    text = candidate_text(rec, one, "minimal")["parameters"]
    assert text.splitlines()[0] == "a product photo <lora:lora-a:1> <lora:lora-b:0.2>"
    assert re.search(r'Lora hashes: "lora-a: [0-9a-f]{12}, lora-b: [0-9a-f]{12}"', text)
    assert str(tiny_root) not in text


def test_ip_adapter_changes_output_and_unloads_exactly(tiny_root, tiny_sd_inpaint):
    """An IP-Adapter in h94's layout conditions on the reference; afterwards the pipeline is restored exactly."""
    from ecomforge.testing.tiny_diffusers import build_tiny_ip_adapter

    ip = build_tiny_ip_adapter(tiny_sd_inpaint, tiny_root / "ip-adapter")
    gen = SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST}, device="cpu")
    before = gen.generate(request_for(gen, seeds=(3,)))[0]
    strong = gen.generate(request_for(gen, seeds=(3,), ip_adapter=str(ip), ip_adapter_scale=1.0))[0]
    weak = gen.generate(request_for(gen, seeds=(3,), ip_adapter=str(ip), ip_adapter_scale=0.2))[0]
    after = gen.generate(request_for(gen, seeds=(3,)))[0]
    assert changed_fraction(before.image, strong.image, before.mask == 0) > 0.3
    assert not np.array_equal(strong.image, weak.image)
    assert np.array_equal(before.image, after.image)
    assert strong.models["ip_adapter:ip-adapter.safetensors"].startswith("a1111-hash:")
    assert gen._pipeline(gen.config).pipe.image_encoder is None
