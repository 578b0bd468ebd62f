"""The tiny model builders: genuine formats, deterministic, cached."""
from __future__ import annotations

import hashlib
import json

import pytest

from ecomforge.testing.tiny_diffusers import build_tiny_lora, build_tiny_pipeline, build_tiny_single_file


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pipeline_folder_is_deterministic_and_cached(tmp_path, tiny_sd_inpaint):
    """Same seed → identical weights; another seed → different; a second call reuses the folder."""
    again = build_tiny_pipeline(tmp_path / "again", kind="inpaint", seed=0)
    other = build_tiny_pipeline(tmp_path / "other", kind="inpaint", seed=1)
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert _sha(again / weights) == _sha(tiny_sd_inpaint / weights)
    assert _sha(other / weights) != _sha(tiny_sd_inpaint / weights)
    mtime = (again / weights).stat().st_mtime_ns
    assert build_tiny_pipeline(tmp_path / "again", kind="inpaint", seed=0) == tmp_path / "again"
    assert (again / weights).stat().st_mtime_ns == mtime
    index = json.loads((tiny_sd_inpaint / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInpaintPipeline"
    assert json.loads((tiny_sd_inpaint / "unet" / "config.json").read_text())["in_channels"] == 9
    assert not list(tiny_sd_inpaint.rglob("*.bin"))  # safetensors only


def test_single_file_uses_the_original_key_layout(tmp_path):
    """The checkpoint has SD's ldm prefixes, as files from civitai or the original repos do."""
    from safetensors import safe_open

    path = build_tiny_single_file(tmp_path / "tiny.safetensors", kind="img2img")
    with safe_open(str(path), "pt") as fh:
        keys = list(fh.keys())
    assert any(k.startswith("model.diffusion_model.input_blocks.") for k in keys)
    assert any(k.startswith("first_stage_model.decoder.up.") for k in keys)
    assert "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight" in keys


@pytest.mark.parametrize("fmt,prefix", [("diffusers", "unet."), ("kohya", "lora_unet_")])
def test_lora_keys_and_nonzero_b(tmp_path, tiny_sd_inpaint, fmt, prefix):
    """LoRA files carry their format's keys and non-zero up (B) matrices."""
    from safetensors.torch import load_file

    state = load_file(str(build_tiny_lora(tiny_sd_inpaint, tmp_path / "l.safetensors", format=fmt)))
    assert all(k.startswith(prefix) for k in state)
    ups = [v for k, v in state.items() if "up" in k.split(".")[-2]]
    assert ups and all(float(v.abs().sum()) > 0 for v in ups)
