"""Property tests of the core mask operations and paste-back (ecomforge.imaging)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ecomforge.errors import InputError
from ecomforge.imaging.masks import (
    bbox,
    binarize,
    check_usable,
    dilate,
    erode,
    feather_alpha,
    fill_holes,
    keep_components,
    refine,
)
from ecomforge.imaging.paste import paste_alpha, paste_back

SETTINGS = settings(max_examples=80, deadline=None)


@st.composite
def masks(draw, min_side: int = 4, max_side: int = 40):
    """Binary masks: random blobs (rectangles and disks) or raw noise, uint8 {0,255}."""
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    if draw(st.booleans()):
        bits = draw(arrays(np.bool_, (h, w)))
        return np.where(bits, 255, 0).astype(np.uint8)
    out = np.zeros((h, w), np.uint8)
    for _ in range(draw(st.integers(0, 5))):
        x, y = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
        r = draw(st.integers(1, max(1, max(h, w) // 3)))
        value = 255 if draw(st.integers(0, 3)) else 0  # some shapes cut holes
        if draw(st.booleans()):
            cv2.circle(out, (x, y), r, int(value), -1)
        else:
            cv2.rectangle(out, (x, y), (x + r, y + r // 2 + 1), int(value), -1)
    return out


radii = st.integers(0, 8)


def enclosed_background(mask: np.ndarray) -> int:
    """Count background pixels not 4-connected to the image border."""
    background = (mask == 0).astype(np.uint8)
    count, labels = cv2.connectedComponents(background, connectivity=4)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    return int(sum(np.count_nonzero(labels == i) for i in range(1, count) if i not in border))


@SETTINGS
@given(masks(), st.integers(0, 4))
def test_fill_holes_keeps_foreground_and_leaves_no_enclosed_background(mask, close):
    filled = fill_holes(mask, close)
    assert set(np.unique(filled)) <= {0, 255}
    assert np.all(filled[mask > 0] == 255), "hole filling removed foreground"
    assert enclosed_background(filled) == 0


@SETTINGS
@given(masks(), radii)
def test_dilate_contains_mask_contains_erode(mask, r):
    grown, shrunk = dilate(mask, r), erode(mask, r)
    assert np.all(grown[mask > 0] == 255)
    assert np.all(mask[shrunk > 0] == 255)
    assert set(np.unique(grown)) <= {0, 255} and set(np.unique(shrunk)) <= {0, 255}


@SETTINGS
@given(masks(), st.integers(0, 8))
def test_feather_alpha_is_exact_inside_zero_outside(mask, width):
    alpha = feather_alpha(mask, width)
    inner = erode(mask, width)
    assert alpha.dtype == np.uint8 and alpha.shape == mask.shape
    assert np.all(alpha[inner > 0] == 255), "not opaque on erode(mask, width)"
    assert np.all(alpha[mask == 0] == 0), "alpha leaks outside the mask"


@SETTINGS
@given(masks(), st.integers(1, 8), st.data())
def test_feather_alpha_is_monotone(mask, width, data):
    """A larger mask never gets a smaller alpha; a wider feather never gets a larger one."""
    grown = dilate(mask, data.draw(st.integers(1, 3)))
    small, big = feather_alpha(mask, width), feather_alpha(grown, width)
    assert np.all(big.astype(int) >= small.astype(int))
    wider = feather_alpha(mask, width + data.draw(st.integers(1, 4)))
    assert np.all(wider.astype(int) <= small.astype(int))


def _pasted(mask, dilate_px, feather_px, seed):
    rng = np.random.default_rng(seed)
    h, w = mask.shape
    original = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    generated = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return original, generated, paste_back(original, generated, mask, dilate_px=dilate_px, feather_px=feather_px)


@SETTINGS
@given(masks(min_side=6), st.integers(0, 6), st.integers(0, 6), st.integers(0, 2**32 - 1))
def test_paste_back_leaves_outside_generated_and_feathered_core_exact(mask, dilate_px, feather_px, seed):
    original, generated, out = _pasted(mask, dilate_px, feather_px, seed)
    outside = dilate(mask, dilate_px) == 0
    assert np.array_equal(out[outside], generated[outside]), "background outside the paste region changed"
    core = erode(dilate(mask, dilate_px), feather_px) > 0
    assert np.array_equal(out[core], original[core]), "product pixels changed"


@settings(max_examples=300, deadline=None)
@given(masks(min_side=6), st.integers(0, 6), st.integers(0, 6), st.integers(0, 2**32 - 1))
@example(mask=cv2.circle(np.zeros((40, 40), np.uint8), (20, 20), 4, 255, -1), dilate_px=3, feather_px=6, seed=0)
def test_paste_back_is_bit_exact_on_documented_region(mask, dilate_px, feather_px, seed):
    """paste_back's docstring: pixels inside erode(mask, feather - dilate) come back bit-exact."""
    original, _, out = _pasted(mask, dilate_px, feather_px, seed)
    exact = erode(mask, feather_px - dilate_px) > 0
    assert np.array_equal(out[exact], original[exact]), "product pixels changed"


@SETTINGS
@given(arrays(st.sampled_from([np.uint8, np.uint16, np.float32, np.bool_]),
              st.tuples(st.integers(1, 12), st.integers(1, 12))),
       st.integers(1, 255))
def test_binarize_output_is_0_or_255(arr, threshold):
    out = binarize(arr, threshold)
    assert out.dtype == np.uint8 and out.shape == arr.shape
    assert set(np.unique(out)) <= {0, 255}


@SETTINGS
@given(arrays(np.uint8, st.tuples(st.integers(1, 10), st.integers(1, 10), st.sampled_from([3, 4]))))
def test_binarize_rgb_and_rgba(arr):
    out = binarize(arr)
    assert out.shape == arr.shape[:2] and set(np.unique(out)) <= {0, 255}
    source = arr[..., 3] if arr.shape[2] == 4 else arr.max(axis=2)  # RGBA: alpha carries the shape
    np.testing.assert_array_equal(out == 255, source >= 128)


@SETTINGS
@given(masks(), st.integers(0, 3), st.floats(0.0, 1.0))
def test_keep_components_only_removes(mask, largest, fraction):
    kept = keep_components(mask, largest=largest, min_area_fraction=fraction)
    assert np.all(mask[kept > 0] == 255)
    if mask.any():
        assert kept.any(), "the largest component must always survive"


@SETTINGS
@given(masks(), st.integers(-4, 4))
def test_refine_grow_orders_results(mask, grow):
    base = refine(mask)
    out = refine(mask, grow=grow)
    if grow >= 0:
        assert np.all(out[base > 0] == 255)
    else:
        assert np.all(base[out > 0] == 255)


def test_bbox_and_check_usable():
    m = np.zeros((10, 12), np.uint8)
    assert bbox(m) is None
    m[2:5, 3:9] = 255
    assert bbox(m) == (3, 2, 9, 5)
    check_usable(m, "m.png")
    with pytest.raises(InputError, match="m.png: the mask is empty"):
        check_usable(np.zeros_like(m), "m.png")
    with pytest.raises(InputError, match="m.png: the mask covers the whole image"):
        check_usable(np.full_like(m, 255), "m.png")


def test_paste_alpha_reaches_the_dilated_edge():
    m = np.zeros((30, 30), np.uint8)
    m[10:20, 10:20] = 255
    alpha = paste_alpha(m, dilate_px=3, feather_px=2)
    assert alpha[15, 15] == 255 and alpha[15, 8] > 0 and alpha[15, 5] == 0
