"""Bad inputs give the project's errors in one line; broken outputs are flagged, OOM is survived."""
from __future__ import annotations

import re

import numpy as np
import pytest

from ecomforge.errors import InputError, ModelNotFound, RecipeError
from ecomforge_diffusers.generators import SdImg2ImgGenerator, SdInpaintGenerator

from diffusers_testutil import FAST, request_for


@pytest.fixture
def gen(tiny_sd_inpaint):
    return SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST}, device="cpu")


@pytest.mark.parametrize("fill", [0, 255])
def test_unusable_mask_is_an_input_error(gen, fill):
    """An all-black or all-white mask is rejected before any generation."""
    with pytest.raises(InputError, match="mask of sample-0: the mask (is empty|covers the whole image)"):
        gen.generate(request_for(gen, mask_data=np.full((64, 96), fill, np.uint8)))


@pytest.mark.parametrize("config,match", [
    ({"max_side": 100}, r"config\.max_side: .*multiple of 8"),
    ({"scheduler": "Eulr a"}, r"config\.scheduler: .*unknown scheduler 'Eulr a' \(did you mean 'Euler a'\?\)"),
    ({"steps": 0}, r"config\.steps"),
    ({"strength": 0}, r"config\.strength"),
    ({"strength": 1.5}, r"config\.strength"),
    ({"steps": 2, "strength": 0.3}, r"steps × strength"),
    ({"repaint": "everything"}, r"config\.repaint"),
    ({"stepz": 3}, r"config\.stepz: unknown key \(did you mean 'steps'\?\)"),
])
def test_bad_config_is_a_recipe_error(config, match):
    """Out-of-range or unknown settings fail at validation, naming the key."""
    with pytest.raises(RecipeError) as info:
        SdInpaintGenerator(config)
    assert re.search(match, info.value.one_line()), info.value.one_line()


def test_missing_hub_model_offline_names_what_to_pull(monkeypatch, tmp_path):
    """Offline, an absent hub model fails fast with the pull command and the folder to use."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ECOMFORGE_MODELS", str(tmp_path))
    gen = SdInpaintGenerator({"model": "acme/not-downloaded-inpainting"}, device="cpu")
    with pytest.raises(ModelNotFound) as info:
        gen.ensure_setup()
    line = info.value.one_line()
    assert "ecomforge models pull acme/not-downloaded-inpainting" in line
    assert str(tmp_path / "acme" / "not-downloaded-inpainting") in line


def test_pulled_model_is_found_by_its_hub_id(monkeypatch, tmp_path, tiny_sd_inpaint):
    """A model under $ECOMFORGE_MODELS/<hub id> (where `models pull` puts it) loads offline by id."""
    import shutil

    monkeypatch.setenv("ECOMFORGE_MODELS", str(tmp_path))
    shutil.copytree(tiny_sd_inpaint, tmp_path / "acme" / "tiny-inpaint")
    gen = SdInpaintGenerator({"model": "acme/tiny-inpaint", **FAST}, device="cpu")
    out = gen.generate(request_for(gen))[0]
    assert out.models["model"] == "acme/tiny-inpaint" and out.failed is None


@pytest.mark.parametrize("name,match", [
    ("missing.safetensors", "does not exist"),
    ("model.ckpt", "not a .safetensors file"),
    ("plainfolder", "without model_index.json"),
])
def test_bad_model_paths_are_input_errors(tmp_path, name, match):
    """Missing files, pickle checkpoints and non-pipeline folders are refused with the path named."""
    (tmp_path / "model.ckpt").write_bytes(b"not loaded")
    (tmp_path / "plainfolder").mkdir()
    gen = SdImg2ImgGenerator({"model": str(tmp_path / name)}, device="cpu")
    with pytest.raises(InputError, match=match):
        gen.ensure_setup()


def test_missing_lora_file_is_an_input_error(gen, tmp_path):
    """A LoRA path that does not exist names its key."""
    with pytest.raises(InputError, match=r"loras\[0\]\.path: .* does not exist"):
        gen.generate(request_for(gen, loras=[{"path": str(tmp_path / "nope.safetensors")}]))


def _broken_copy(src, dst, how):
    """A copy of the tiny pipeline whose VAE decoder gives NaN or black (a real broken model on disk)."""
    import torch
    from diffusers import StableDiffusionInpaintPipeline

    pipe = StableDiffusionInpaintPipeline.from_pretrained(src)
    with torch.no_grad():
        conv = pipe.vae.decoder.conv_out
        if how == "nan":
            conv.weight.fill_(float("nan"))
        else:
            conv.weight.zero_()
            conv.bias.fill_(-10.0)
    pipe.save_pretrained(dst, safe_serialization=True)
    return dst


@pytest.mark.parametrize("how,reason", [("nan", "NaN"), ("black", "black image")])
def test_broken_decoder_output_is_flagged_failed(tiny_sd_inpaint, tmp_path, how, reason):
    """NaN or all-black decodes come back as failed candidates with the reason, not as images to score."""
    broken = _broken_copy(tiny_sd_inpaint, tmp_path / how, how)
    gen = SdInpaintGenerator({"model": str(broken), **FAST}, device="cpu")
    out = gen.generate(request_for(gen, seeds=(1, 2)))
    assert all(c.failed and reason in c.failed for c in out)


def test_out_of_memory_halves_the_batch_then_saves_memory(gen):
    """A batch that runs out of memory is split; a single image then gets VAE tiling + attention slicing.

    The device here has memory to spare, so the pipeline's first calls are made to raise the
    exception torch raises on a full GPU; every call that goes through is the real tiny pipeline.
    """
    import torch

    pipe = gen._pipeline(gen.config).pipe
    real_call = type(pipe).__call__
    seen = []

    def flaky(self, *args, **kwargs):
        n = len(kwargs["generator"])
        seen.append((n, self.vae.use_tiling))
        if n > 1 or (len(seen) <= 3 and not self.vae.use_tiling):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_call(self, *args, **kwargs)

    expected = [gen.generate(request_for(gen, seeds=(s,)))[0].image for s in (1, 2)]
    type(pipe).__call__ = flaky
    try:
        out = gen.generate(request_for(gen, seeds=(1, 2)))
    finally:
        type(pipe).__call__ = real_call
    assert seen[0] == (2, False) and seen[-1][1] is True
    assert out[0].info["oom_retries"] == ["batch 2 -> 1", "vae tiling + attention slicing"]
    assert [c.seed for c in out] == [1, 2] and all(c.failed is None for c in out)
    assert not pipe.vae.use_tiling  # the cached pipeline is restored
    # tiling a 96x64 image is a no-op, so the retried images equal the ordinary ones
    assert all(np.abs(c.image.astype(int) - e.astype(int)).max() <= 2 for c, e in zip(out, expected))


def test_single_file_without_reachable_base_config_names_it(tmp_path, monkeypatch):
    """Offline, a single file whose component configs are not on disk asks for base_config."""
    from ecomforge.testing.tiny_diffusers import build_tiny_single_file

    monkeypatch.setenv("ECOMFORGE_MODELS", str(tmp_path / "models"))
    single = build_tiny_single_file(tmp_path / "m.safetensors", kind="img2img")
    gen = SdImg2ImgGenerator({"model": str(single)}, device="cpu")
    with pytest.raises(ModelNotFound, match=r"generate\.config\.base_config: model 'stable-diffusion-v1-5/"):
        gen.ensure_setup()
