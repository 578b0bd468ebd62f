"""sd-inpaint end to end through the tiny pipeline loaded from disk: seeds, batching, paste-back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecomforge.imaging.masks import dilate, erode
from ecomforge.testing import GeneratorContract
from ecomforge_diffusers.generators import SdInpaintGenerator

from diffusers_testutil import FAST, changed_fraction, request_for


@pytest.fixture
def gen(tiny_sd_inpaint):
    return SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST}, device="cpu")


class TestInpaintContract(GeneratorContract):
    """The shared generator contract, run on the real tiny pipeline."""

    sweep_point = {"guidance_scale": 12.0}

    @pytest.fixture(autouse=True)
    def _model(self, tiny_sd_inpaint):
        self.model = str(tiny_sd_inpaint)

    def make_stage(self):
        return SdInpaintGenerator({"model": self.model, **FAST}, device="cpu")


def test_seeds_differ_and_record_params(gen):
    """Different seeds give different backgrounds; params say exactly what was run."""
    a, b = gen.generate(request_for(gen, seeds=(1, 2)))
    assert changed_fraction(a.image, b.image, np.ones(a.image.shape[:2], bool)) > 0.3
    assert a.params["scheduler"] == "DDIM" and a.params["steps"] == 2 and a.params["strength"] == 1.0
    assert tuple(a.info["size"]) == (96, 64)
    # the model by name, never by local path; the weights by fingerprint
    assert a.models["model"] == Path(gen.config.model).name and a.models["weights"].startswith("model_index:")
    assert a.failed is None and a.plugin == "sd-inpaint"


def test_batch_equals_one_at_a_time(gen):
    """Seeds batched in one call give the pixels each seed gives alone (CPU: within ±2 levels)."""
    batch = gen.generate(request_for(gen, seeds=(3, 4, 5)))
    for cand in batch:
        alone = gen.generate(request_for(gen, seeds=(cand.seed,)))[0]
        diff = np.abs(alone.image.astype(int) - cand.image.astype(int))
        assert diff.max() <= 2, f"seed {cand.seed}: batched differs by {diff.max()}"


@pytest.mark.parametrize("dilate_px,feather_px", [(0, 0), (2, 6), (4, 4), (6, 2)])
def test_product_pixels_bit_exact(gen, dilate_px, feather_px):
    """Inside erode(mask, feather − dilate) the product is the photographed pixels, bit for bit."""
    req = request_for(gen, seeds=(7,), mask_dilate=dilate_px, mask_feather=feather_px, size=(120, 88))
    out = gen.generate(req)[0]
    ref, mask = req.reference.image, req.mask.data
    shrink = feather_px - dilate_px
    core = (erode(mask, shrink) if shrink > 0 else dilate(mask, -shrink)) > 0
    assert np.array_equal(out.image[core], ref[core])
    assert np.array_equal(out.mask, mask)
    # and the background really was regenerated
    far = dilate(mask, dilate_px + 2) == 0
    assert changed_fraction(out.image, ref, far) > 0.5


def test_repaint_product_keeps_background(gen):
    """repaint: product regenerates the product and keeps the background exact."""
    req = request_for(gen, seeds=(1,), repaint="product", mask_dilate=2, mask_feather=3)
    out = gen.generate(req)[0]
    ref, mask = req.reference.image, req.mask.data
    background = erode(255 - dilate(mask, 2), 3) > 0
    assert np.array_equal(out.image[background], ref[background])
    assert changed_fraction(out.image, ref, erode(mask, 2) > 0) > 0.5


def test_crop_to_mask_generates_around_the_product(gen):
    """crop_to_mask works on a crop at full model size; outside the crop nothing changes."""
    req = request_for(gen, seeds=(1,), crop_to_mask=True, crop_padding=4, size=(160, 120))
    out = gen.generate(req)[0]
    x0, y0, x1, y1 = out.info["crop"]
    assert (x0, y0) > (0, 0) and (x1, y1) < (160, 120)
    assert max(out.info["size"]) == 96
    outside = np.ones((120, 160), bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out.image[outside], req.reference.image[outside])
    inside = np.zeros_like(outside)
    inside[y0:y1, x0:x1] = True
    assert changed_fraction(out.image, req.reference.image, inside & (req.mask.data == 0)) > 0.5


def test_aspect_kept_and_size_back_to_reference(gen):
    """A non-multiple-of-8 reference is generated at an /8 size with its aspect, returned at its own size."""
    req = request_for(gen, seeds=(1,), size=(150, 50), max_side=120)
    out = gen.generate(req)[0]
    assert out.image.shape == (50, 150, 3)
    assert tuple(out.info["size"]) == (120, 40)


def test_seam_pass_and_color_match_touch_only_the_band(gen):
    """The seam pass and colour matching change pixels in the seam band only; the product stays exact."""
    from ecomforge.imaging.paste import seam_band

    base = request_for(gen, seeds=(2,), mask_dilate=2, mask_feather=4)
    plain = gen.generate(base)[0]
    refined = gen.generate(request_for(gen, seeds=(2,), mask_dilate=2, mask_feather=4, seam_pass=True,
                                       seam_width=6, color_match=True))[0]
    band = seam_band(base.mask.data, dilate_px=2, feather_px=4, width=6) > 0
    assert np.array_equal(plain.image[~band], refined.image[~band])
    assert changed_fraction(plain.image, refined.image, band) > 0.2
    core = erode(base.mask.data, 2) > 0
    assert np.array_equal(refined.image[core], base.reference.image[core])
    assert refined.info["seam_pass"]["strength"] == 0.4


@pytest.mark.parametrize("name", ["DDIM", "DPM++ 2M", "DPM++ 2M Karras", "Euler a", "UniPC", "LCM"])
def test_every_scheduler_runs_and_is_recorded(gen, name):
    """Each named sampler runs, gives a finite image and is the one recorded."""
    out = gen.generate(request_for(gen, seeds=(1,), scheduler=name, steps=3))[0]
    assert out.failed is None and out.params["scheduler"] == name
    # the cached pipeline keeps its own scheduler afterwards
    assert type(gen._pipeline(gen.config).pipe.scheduler).__name__ == "DDIMScheduler"


def test_default_size_is_the_models_native_resolution(tiny_sd_inpaint):
    """Without max_side the long side is the UNet's sample_size × 8 (128 for the tiny model, 512 for SD-1.5)."""
    gen = SdInpaintGenerator({"model": str(tiny_sd_inpaint), "steps": 2, "scheduler": "DDIM"}, device="cpu")
    out = gen.generate(request_for(gen, seeds=(1,), max_side=None))[0]
    assert tuple(out.info["size"]) == (128, 88) and out.image.shape == (64, 96, 3)

