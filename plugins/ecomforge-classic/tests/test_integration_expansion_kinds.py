"""``expansion`` on regrown product matter made other ways than a larger copy: stretched, extruded, darker."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from composites import photo, place  # the same composites as the other integration tests
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.types import Candidate, Score, ScoringContext
from ecomforge_classic.acquire import LocalAcquirer
from ecomforge_classic.integration import ExpansionScorer
from ecomforge_classic.maskers import ClassicMasker

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "dreambench"
PROPERTY = settings(max_examples=8, deadline=None, derandomize=True)


def _product(name: str):
    (ref,) = LocalAcquirer().acquire([str(SAMPLES / name)], product=name.split("/")[0], base_dir=SAMPLES)
    return ref, ClassicMasker({"feather": 2, "min_score": 0.0}).mask(ref)


@pytest.fixture(scope="module")
def vase():
    return _product("vase/02.jpg")


def judge(image, mask, ref, ref_mask, **config) -> Score:
    out = ExpansionScorer(config).score([Candidate(image, 0, {}, mask=mask)], ScoringContext((ref,), (ref_mask,)))
    assert len(out) == 1 and 0.0 <= out[0] <= 1.0
    return out[0]


def _stretched(image, m, side: str, frac: float, darken: float = 0.0):
    """The product's outer band on ``side`` stretched outward by ``frac`` of its extent, under the intact product."""
    k = {"down": 0, "right": -1, "left": 1, "up": 2}[side]
    img, mm = np.rot90(image, k).astype(np.float32), np.rot90(m, k)
    ys, _ = np.nonzero(mm)
    y0, y1 = ys.min(), ys.max() + 1
    length, band = int(frac * (y1 - y0)), max(3, int(0.2 * (y1 - y0)))
    yy = np.arange(img.shape[0], dtype=np.float32)
    src = np.where(yy < y1 - band, yy, y1 - band + (yy - y1 + band) * band / (band + length))
    src = np.where(yy >= y1 + length, -10, src).astype(np.float32)
    map_y = np.repeat(src[:, None], img.shape[1], 1)
    map_x = np.repeat(np.arange(img.shape[1], dtype=np.float32)[None], img.shape[0], 0)
    grown = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderValue=0)
    gm = cv2.remap(mm.astype(np.float32), map_x, map_y, cv2.INTER_NEAREST, borderValue=0) > 0
    shade = 1 - darken * np.clip((yy - y1) / max(1, length), 0, 1)[:, None, None]
    out = np.where(gm[..., None], grown * shade, img)
    out = np.where(mm[..., None] > 0, img, out)
    return np.ascontiguousarray(np.rot90(np.clip(out, 0, 255).astype(np.uint8), -k))


def _extruded(image, m, dx: int, dy: int):
    """The product's silhouette swept (extruded) sideways behind itself: its edge colours smeared outward."""
    out, core = image.copy(), cv2.erode(m, np.ones((7, 7), np.uint8))  # from just inside the soft paste edge
    for t in range(1, max(abs(dx), abs(dy)) + 1):
        sx, sy = round(dx * t / max(abs(dx), abs(dy))), round(dy * t / max(abs(dx), abs(dy)))
        M = np.float32([[1, 0, sx], [0, 1, sy]])
        sh = cv2.warpAffine(image, M, m.shape[::-1])
        shm = cv2.warpAffine(core, M, m.shape[::-1], flags=cv2.INTER_NEAREST) > 0
        fill = shm & (m == 0) & ~np.all(out != image, axis=-1)
        out[fill] = sh[fill]
    return np.where(m[..., None] > 0, image, out)


@pytest.mark.parametrize("scene", ["studio", "coffee", "chelsea", "astronaut", "rocket"])
def test_clean_composites_score_high(vase, scene):
    ref, mask = vase
    image, m = place(ref, mask, photo(scene, 512))
    s = judge(image, m, ref, mask)
    assert s >= 0.85 and s.reason == "", (scene, s, s.reason)


def test_a_soft_contact_shadow_is_not_expansion(vase):
    ref, mask = vase
    bg = photo("studio", 512).astype(np.float32)
    image, m = place(ref, mask, bg.astype(np.uint8))
    ys, xs = np.nonzero(m)
    shadow = np.zeros(m.shape, np.float32)
    cv2.ellipse(shadow, (int(xs.mean()), int(ys.max())), (int(0.6 * (xs.max() - xs.min())), 14), 0, 0, 360, 1, -1)
    shadow = cv2.GaussianBlur(shadow, (0, 0), 8) * 0.35
    shaded = (bg * (1 - shadow[..., None])).astype(np.uint8)
    out, m = place(ref, mask, shaded)
    assert judge(out, m, ref, mask) >= 0.85


@pytest.mark.parametrize("scene, side", [("studio", "down"), ("coffee", "left"), ("chelsea", "right"),
                                         ("astronaut", "down")])
@pytest.mark.parametrize("darken", [0.0, 0.25])
def test_a_stretched_outer_band_is_caught_and_explained(vase, scene, side, darken):
    ref, mask = vase
    image, m = place(ref, mask, photo(scene, 512), scale=0.5)
    s = judge(_stretched(image, m, side, 0.4, darken), m, ref, mask)
    assert s < 0.5 and "grows beyond" in s.reason, (scene, side, darken, s, s.reason)


@pytest.mark.parametrize("scene", ["studio", "chelsea"])
def test_an_extruded_silhouette_is_caught(vase, scene):
    ref, mask = vase
    image, m = place(ref, mask, photo(scene, 512), scale=0.5)
    s = judge(_extruded(image, m, 60, 0), m, ref, mask)
    assert s < 0.5 and "grows beyond" in s.reason, (scene, s, s.reason)


@given(frac=st.floats(0.0, 0.6), darken=st.floats(0.0, 0.4), side=st.sampled_from(["down", "left", "right", "up"]),
       scene=st.sampled_from(["studio", "coffee", "rocket"]))
@PROPERTY
def test_scores_are_in_the_unit_interval(vase, frac, darken, side, scene):
    ref, mask = vase
    image, m = place(ref, mask, photo(scene, 256), scale=0.45)
    s = judge(_stretched(image, m, side, frac, darken), m, ref, mask)
    assert 0.0 <= float(s) <= 1.0
    assert (s.reason != "") == (float(s) < 0.85)
