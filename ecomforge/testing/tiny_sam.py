"""A tiny random-weight Segment Anything model, saved as SAM's genuine checkpoint (a state_dict file).

The architecture is SAM's own (``segment_anything.build_sam._build_sam``) with a 32-wide, 2-block
image encoder: 4.8 M parameters, so the real prompt encoder, mask decoder, predictor and automatic
mask generator all run in tests. Users' checkpoints (``sam_vit_b_01ec64.pth``...) are the same
format with bigger shapes, so a test that loads this file exercises the user's loading path.
"""
from __future__ import annotations

from pathlib import Path

TINY_SAM = {"encoder_embed_dim": 32, "encoder_depth": 2, "encoder_num_heads": 2, "encoder_global_attn_indexes": [1]}
"""The tiny encoder's hyper-parameters (the ``tiny`` model type of ecomforge-sam)."""


def tiny_sam_state_dict(seed: int = 0) -> dict:
    """The state dict of a freshly initialised tiny SAM, identical for the same seed."""
    import torch
    from segment_anything.build_sam import _build_sam

    # fork_rng keeps the caller's global RNG untouched while seeding SAM's initialisers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = _build_sam(**TINY_SAM)
    return {k: v.detach().clone().contiguous() for k, v in sam.state_dict().items()}


def build_tiny_sam(path: str | Path, *, seed: int = 0, fmt: str = "pth") -> Path:
    """Write a tiny SAM checkpoint (``fmt`` 'pth' as Meta ships them, or 'safetensors'); return the file.

    ``path`` is a folder (the file is ``sam_vit_tiny.<fmt>`` inside it) or a file name ending in
    ``.pth`` / ``.safetensors``.
    """
    import torch

    if fmt not in ("pth", "safetensors"):
        raise ValueError(f"fmt must be 'pth' or 'safetensors', got {fmt!r}")
    target = Path(path)
    if target.suffix not in (".pth", ".safetensors"):
        target.mkdir(parents=True, exist_ok=True)
        target = target / f"sam_vit_tiny.{fmt}"
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    state = tiny_sam_state_dict(seed)
    if target.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(target))
    else:
        torch.save(state, target)
    return target
