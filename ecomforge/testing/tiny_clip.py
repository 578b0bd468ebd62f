"""A tiny random-weight open_clip model, saved in the folder layout open_clip itself loads.

The folder holds ``open_clip_config.json`` ({"model_cfg": ..., "preprocess_cfg": ...}) and
``open_clip_model.safetensors`` — the layout of an hf-hub open_clip repo, which open_clip reads
with ``create_model_and_transforms("local-dir:<folder>")``. Real models downloaded from the hub
(``laion/CLIP-ViT-B-32-laion2B-s34B-b79K`` ...) are the same layout with bigger shapes, so a test
that loads this folder exercises the user's loading path. The tokenizer is open_clip's bundled
byte-level BPE (no ``hf_tokenizer_name`` in the config), so it works offline.
"""
from __future__ import annotations

import json
from pathlib import Path

TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
"""The tiny model's open_clip ``model_cfg`` (a ViT-B-32-style CLIP, 32 wide, 2 blocks per tower)."""

TINY_CLIP_PREPROCESS = {
    "size": 64,
    "mode": "RGB",
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
    "fill_color": 0,
}
"""OpenAI CLIP's normalisation at the tiny model's 64 px input size."""

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"


def tiny_clip_state_dict(seed: int = 0, model_cfg: dict | None = None) -> dict:
    """The state dict of a freshly initialised open_clip CLIP, identical for the same seed."""
    import open_clip
    import torch

    cfg = json.loads(json.dumps(model_cfg or TINY_CLIP_CFG))  # deep copy: open_clip mutates dicts
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(seed)
        model = open_clip.CLIP(**cfg)
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def build_tiny_open_clip(path: str | Path, *, seed: int = 0, model_cfg: dict | None = None,
                         image_size: int | None = None) -> Path:
    """Write a random-weight open_clip folder (config + safetensors) at ``path``; return the folder.

    ``model_cfg`` replaces the tiny architecture (e.g. ``open_clip.get_model_config("ViT-B-16")``
    for a full-size random model used in benchmarks); ``image_size`` defaults to its vision size.
    Rebuilding the same folder with the same arguments gives byte-identical files.
    """
    from safetensors.torch import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = json.loads(json.dumps(model_cfg or TINY_CLIP_CFG))
    size = int(image_size or cfg["vision_cfg"]["image_size"])
    preprocess = {**TINY_CLIP_PREPROCESS, "size": size}
    config_text = json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess}, indent=2, sort_keys=True)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    # Idempotent: an identical config means the weights (a pure function of it and the seed) match too.
    marker = folder / ".tiny_clip_seed"
    if (config_path.is_file() and weights_path.is_file() and marker.is_file()
            and config_path.read_text() == config_text and marker.read_text() == str(seed)):
        return folder
    save_file(tiny_clip_state_dict(seed, cfg), str(weights_path), metadata={"format": "pt"})
    config_path.write_text(config_text)
    marker.write_text(str(seed))
    return folder
