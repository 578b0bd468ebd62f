"""SAM test settings; the tiny SAM and CLIP models come from the ecomforge pytest plugin."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def sam_clip_base(tiny_sam_checkpoint, tiny_open_clip):
    """A sam-clip config on the tiny models with a small, fast automatic mask generator.

    A 3x3 point grid decoded in one batch, no quality filtering (random weights never reach SAM's
    default IoU/stability bars) and min_score -1 (random CLIP scores are meaningless).
    """
    return {"model": str(tiny_sam_checkpoint), "clip_model": str(tiny_open_clip), "text": "a striped bag", "min_score": -1.0,
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
    from ecomforge_sam.embeddings import EMBEDDINGS
    from ecomforge_sam.proposals import PROPOSALS
    from ecomforge_sam.text_prompted import CROP_EMBEDDINGS

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
