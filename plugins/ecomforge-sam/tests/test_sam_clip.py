"""The ``sam-clip`` masker end to end on tiny SAM + tiny CLIP: mechanics, thresholds, reuse, merging."""
from __future__ import annotations

import re

import numpy as np
import pytest

from ecomforge.errors import NothingFound, RecipeError
from ecomforge.imaging.masks import fill_holes
from ecomforge.testing import MaskerContract, make_reference
from ecomforge_sam.text_prompted import Ranked, SamClipMasker


@pytest.fixture
def masker(sam_clip_base):
    """Build a sam-clip masker on the tiny models with some settings changed."""
    return lambda **config: SamClipMasker({**sam_clip_base, **config}, device="cpu")


class TestSamClipContract(MaskerContract):
    @pytest.fixture(autouse=True)
    def _base(self, sam_clip_base):
        self.base = sam_clip_base

    def make_stage(self):
        return SamClipMasker(self.base, device="cpu")

    def make_reference(self):
        return make_reference(128, 96, seed=1)[0]  # the other tests' reference: proposals are cached

    def test_has_name_and_config(self) -> None:
        """The contract's check, with the required ``text`` given (its probe config has none, and
        pydantic reports the missing field before the unknown key)."""
        fields = SamClipMasker.Config.model_fields
        assert SamClipMasker.name == "sam-clip" and all(f.description for f in fields.values())
        with pytest.raises(RecipeError, match="unknown key"):
            SamClipMasker({"text": "a bag", "surely_not_a_setting": 1})


@pytest.mark.parametrize("mode", ["auto", "boxes"])
def test_text_prompt_gives_a_binary_mask_of_the_reference_size(masker, reference, mode):
    stage = masker(mode=mode, feather=4)
    mask = stage.mask(reference)
    assert mask.data.shape == (96, 128) and mask.data.dtype == np.uint8
    assert set(np.unique(mask.data)) <= {0, 255} and mask.data.any()
    assert np.array_equal(fill_holes(mask.data), mask.data)
    assert mask.feather == 4 and 0.0 <= mask.score <= 1.0
    assert mask.label.startswith(f"a striped bag ({mode}, ")
    clip_score = float(re.search(r"clip (-?[0-9.]+)", mask.label).group(1))
    assert mask.score == pytest.approx(max(0.0, clip_score), abs=1e-3)
    assert stage.identity() == {"sam": stage.session.sam.model_id, "clip": stage.clip.model_id}


@pytest.mark.parametrize("mode", ["auto", "boxes"])
def test_threshold_above_the_best_score_raises_nothing_found_with_it(masker, reference, mode):
    best = float(re.search(r"clip (-?[0-9.]+)", masker(mode=mode).mask(reference).label)[1])
    strict = masker(mode=mode, merge=False, min_score=min(1.0, best + 0.05))
    with pytest.raises(NothingFound) as info:
        strict.mask(reference)
    line = info.value.one_line()
    assert "nothing matches 'a striped bag'" in line and reference.source in line
    reported = float(re.search(r"best CLIP score (-?[0-9.]+)", line)[1])
    assert reported <= best + 1e-3 and reported >= best - 0.2  # the unmerged best region's own score
    assert masker(mode=mode, merge=False, min_score=reported - 0.01).mask(reference)


def test_several_texts_on_one_reference_encode_the_image_once(masker, reference, encoder_calls):
    texts = ["a striped bag", "a red cup", "a shoe"]
    stages = [masker(text=t) for t in texts]
    calls = encoder_calls(stages[0])
    clip = stages[0].clip
    crops_before = clip.images_encoded
    first = stages[0].mask(reference)
    crops_first = clip.images_encoded - crops_before
    texts_before = clip.text_batches
    masks = [s.mask(reference) for s in stages[1:]]
    assert len(calls) == 1  # SAM's image encoder ran once for three prompts
    # Proposal crops are embedded once too; the later prompts only embed their own text (and unions).
    assert clip.images_encoded - crops_before - crops_first <= len(masks)
    assert clip.text_batches - texts_before == len(masks)
    stages[1].mask(reference)  # the same text again: its embedding is cached as well
    assert clip.text_batches - texts_before == len(masks)
    assert all(m.data.shape == first.data.shape for m in masks)
    # boxes mode on the same reference reuses the same SAM embedding
    masker(mode="boxes").mask(reference)
    assert len(calls) == 1


def test_touching_regions_within_the_margin_are_merged(masker, reference):
    stage = masker(merge_margin=1.0)
    stage.ensure_setup()
    left, right, far = (np.zeros((96, 128), bool) for _ in range(3))
    left[20:70, 20:60] = True
    right[20:70, 60:100] = True  # shares an edge with ``left``
    far[85:95, 110:125] = True  # does not touch either
    chosen, parts = stage._merge(reference, [Ranked(left, 0.5), Ranked(right, 0.49), Ranked(far, 0.49)],
                                 stage.clip.encode_texts(["a striped bag"])[0])
    assert parts == 2 and np.array_equal(chosen.mask, left | right)
    narrow = masker(merge_margin=0.0)
    narrow.ensure_setup()
    chosen, parts = narrow._merge(reference, [Ranked(left, 0.5), Ranked(right, 0.49)], np.zeros(32, np.float32))
    assert parts == 1 and np.array_equal(chosen.mask, left)


@pytest.mark.parametrize("config, needle", [
    ({"text": "   "}, "text is empty"),
    ({"text": ""}, "text is empty"),
    ({"mode": "grid"}, "config.mode"),
    ({"window_scales": [0.01]}, "between 0.05 and 1"),
    ({"min_score": 2}, "config.min_score"),
    ({"topk": 3}, "did you mean 'top_k'?"),
])
def test_bad_settings_are_one_line_recipe_errors(masker, config, needle):
    with pytest.raises(RecipeError) as info:
        masker(**config)
    line = info.value.one_line()
    assert needle in line and "\n" not in line


def test_no_region_in_the_area_range_is_nothing_found(masker, reference):
    with pytest.raises(NothingFound, match="SAM proposed no region between min_area 0.9 and max_area 0.91"):
        masker(min_area=0.9, max_area=0.91, merge=False).mask(reference)
