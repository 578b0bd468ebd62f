"""The ``sam`` masker: point, box and rough-mask prompts, embedding reuse, and bad prompts."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ecomforge.errors import InputError, NothingFound, RecipeError
from ecomforge.imaging.masks import fill_holes
from ecomforge.testing import MaskerContract, make_reference
from ecomforge_sam.prompted import SamMasker, rough_mask_logits


def masker(tiny_sam_checkpoint, **config) -> SamMasker:
    return SamMasker({"model": str(tiny_sam_checkpoint), **config}, device="cpu")


class TestSamMaskerContract(MaskerContract):
    @pytest.fixture(autouse=True)
    def _model(self, tiny_sam_checkpoint):
        self.model = tiny_sam_checkpoint

    def make_stage(self):
        return masker(self.model, points=[[48, 32]])


@pytest.mark.parametrize("prompt", [
    {"points": [[64, 48]]},
    {"points": [[64, 48], [5, 5]], "labels": [1, 0]},
    {"box": [30, 20, 100, 80]},
    {"box": [30, 20, 100, 80], "points": [[64, 48]]},
], ids=["point", "point+background", "box", "box+point"])
def test_prompts_give_a_refined_binary_mask(tiny_sam_checkpoint, reference, prompt):
    mask = masker(tiny_sam_checkpoint, feather=3, **prompt).mask(reference)
    assert mask.data.shape == (96, 128) and mask.data.dtype == np.uint8
    assert set(np.unique(mask.data)) <= {0, 255} and mask.data.any()
    assert np.array_equal(fill_holes(mask.data), mask.data)  # fill_holes is on by default
    assert (mask.feather, mask.dilate) == (3, 0) and 0.0 <= mask.score <= 1.0
    assert mask.label.startswith("sam: ")
    # dilate > 0 is paste-back reach (kept on the Mask, the mask stays the product); < 0 shrinks it
    grown = masker(tiny_sam_checkpoint, dilate=2, **prompt).mask(reference)
    assert grown.dilate == 2 and np.array_equal(grown.data, mask.data)
    shrunk = masker(tiny_sam_checkpoint, dilate=-1, **prompt).mask(reference)
    assert shrunk.dilate == 0 and shrunk.area < mask.area
    assert not np.any((shrunk.data > 0) & (mask.data == 0))


def test_rough_mask_prompt_is_read_with_patterns_and_any_size(tmp_path, tiny_sam_checkpoint, reference):
    (tmp_path / "masks").mkdir()
    rough = np.zeros((48, 64), np.uint8)
    rough[10:40, 16:50] = 255  # half the reference's size: scaled up like the upload masker does
    Image.fromarray(rough).save(tmp_path / "masks" / "sample1.png")
    mask = masker(tiny_sam_checkpoint, mask_path="masks/{name}.png", base_dir=str(tmp_path)).mask(reference)
    assert mask.data.shape == (96, 128) and mask.label == "sam: rough mask"
    # SAM gets the rough mask itself, not only its bounding box (which is also passed along)
    box_only = masker(tiny_sam_checkpoint, box=[32, 20, 100, 80]).mask(reference)
    assert not np.array_equal(mask.data, box_only.data)
    with pytest.raises(InputError, match="mask file not found"):
        masker(tiny_sam_checkpoint, mask_path=str(tmp_path / "missing.png")).mask(reference)


def test_rough_mask_becomes_logits_in_sams_padded_frame():
    mask = np.zeros((300, 600), np.uint8)
    mask[:, :300] = 255  # left half of a 2:1 image
    logits = rough_mask_logits(mask, (512, 1024))  # SAM resizes 600x300 to 1024x512, pads to 1024²
    assert logits.shape == (1, 256, 256)
    assert (logits[0, :120, :120] > 0).all()  # inside the product
    assert (logits[0, :120, 136:] < 0).all()  # right half of the image
    assert (logits[0, 136:, :] < 0).all()  # the padding below the image is background


def test_one_encoder_pass_for_many_prompts_on_one_reference(tiny_sam_checkpoint, reference, encoder_calls):
    maskers = [masker(tiny_sam_checkpoint, points=[[64, 48]]), masker(tiny_sam_checkpoint, box=[10, 10, 90, 70]),
               masker(tiny_sam_checkpoint, points=[[20, 20], [100, 70]], labels=[1, 0])]
    calls = encoder_calls(maskers[0])
    results = [m.mask(reference) for m in maskers]
    assert len(calls) == 1
    assert not np.array_equal(results[0].data, results[1].data)  # the prompts really were different
    other = make_reference(128, 96, seed=7)[0]
    maskers[0].mask(other)
    assert len(calls) == 2  # a new reference is encoded once more


@pytest.mark.parametrize("config, needle", [
    ({"box": [100, 20, 30, 80]}, "inverted or empty"),
    ({"box": [30, 80, 100, 80]}, "inverted or empty"),
    ({"points": [[-1, 5]]}, "negative coordinate"),
    ({"points": [[1, 5]], "labels": [1, 0]}, "labels has 2 entries but points has 1"),
    ({"points": [[1, 5]], "labels": [2]}, "1 (product) or 0 (background)"),
    ({}, "give at least one prompt"),
    ({"box": [1, 2, 3]}, "config.box"),
])
def test_bad_prompts_are_rejected_at_validation(tiny_sam_checkpoint, config, needle):
    with pytest.raises(RecipeError) as info:
        masker(tiny_sam_checkpoint, **config)
    line = info.value.one_line()
    assert needle in line and "\n" not in line


@pytest.mark.parametrize("config, needle", [
    ({"points": [[64, 48], [200, 10]]}, "points[1] = [200, 10] is outside the 128x96 image"),
    ({"points": [[128, 10]]}, "points[0] = [128, 10] is outside"),
    ({"box": [10, 10, 140, 50]}, "box [10, 10, 140, 50] reaches outside the 128x96 image"),
])
def test_prompts_outside_the_image_are_input_errors(tiny_sam_checkpoint, reference, config, needle):
    with pytest.raises(InputError) as info:
        masker(tiny_sam_checkpoint, **config).mask(reference)
    assert needle in info.value.one_line() and reference.source in info.value.one_line()


def test_min_score_refuses_a_mask_sam_is_not_sure_of(tiny_sam_checkpoint, reference):
    """The same min_score as classic, sam-clip and clipseg: below it, NothingFound with the score."""
    score = masker(tiny_sam_checkpoint, points=[[64, 48]]).mask(reference).score  # min_score 0: always answers
    if score >= 1.0:
        pytest.skip("the tiny random SAM is certain of this mask")
    with pytest.raises(NothingFound, match=rf"not confident in its mask \(predicted IoU {score:.3f} < min_score 1\)"):
        masker(tiny_sam_checkpoint, points=[[64, 48]], min_score=1.0).mask(reference)
    assert masker(tiny_sam_checkpoint, points=[[64, 48]], min_score=score).mask(reference).score == score
