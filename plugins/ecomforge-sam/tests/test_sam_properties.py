"""Property tests: mask invariants over refine settings and prompts, prompt parsing, crops and windows."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecomforge.errors import NothingFound, RecipeError
from ecomforge.imaging.masks import erode, feather_alpha, fill_holes
from ecomforge.testing import make_reference
from ecomforge_sam.prompted import SamMasker
from ecomforge_sam.proposals import masked_crop, windows

REFERENCES = [make_reference(96, 64, seed=s)[0] for s in range(2)]  # few images: SAM embeds each once
FEW = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FEW
@given(ref_index=st.integers(0, 1), x=st.floats(0, 95.9), y=st.floats(0, 63.9), fill=st.booleans(),
       close=st.integers(0, 3), largest=st.integers(0, 2), feather=st.integers(0, 8), shrink=st.integers(0, 2))
def test_masks_are_binary_sized_filled_and_feather_bounded(tiny_sam_checkpoint, ref_index, x, y, fill, close, largest,
                                                            feather, shrink):
    reference = REFERENCES[ref_index]
    stage = SamMasker({"model": str(tiny_sam_checkpoint), "points": [[x, y]], "fill_holes": fill, "close_radius": close,
                       "largest": largest, "feather": feather, "dilate": -shrink}, device="cpu")
    try:
        mask = stage.mask(reference)
    except NothingFound as exc:  # only the documented "empty after clean-up" outcome is allowed
        assert "empty after clean-up" in exc.one_line()
        return
    data = mask.data
    assert data.shape == reference.image.shape[:2] and data.dtype == np.uint8
    assert set(np.unique(data)) <= {0, 255}
    if fill:  # shrinking only widens existing background, so it cannot enclose a new hole
        assert np.array_equal(fill_holes(data), data)
    assert mask.feather == feather and mask.dilate == 0
    alpha = feather_alpha(data, mask.feather)
    assert not alpha[data == 0].any()  # the soft edge never leaves the mask
    assert (alpha[erode(data, feather) > 0] == 255).all()  # and never reaches deeper than the feather


coord = st.floats(-50, 500, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(box=st.tuples(coord, coord, coord, coord))
def test_box_is_accepted_exactly_when_ordered_and_non_negative(tiny_sam_checkpoint, box):
    x0, y0, x1, y1 = box
    valid = x0 < x1 and y0 < y1 and x0 >= 0 and y0 >= 0
    if valid:
        assert SamMasker({"model": str(tiny_sam_checkpoint), "box": list(box)}).config.box == box
    else:
        with pytest.raises(RecipeError, match="config.box"):
            SamMasker({"model": str(tiny_sam_checkpoint), "box": list(box)})


@settings(max_examples=60, deadline=None)
@given(points=st.lists(st.tuples(coord, coord), min_size=1, max_size=4), data=st.data())
def test_points_and_labels_parse_or_fail_with_one_line(tiny_sam_checkpoint, points, data):
    labels = data.draw(st.one_of(st.just([]), st.lists(st.integers(-1, 2), min_size=1, max_size=4)))
    valid = (all(x >= 0 and y >= 0 for x, y in points) and all(v in (0, 1) for v in labels)
             and (not labels or len(labels) == len(points)))
    config = {"model": str(tiny_sam_checkpoint), "points": [list(p) for p in points], "labels": labels}
    if valid:
        assert len(SamMasker(config).config.points) == len(points)
    else:
        with pytest.raises(RecipeError) as info:
            SamMasker(config)
        assert "\n" not in info.value.one_line()


@settings(max_examples=40, deadline=None)
@given(width=st.integers(16, 400), height=st.integers(16, 400),
       scales=st.lists(st.floats(0.05, 1.0), min_size=1, max_size=4), stride=st.floats(0.2, 1.0))
def test_windows_are_squares_that_cover_the_image(width, height, scales, stride):
    boxes = windows(width, height, tuple(scales), stride)
    covered = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:
        assert x1 - x0 == y1 - y0 > 0
        assert 0 <= x0 and 0 <= y0 and x1 <= width and y1 <= height  # sides never exceed the short side
        covered[y0:y1, x0:x1] = True
    assert covered.all()


@settings(max_examples=40, deadline=None)
@given(height=st.integers(8, 60), width=st.integers(8, 60), data=st.data())
def test_masked_crops_are_square_and_show_only_the_region(height, width, data):
    y0 = data.draw(st.integers(0, height - 1))
    x0 = data.draw(st.integers(0, width - 1))
    y1 = data.draw(st.integers(y0 + 1, height))
    x1 = data.draw(st.integers(x0 + 1, width))
    padding = data.draw(st.floats(0.0, 0.5))
    image = np.full((height, width, 3), 200, np.uint8)
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    image[mask] = 7
    crop = masked_crop(image, mask, padding=padding, fill=128)
    assert crop.shape[0] == crop.shape[1] >= max(x1 - x0, y1 - y0)
    assert set(np.unique(crop)) <= {7, 128}  # region pixels and fill only: the rest of the image is hidden
    assert np.count_nonzero(crop[..., 0] == 7) == mask.sum()  # the whole region is inside the crop


@settings(max_examples=30, deadline=None)
@given(height=st.integers(20, 400), width=st.integers(20, 400), data=st.data())
def test_rough_mask_logits_follow_the_mask_in_sams_frame(height, width, data):
    from ecomforge_sam.prompted import rough_mask_logits

    y0 = data.draw(st.integers(0, height - 10))
    x0 = data.draw(st.integers(0, width - 10))
    y1 = data.draw(st.integers(y0 + 10, height))
    x1 = data.draw(st.integers(x0 + 10, width))
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 255
    scale = 1024 / max(height, width)  # SAM's ResizeLongestSide, then bottom/right padding to 1024²
    input_size = (int(height * scale + 0.5), int(width * scale + 0.5))
    logits = rough_mask_logits(mask, input_size)[0]
    assert logits.shape == (256, 256) and np.abs(logits).max() <= 10.0 + 1e-4
    # The low-res cell holding the rectangle's centre is product; a cell far outside it is not.
    cy, cx = ((y0 + y1) / 2 * scale / 4, (x0 + x1) / 2 * scale / 4)
    assert logits[int(cy), int(cx)] > 0
    if input_size[0] < 1000:  # the padding below a wide image is always background
        assert logits[255, int(cx)] < 0
