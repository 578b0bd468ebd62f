"""The seams scorer's inpainted-region check: a regenerated box or ellipse around the product is caught."""
from __future__ import annotations

from pathlib import Path

import composites
import cv2
import numpy as np
import pytest
from composites import photo
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.types import Candidate, Score, ScoringContext
from ecomforge_classic.acquire import LocalAcquirer
from ecomforge_classic.integration import SeamsScorer
from ecomforge_classic.integration.regions_seam import region_evidence
from ecomforge_classic.maskers import ClassicMasker

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "dreambench"


def _duck():
    (ref,) = LocalAcquirer().acquire([str(SAMPLES / "duck_toy/02.jpg")], product="duck_toy", base_dir=SAMPLES)
    return ref, ClassicMasker({"feather": 2, "min_score": 0.0}).mask(ref)


@pytest.fixture(scope="module")
def duck():
    return _duck()


def scene(name: str, side: int = 256) -> np.ndarray:
    if name == "studio":  # a light grey backdrop with a soft vertical gradient
        t = np.linspace(0, 1, side, dtype=np.float32)[:, None, None]
        img = np.array([244, 240, 234], np.float32) * (1 - t) + np.array([214, 216, 222], np.float32) * t
        return np.broadcast_to(np.round(img), (side, side, 3)).astype(np.uint8).copy()
    return photo(name, side)


def place(ref, mask, background, scale=0.45, centre=(0.5, 0.55)):
    """The product with a soft contact shadow composited into ``background``: (image, product mask)."""
    return composites.place(ref, mask, background, scale=scale, centre=centre, shadow=0.35)


def inpaint(image, mask, shape: str, change: str, rng, strength: float = 0.2) -> np.ndarray:
    """Regenerate a padded box or ellipse around the product the way an inpainting model leaves it."""
    H, W = mask.shape
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    ext = max(y1 - y0, x1 - x0)
    region = np.zeros((H, W), np.uint8)
    if shape == "box":
        p = int(0.22 * ext)
        region[max(0, y0 - p):y1 + p, max(0, x0 - p):x1 + p] = 1
    else:
        cv2.ellipse(region, ((x0 + x1) // 2, (y0 + y1) // 2), (int((x1 - x0) * 0.6 + 0.25 * ext),
                    int((y1 - y0) * 0.6 + 0.25 * ext)), 0, 0, 360, 1, -1)
    f = image.astype(np.float32)
    small = cv2.resize(f, (W // 3, H // 3), interpolation=cv2.INTER_AREA)  # the model's softness
    regen = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    if change == "exposure":
        regen = regen * (1 - strength if f[region > 0].mean() > 128 else 1 + strength)
    elif change == "white balance":
        regen = regen * np.float32([1 + strength / 2, 1.0, 1 - strength / 2])
    # "grain": the softness and the sampler's grain alone
    regen += rng.normal(0, 4.0, (H, W, 1)).astype(np.float32)  # the sampler's grain
    a = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 0.8)[..., None]
    out = f * (1 - a) + regen * a
    keep = (mask > 0)[..., None]  # the product itself is pasted back
    return np.where(keep, image, np.clip(out, 0, 255)).astype(np.uint8)


def judge(image, mask, ref, ref_mask) -> Score:
    out = SeamsScorer().score([Candidate(image, 0, {}, mask=mask)], ScoringContext((ref,), (ref_mask,)))
    assert 0.0 <= out[0] <= 1.0
    return out[0]


@pytest.mark.parametrize("name", ["studio", "coffee", "astronaut", "rocket", "chelsea"])
def test_a_clean_composite_scores_high(duck, name):
    ref, mask = duck
    image, m = place(ref, mask, scene(name))
    s = judge(image, m, ref, mask)
    assert s >= 0.85 and s.reason == "", (name, s, s.reason)


@pytest.mark.parametrize("shape", ["box", "ellipse"])
@pytest.mark.parametrize("change", ["exposure", "white balance", "grain"])
@pytest.mark.parametrize("name", ["studio", "rocket"])
def test_an_inpainted_region_around_the_product_is_caught(duck, shape, change, name):
    ref, mask = duck
    image, m = place(ref, mask, scene(name))
    bad = inpaint(image, m, shape, change, np.random.default_rng(0))
    s = judge(bad, m, ref, mask)
    assert s < 0.5 and "inpainted region" in s.reason, (shape, change, name, s, s.reason)


@given(seed=st.integers(0, 2**16), side=st.integers(32, 160), cover=st.floats(0.0, 0.95))
@settings(max_examples=25, deadline=None, derandomize=True)
def test_region_evidence_keeps_the_score_in_range(seed, side, cover):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (side, side + 7, 3), dtype=np.uint8)
    mask = np.where(rng.random((side, side + 7)) < cover, 255, 0).astype(np.uint8)
    ev = region_evidence(image, mask, 256)
    assert ev is None or (np.isfinite(ev.evidence) and ev.evidence >= 0)
    ctx = ScoringContext((), ())
    (s,) = SeamsScorer().score([Candidate(image, 0, {}, mask=mask)], ctx)
    assert 0.0 <= s <= 1.0
