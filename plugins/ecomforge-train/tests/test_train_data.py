"""Property tests of the augmentation and mask sampling, and of imagefolder parsing errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.errors import InputError
from ecomforge_train.data import Example, random_mask, read_imagefolder, sample_batch, to_tensors


@settings(max_examples=12, deadline=None)
@given(h=st.integers(8, 80), w=st.integers(8, 80), res=st.sampled_from([8, 16, 32]), scale=st.floats(0.05, 1.0),
       seed=st.integers(0, 2**31), prob=st.floats(0.0, 1.0), with_mask=st.booleans())
def test_any_image_gives_resolution_sized_batches_with_binary_masks(h, w, res, scale, seed, prob, with_mask):
    """Whatever the photo's shape and the crop scale: crops are res×res in [-1,1], masks are 0/1."""
    rng = np.random.default_rng(seed)
    mask = (rng.random((h, w)) > 0.5).astype(np.uint8) * 255 if with_mask else None
    items = to_tensors([Example(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "p", mask)], res)
    batch = sample_batch(items, 3, res, torch.Generator().manual_seed(seed), flip=True, crop_scale=scale,
                         inpaint=True, product_mask_prob=prob)
    assert batch["pixels"].shape == (3, 3, res, res) and batch["masks"].shape == (3, 1, res, res)
    assert float(batch["pixels"].abs().max()) <= 1.0
    assert set(torch.unique(batch["masks"]).tolist()) <= {0.0, 1.0}
    assert batch["prompts"] == ["p"] * 3


@settings(max_examples=20, deadline=None)
@given(size=st.integers(8, 128), seed=st.integers(0, 2**31))
def test_random_masks_are_binary_and_never_empty(size, seed):
    """A random mask always asks for something to be repainted."""
    m = random_mask(size, torch.Generator().manual_seed(seed))
    assert m.shape == (1, size, size) and set(torch.unique(m).tolist()) <= {0.0, 1.0} and float(m.sum()) > 0


@pytest.mark.parametrize("line,expected", [
    ("not json", "line 1"),
    (json.dumps({"text": "no file name"}), "line 1"),
    (json.dumps({"file_name": "missing.png", "text": "t"}), "missing.png"),
])
def test_bad_imagefolder_metadata_names_the_line(tmp_path, line, expected):
    """A broken metadata.jsonl is an InputError naming the file and the line or missing image."""
    (tmp_path / "metadata.jsonl").write_text(line + "\n")
    with pytest.raises(InputError, match=expected) as info:
        read_imagefolder(tmp_path)
    assert "metadata.jsonl" in info.value.one_line()
