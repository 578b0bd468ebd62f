"""Tiny SAM and CLIP models in their genuine on-disk formats, built once per test session."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")



@pytest.fixture(scope="session")
def tiny_sam(tmp_path_factory):
    """Path of a tiny SAM checkpoint saved as a state-dict .pth, like Meta's releases."""
    from ecomforge.testing.tiny_sam import build_tiny_sam

    return build_tiny_sam(tmp_path_factory.mktemp("sam"))


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """Folder of a tiny open_clip model (open_clip_config.json + safetensors)."""
    from ecomforge.testing.tiny_clip import build_tiny_open_clip

    return build_tiny_open_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="session")
def sam_clip_base(tiny_sam, tiny_clip):
    """A sam-clip config on the tiny models with a small, fast automatic mask generator.

    A 3x3 point grid decoded in one batch, no quality filtering (random weights never reach SAM's
    default IoU/stability bars) and min_score -1 (random CLIP scores are meaningless).
    """
    return {"model": str(tiny_sam), "clip_model": str(tiny_clip), "text": "a striped bag", "min_score": -1.0,
            "points_per_side": 3, "points_per_batch": 64, "pred_iou_thresh": 0.0,
            "stability_score_thresh": 0.0, "min_area": 0.0}


@pytest.fixture
def reference():
    """A 128x96 synthetic packshot."""
    from ecomforge.testing import make_reference

    return make_reference(128, 96, seed=1)[0]


@pytest.fixture
def encoder_calls():
    """Clear the embedding caches; ``watch(masker)`` then counts its SAM image-encoder forward passes."""
    from ecomforge_sam.text_prompted import CROP_EMBEDDINGS
    from ecomforge_sam.embeddings import EMBEDDINGS
    from ecomforge_sam.proposals import PROPOSALS

    for cache in (EMBEDDINGS, PROPOSALS, CROP_EMBEDDINGS):
        cache.clear()
    calls: list[int] = []
    handles = []

    def watch(masker) -> list[int]:
        masker.ensure_setup()
        encoder = masker.session.sam.model.image_encoder
        handles.append(encoder.register_forward_hook(lambda *args: calls.append(1)))
        return calls

    yield watch
    for handle in handles:
        handle.remove()
