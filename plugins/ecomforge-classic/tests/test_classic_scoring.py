"""The color and keypoints scorers on real product photos: benign changes kept high, distortions lowered."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays

from ecomforge.testing import ScorerContract
from ecomforge.types import Candidate, ScoringContext
from ecomforge_classic.acquire import LocalAcquirer
from ecomforge_classic.color import ColorScorer
from ecomforge_classic.keypoints import KeypointsScorer
from ecomforge_classic.maskers import ClassicMasker

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "dreambench"


class TestColorContract(ScorerContract):
    def make_stage(self):
        return ColorScorer()


class TestKeypointsContract(ScorerContract):
    def make_stage(self):
        return KeypointsScorer()


@pytest.fixture(scope="module")
def clock():
    (ref,) = LocalAcquirer().acquire([str(SAMPLES / "clock/05.jpg")], product="clock", base_dir=SAMPLES)
    return ref, ClassicMasker().mask(ref)


def _score(scorer, image, mask, ref, ref_mask):
    return scorer.score([Candidate(image, 0, {}, mask=mask)], ScoringContext((ref,), (ref_mask,)))[0]


def _rotate(img, mask, deg):
    h, w = mask.shape
    M = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return (cv2.warpAffine(img, M, (w, h), borderMode=cv2.BORDER_REPLICATE),
            cv2.warpAffine(mask, M, (w, h), flags=cv2.INTER_NEAREST))


def _hue(img, mask, shift):
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL)
    hsv[..., 0] = ((hsv[..., 0].astype(int) + shift) % 256).astype(np.uint8)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    return np.where(mask[..., None] > 0, out, img)


def _scramble(img, mask, block=24, seed=0):
    out = img.copy()
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    tiles = [(y, x) for y in range(y0, y1 - block, block) for x in range(x0, x1 - block, block)]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(tiles))
    src = [img[y:y + block, x:x + block].copy() for y, x in tiles]
    for (y, x), k in zip(tiles, perm):
        out[y:y + block, x:x + block] = src[k]
    return np.where(mask[..., None] > 0, out, img)


def test_self_is_one(clock):
    ref, m = clock
    assert _score(ColorScorer(), ref.image, m.data, ref, m) == pytest.approx(1.0)
    assert _score(KeypointsScorer(), ref.image, m.data, ref, m) == pytest.approx(1.0)


def test_color_drops_on_hue_shift_not_on_rotation_or_brightness(clock):
    ref, m = clock
    s = ColorScorer()
    rot = _score(s, *_rotate(ref.image, m.data, 30), ref, m)
    bright = _score(s, np.clip(ref.image.astype(int) * 1.15, 0, 255).astype(np.uint8), m.data, ref, m)
    hue = _score(s, _hue(ref.image, m.data, 60), m.data, ref, m)
    assert rot > 0.8 and bright > 0.7
    assert hue < 0.5 and hue < min(rot, bright) - 0.3


def test_keypoints_drop_on_scrambled_print_not_on_rotation_or_flip(clock):
    ref, m = clock
    s = KeypointsScorer()
    rot = _score(s, *_rotate(ref.image, m.data, 25), ref, m)
    flip = _score(s, np.ascontiguousarray(ref.image[:, ::-1]), np.ascontiguousarray(m.data[:, ::-1]), ref, m)
    scrambled = _score(s, _scramble(ref.image, m.data), m.data, ref, m)
    assert rot > 0.6 and flip > 0.6
    assert scrambled < 0.35 and scrambled < min(rot, flip) - 0.3


def test_reference_features_are_cached(clock):
    ref, m = clock
    s = KeypointsScorer()
    ctx = ScoringContext((ref,), (m,))
    s.score([Candidate(ref.image, 0, {}, mask=m.data)], ctx)
    calls = []
    orig = s._features
    s._features = lambda *a, **k: calls.append(1) or orig(*a, **k)
    s.score([Candidate(ref.image, 0, {}, mask=m.data)], ctx)
    assert len(calls) == 1  # only the candidate: the reference came from the cache


@settings(max_examples=25, deadline=None)
@given(img=arrays(np.uint8, (40, 56, 3)), mask_bits=arrays(np.bool_, (40, 56)))
def test_scores_bounded_and_finite_for_any_image(img, mask_bits):
    from ecomforge.testing import make_reference

    ref, m = make_reference(56, 40)
    cand_mask = np.where(mask_bits, 255, 0).astype(np.uint8)
    for scorer in (ColorScorer(), KeypointsScorer()):
        v = _score(scorer, img, cand_mask, ref, m)
        assert np.isfinite(v) and 0.0 <= v <= 1.0


def test_keypoints_drop_when_a_patch_of_the_print_is_replaced(clock):
    """Coverage: the rest of the print still matches, but the replaced region's cells lose every match."""
    ref, m = clock
    s = KeypointsScorer()
    ys, xs = np.nonzero(m.data)
    y0, x0 = ys.min(), xs.min()
    hgt, wid = ys.max() - y0, xs.max() - x0
    patched = ref.image.copy()
    py, px = y0 + hgt // 4, x0 + wid // 4
    patched[py:py + hgt // 2, px:px + wid // 2] = np.random.default_rng(0).integers(0, 255, (hgt // 2, wid // 2, 3))
    rot = _score(s, *_rotate(ref.image, m.data, 10), ref, m)
    hit = _score(s, patched, m.data, ref, m)
    assert hit < rot - 0.2
    assert KeypointsScorer({"grid": 1}).score([Candidate(patched, 0, {}, mask=m.data)], ScoringContext((ref,), (m,)))[0] > hit
