"""Storefront canvases: the product placed and kept bit-exact, the new canvas outpainted, a refine pass."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.imaging.masks import bbox, erode
from ecomforge_diffusers.canvas import canvas_size, check_canvas, plan_layout
from ecomforge_diffusers.config import InpaintConfig
from ecomforge_diffusers.generators import SdInpaintGenerator

from diffusers_testutil import FAST, changed_fraction, request_for


@pytest.fixture
def gen(tiny_sd_inpaint):
    return SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST}, device="cpu")


@pytest.mark.parametrize("canvas,placement,size", [
    ("1:1", "center", (96, 96)), ("16:9", "thirds", (114, 64)), ("4:5", "bottom", (96, 120)),
    ("200x120", "bottom", (200, 120)),
])
def test_product_placed_bit_exact_and_canvas_outpainted(gen, canvas, placement, size):
    """The canvas has the channel's shape; the product is the photo's pixels where the layout put it."""
    req = request_for(gen, seeds=(1,), canvas=canvas, placement=placement, mask_feather=2)
    cand = gen.generate(req)[0]
    notes = cand.info["canvas"]
    assert cand.image.shape[1::-1] == size and tuple(notes["size"]) == size and notes["scale"] == 1.0
    # what the generator declares for limits checked before work (the web's pixel limit) is what it made
    assert gen.work_pixels(req.config, req.reference.size) == size[0] * size[1]
    ox, oy = notes["offset"]
    h, w = req.mask.data.shape
    core = erode(req.mask.data, 2) > 0
    ys, xs = np.nonzero(core)
    assert np.array_equal(cand.image[ys + oy, xs + ox], req.reference.image[ys, xs])
    assert np.array_equal(cand.mask[ys + oy, xs + ox], req.mask.data[ys, xs])
    outside = np.ones(cand.image.shape[:2], bool)
    outside[max(0, oy):oy + h, max(0, ox):ox + w] = False
    if outside.any():  # the new canvas area was generated, not left as the stretched edges
        grey = np.full_like(cand.image, 128)
        assert changed_fraction(cand.image, grey, outside) > 0.5
    x0, y0, x1, y1 = bbox(cand.mask)
    if placement == "bottom":
        assert abs(y1 - (size[1] - 0.08 * size[1])) <= 1.5
    if placement == "thirds":
        assert min(abs((x0 + x1) / 2 - size[0] / 3), abs((x0 + x1) / 2 - 2 * size[0] / 3)) <= 1.5


def test_refine_pass_at_output_size_keeps_the_product(gen):
    """A scaled product on a larger canvas, refined at the canvas size; the placed product stays exact."""
    req = request_for(gen, seeds=(1,), canvas="160x160", product_scale=0.6, refine_side=160, mask_feather=2)
    cand = gen.generate(req)[0]
    assert cand.info["refine"]["size"] == [160, 160] and cand.info["canvas"]["product_resampled"]
    assert gen.work_pixels(req.config, req.reference.size) == 160 * 160
    assert gen.work_pixels(req.config.model_copy(update={"refine_side": 512}), req.reference.size) == 512 * 512
    wide = req.config.model_copy(update={"canvas": "1600x400", "max_side": 4096})
    assert gen.work_pixels(wide, req.reference.size) == 4096 * 1024  # the canvas's shape at the long side
    x0, y0, x1, y1 = bbox(cand.mask)
    assert max(x1 - x0, y1 - y0) == pytest.approx(0.6 * 160, abs=2)
    without = gen.generate(request_for(gen, seeds=(1,), canvas="160x160", product_scale=0.6, mask_feather=2))[0]
    background = cand.mask == 0
    assert changed_fraction(cand.image, without.image, background) > 0.5  # the refine pass repainted it
    core = erode(cand.mask, 3) > 0
    assert np.array_equal(cand.image[core], without.image[core])  # and left the product alone


@pytest.mark.parametrize("bad", ["1:0", "square", "10x10", "16/9", "9000x100"])
def test_bad_canvas_is_rejected_with_what_is_allowed(bad):
    """Unknown canvas specs fail validation with the accepted forms."""
    with pytest.raises(ValueError, match="canvas"):
        InpaintConfig(canvas=bad)


BOX = st.tuples(st.integers(0, 150), st.integers(0, 150), st.integers(4, 100), st.integers(4, 100))


@settings(max_examples=150, deadline=None)
@given(BOX, st.sampled_from(["1:1", "4:5", "16:9", "3:2", "300x200", "128x512"]),
       st.sampled_from(["center", "thirds", "bottom"]), st.none() | st.floats(0.1, 1.0),
       st.floats(0.0, 0.3))
def test_layout_keeps_the_product_inside_the_canvas(box, canvas, placement, scale, floor):
    """Whatever the photo, canvas and placement: the product box lands inside the canvas, at native
    pixels unless asked to scale or too big to fit."""
    x, y, w, h = box
    mask = np.zeros((y + h + 10, x + w + 10), np.uint8)
    mask[y:y + h, x:x + w] = 255
    cfg = SimpleNamespace(canvas=check_canvas(canvas), placement=placement, product_scale=scale, floor=floor)
    layout = plan_layout(mask, cfg)
    W, H = layout.size
    assert (W, H) == canvas_size(cfg.canvas, mask.shape[1], mask.shape[0], 1.0)
    left, top = x * layout.scale + layout.offset[0], y * layout.scale + layout.offset[1]
    assert -1 <= left and left + w * layout.scale <= W + 1
    assert -1 <= top and top + h * layout.scale <= H + 1
    if scale is None:
        assert layout.scale == min(1.0, W / w, H / h)


@settings(max_examples=200, deadline=None)
@given(st.integers(8, 600).map(lambda n: n * 8), st.integers(8, 128).map(lambda n: n * 8))
def test_tiles_cover_the_image_on_the_8px_grid(length, tile):
    """Tile starts are multiples of 8, stay inside, and together cover every pixel."""
    from ecomforge_diffusers.refine import tile_starts

    starts = tile_starts(length, tile, tile // 4)
    covered = np.zeros(length, bool)
    for s in starts:
        assert s % 8 == 0 and 0 <= s and s + min(tile, length) <= length
        covered[s:s + tile] = True
    assert covered.all()


def test_tiled_refine_keeps_the_product_and_repaints_every_tile(gen):
    """refine_tile splits a refine larger than the tile into overlapping tiles; the product stays exact."""
    req = request_for(gen, seeds=(1, 2), canvas="192x192", refine_side=192, refine_tile=128, mask_feather=2)
    a, b = gen.generate(req)
    assert a.info["refine"]["tiles"] == 4 and a.info["refine"]["size"] == [192, 192]
    ox, oy = a.info["canvas"]["offset"]
    core = erode(req.mask.data, 2) > 0
    ys, xs = np.nonzero(core)
    assert np.array_equal(a.image[ys + oy, xs + ox], req.reference.image[ys, xs])
    assert changed_fraction(a.image, b.image, a.mask == 0) > 0.3  # seeds still differ after blending
