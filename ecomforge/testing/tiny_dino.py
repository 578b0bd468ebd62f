"""A tiny random-weight DINOv2, saved as a transformers folder (config, safetensors, image processor).

``Dinov2Model.save_pretrained`` writes ``config.json`` + ``model.safetensors`` and the
``BitImageProcessor`` writes ``preprocessor_config.json`` — exactly what ``facebook/dinov2-small``
holds on the hub — so ``AutoModel.from_pretrained(folder)`` / ``AutoImageProcessor.from_pretrained``
load it through the user's path. 32 wide, 2 layers, 8-px patches on 56-px inputs: 49 tokens.
"""
from __future__ import annotations

from pathlib import Path

TINY_DINO = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
    "image_size": 56, "patch_size": 8,
}
"""The tiny DINOv2's config values (the rest are Dinov2Config defaults)."""

TINY_DINO_PROCESSOR = {
    "do_resize": True, "size": {"shortest_edge": 64}, "resample": 3,
    "do_center_crop": True, "crop_size": {"height": 56, "width": 56},
    "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "do_convert_rgb": True,
}
"""facebook/dinov2's preprocessing (resize, centre crop, ImageNet normalisation) scaled to 56 px."""


def build_tiny_dinov2(path: str | Path, *, seed: int = 0) -> Path:
    """Write a random-weight DINOv2 folder (model + image processor) at ``path``; return the folder."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):  # seed the initialisers without touching the caller's RNG
        torch.manual_seed(seed)
        model = Dinov2Model(Dinov2Config(**TINY_DINO))
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    BitImageProcessor(**TINY_DINO_PROCESSOR).save_pretrained(folder)
    return folder
