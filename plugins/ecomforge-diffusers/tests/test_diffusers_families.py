"""Each supported model family loads its own pipeline class, read from the model, and generates."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from ecomforge.errors import InputError
from ecomforge.imaging.masks import erode
from ecomforge.testing.tiny_diffusers import build_tiny_pipeline
from ecomforge_diffusers import families
from ecomforge_diffusers.generators import SdImg2ImgGenerator, SdInpaintGenerator
from ecomforge_diffusers.loading import load_pipeline, model_family

from diffusers_testutil import FAST, changed_fraction, request_for


@pytest.fixture(scope="session")
def tiny_folders(ecomforge_tiny_dir):
    """kind -> tiny pipeline folder, for every family ecomforge drives."""
    kinds = ("txt2img", "sdxl", "sdxl-inpaint")
    return {k: build_tiny_pipeline(ecomforge_tiny_dir / f"fam-{k}", kind=k) for k in kinds}


CASES = [  # (generator, folder kind, the class it must load)
    (SdInpaintGenerator, "inpaint", "StableDiffusionInpaintPipeline"),
    (SdImg2ImgGenerator, "txt2img", "StableDiffusionImg2ImgPipeline"),
    (SdInpaintGenerator, "txt2img", "StableDiffusionInpaintPipeline"),
    (SdImg2ImgGenerator, "sdxl", "StableDiffusionXLImg2ImgPipeline"),
    (SdInpaintGenerator, "sdxl", "StableDiffusionXLInpaintPipeline"),
    (SdInpaintGenerator, "sdxl-inpaint", "StableDiffusionXLInpaintPipeline"),
]


@pytest.mark.parametrize("cls,kind,expected", CASES, ids=[f"{c.name}-{k}" for c, k, _ in CASES])
def test_family_loads_its_own_class_and_keeps_the_product(cls, kind, expected, tiny_folders, tiny_sd_inpaint):
    """The pipeline class follows model_index.json; a 2-step call repaints the background, product exact."""
    folder = tiny_sd_inpaint if kind == "inpaint" else tiny_folders[kind]
    gen = cls({"model": str(folder), **FAST, "strength": 0.8}, device="cpu")
    req = request_for(gen, seeds=(1, 2), mask_feather=2)
    out = gen.generate(req)
    loaded = load_pipeline(cls.task, str(folder), None, "cpu", "float32")
    assert type(loaded.pipe).__name__ == expected
    assert loaded.family == ("sdxl" if kind.startswith("sdxl") else "sd")
    core = erode(req.mask.data, 2) > 0
    for cand in out:
        assert cand.failed is None
        assert np.array_equal(cand.image[core], req.reference.image[core])
        assert changed_fraction(cand.image, req.reference.image, req.mask.data == 0) > 0.5
    assert changed_fraction(out[0].image, out[1].image, req.mask.data == 0) > 0.3


def test_img2img_refuses_an_inpainting_model_before_loading(tiny_folders):
    """A 9-channel UNet cannot be driven by img2img: one clear error naming the key."""
    gen = SdImg2ImgGenerator({"model": str(tiny_folders["sdxl-inpaint"]), **FAST}, device="cpu")
    for step in (gen.check, gen.setup):  # the pre-flight check already knows, from model_index.json alone
        with pytest.raises(InputError, match=r"generate\.config\.model: .* is an inpainting model; use it with sd-inpaint"):
            step()


def test_hub_repo_family_comes_from_its_model_index(monkeypatch):
    """A hub id is classified by its model_index.json, not by the plugin (SDXL by id loaded SD-1.5 before)."""
    from diffusers import DiffusionPipeline

    seen = []

    def fake_load_config(repo_id, **kwargs):  # the hub is out of reach: answer as it would
        seen.append((repo_id, kwargs.get("local_files_only")))
        return {"_class_name": "StableDiffusionXLInpaintPipeline"}

    monkeypatch.setattr(DiffusionPipeline, "load_config", staticmethod(fake_load_config))
    family, base = model_family("hub", None, "diffusers/stable-diffusion-xl-1.0-inpainting-0.1", None)
    assert family == families.Family("sdxl", True) and base is None
    assert family.pipeline_class("inpaint").__name__ == "StableDiffusionXLInpaintPipeline"
    assert seen and seen[0][0] == "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"
    with pytest.raises(InputError, match="FluxPipeline model; supported"):
        families.family_from_index({"_class_name": "FluxPipeline"}, "black-forest-labs/FLUX.1-dev")


def _header_only(path, tensors):
    """A .safetensors file holding the given (name -> shape) tensors, zero-filled."""
    header, offset = {}, 0
    for name, shape in tensors.items():
        size = int(np.prod(shape)) * 2
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return path


@pytest.mark.parametrize("keys,family,inpainting,base", [
    ({"conditioner.embedders.1.model.ln_final.weight": (4,)}, "sdxl", False, "stabilityai/stable-diffusion-xl-base-1.0"),
    ({"conditioner.embedders.1.model.ln_final.weight": (4,)}, "sdxl", True,
     "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"),
    ({"cond_stage_model.transformer.text_model.final_layer_norm.weight": (4,)}, "sd", True,
     "stable-diffusion-v1-5/stable-diffusion-inpainting"),
    ({"cond_stage_model.transformer.text_model.final_layer_norm.weight": (4,)}, "sd", False,
     "stable-diffusion-v1-5/stable-diffusion-v1-5"),
])
def test_single_file_family_from_its_keys(tmp_path, keys, family, inpainting, base):
    """A single file's family and inpainting-ness come from its keys and conv_in shape; the base follows."""
    conv_in = {"model.diffusion_model.input_blocks.0.0.weight": (8, 9 if inpainting else 4, 3, 3)}
    path = _header_only(tmp_path / "m.safetensors", {**conv_in, **keys})
    fam, sd2 = families.family_of_file(path)
    assert fam == families.Family(family, inpainting) and not sd2
    assert families.default_base(fam, sd2, path) == base


def test_single_file_sd2_and_non_sd_are_explained(tmp_path):
    """SD-2 needs an explicit base_config; a file without a UNet is not a Stable Diffusion checkpoint."""
    sd2 = _header_only(tmp_path / "v2.safetensors", {
        "model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3),
        "cond_stage_model.model.ln_final.weight": (4,)})
    fam, is_sd2 = families.family_of_file(sd2)
    with pytest.raises(InputError, match="SD-2 checkpoint; set base_config"):
        families.default_base(fam, is_sd2, sd2)
    other = _header_only(tmp_path / "lora.safetensors", {"lora_unet_x.lora_down.weight": (4, 4)})
    with pytest.raises(InputError, match="not a Stable Diffusion checkpoint"):
        families.family_of_file(other)
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(InputError, match="not a .safetensors file"):
        families.family_of_file(tmp_path / "junk.safetensors")
