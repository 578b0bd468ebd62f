"""The ``clipseg`` masker on a tiny CLIPSeg saved with save_pretrained: mechanics, threshold, bad input."""
from __future__ import annotations

import re

import numpy as np
import pytest

from ecomforge.errors import ModelNotFound, NothingFound, RecipeError
from ecomforge.imaging.masks import fill_holes
from ecomforge_sam.clipseg import ClipSegMasker


@pytest.fixture(scope="module")
def tiny_clipseg(tmp_path_factory):
    """Folder of a tiny random-weight CLIPSeg (config, model.safetensors, processor files)."""
    from ecomforge.testing.tiny_clipseg import build_tiny_clipseg

    return build_tiny_clipseg(tmp_path_factory.mktemp("clipseg"))


def test_heat_map_mask_and_threshold(tiny_clipseg, reference):
    stage = ClipSegMasker({"model": str(tiny_clipseg), "text": "a striped bag", "min_score": 0.0,
                           "threshold": 0.01, "feather": 3}, device="cpu")
    probs = stage.heat_map(reference)
    assert probs.shape == (96, 128) and probs.dtype == np.float32 and 0 <= probs.min() <= probs.max() <= 1
    threshold = float(np.quantile(probs, 0.5))  # random weights: pick a level that splits the map
    stage = ClipSegMasker({"model": str(tiny_clipseg), "text": "a striped bag", "min_score": 0.0,
                           "threshold": threshold, "feather": 3}, device="cpu")
    mask = stage.mask(reference)
    assert mask.data.shape == (96, 128) and set(np.unique(mask.data)) <= {0, 255}
    assert np.array_equal(fill_holes(mask.data), mask.data) and mask.feather == 3
    assert (mask.data[probs >= threshold] == 255).all()  # every confident pixel is product (holes only add)
    assert mask.score >= threshold and mask.label.startswith("a striped bag (clipseg")
    peak = float(probs.max())
    strict = ClipSegMasker({"model": str(tiny_clipseg), "text": "a striped bag",
                            "min_score": min(1.0, peak + 0.01)}, device="cpu")
    with pytest.raises(NothingFound) as info:
        strict.mask(reference)
    reported = float(re.search(r"best CLIPSeg probability ([0-9.]+)", info.value.one_line())[1])
    assert reported == pytest.approx(peak, abs=1e-3)


def test_bad_text_and_missing_model(tmp_path, reference):
    with pytest.raises(RecipeError, match="text is empty"):
        ClipSegMasker({"text": "  "})
    with pytest.raises(ModelNotFound) as info:
        ClipSegMasker({"text": "a bag", "model": str(tmp_path / "not-there")}, device="cpu").mask(reference)
    assert f"CLIPSeg folder {tmp_path / 'not-there'} not found" in info.value.one_line()
    (tmp_path / "empty").mkdir()  # a folder without weights: transformers' error becomes ModelNotFound
    with pytest.raises(ModelNotFound) as info:
        ClipSegMasker({"text": "a bag", "model": str(tmp_path / "empty")}, device="cpu").mask(reference)
    assert "could not be loaded" in info.value.one_line() and "model.safetensors" in info.value.one_line()


def test_tiny_clipseg_builder_is_deterministic(tiny_clipseg, tmp_path):
    from ecomforge.testing.tiny_clipseg import build_tiny_clipseg

    again = build_tiny_clipseg(tmp_path / "again")
    assert (again / "model.safetensors").read_bytes() == (tiny_clipseg / "model.safetensors").read_bytes()
    assert (again / "tokenizer.json").read_text() == (tiny_clipseg / "tokenizer.json").read_text()
