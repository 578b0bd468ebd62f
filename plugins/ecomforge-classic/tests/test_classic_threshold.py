"""The threshold filter: minimums, top-K, near-duplicates, diversity, reasons."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.testing import FilterContract
from ecomforge.types import Candidate, GenerationRequest, Scored
from ecomforge_classic.acquire import LocalAcquirer
from ecomforge_classic.composite import CompositeGenerator
from ecomforge_classic.maskers import ClassicMasker
from ecomforge_classic.threshold import ThresholdFilter, color_distance, dhash, hamming, lab_thumbnail


class TestThresholdContract(FilterContract):
    def make_stage(self):
        return ThresholdFilter({"top_k": 3})


def _img(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def _scored(totals, images=None, scores=None):
    images = images or [_img(i) for i in range(len(totals))]
    return [Scored(f"id{i:02d}", Candidate(im, i, {}), (scores or [{"a": t}] * len(totals))[i] if scores else {"a": t}, t)
            for i, (t, im) in enumerate(zip(totals, images))]


def test_min_score_and_top_k_with_reasons():
    out = ThresholdFilter({"min_score": 0.5, "top_k": 2}).select(_scored([0.9, 0.4, 0.7, 0.8]))
    assert [d.kept for d in out] == [True, False, False, True]
    assert "0.400 < 0.5" in out[1].reason and "top_k 2" in out[2].reason and "rank 2" in out[3].reason


def test_a_tie_at_the_top_k_cut_says_so():
    """Equal totals across the cut: the dropped one's reason says it tied and how ties are broken."""
    out = ThresholdFilter({"top_k": 1, "dedupe": False}).select(_scored([1.0, 1.0, 0.5]))
    assert out[0].kept and not out[1].kept and "tied with the last kept" in out[1].reason
    assert "tied" not in out[2].reason


def test_per_scorer_minimum():
    scored = [Scored("a", Candidate(_img(0), 0, {}), {"color": 0.9, "kp": 0.2}, 0.55),
              Scored("b", Candidate(_img(1), 1, {}), {"color": 0.6, "kp": 0.6}, 0.6)]
    out = ThresholdFilter({"min_scores": {"kp": 0.5}}).select(scored)
    assert [d.kept for d in out] == [False, True] and "kp 0.200 < 0.5" in out[0].reason


def test_near_duplicates_keep_the_better_one():
    base = _img(0)
    nudged = np.clip(base.astype(int) + 2, 0, 255).astype(np.uint8)
    out = ThresholdFilter().select(_scored([0.6, 0.9, 0.7], [base, nudged, _img(5)]))
    assert [d.kept for d in out] == [False, True, True]
    assert "near-duplicate of id01" in out[0].reason


def test_failed_candidates_are_dropped():
    s = _scored([0.9, 0.8])
    s[0].candidate.failed = "NaN output"
    out = ThresholdFilter().select(s)
    assert not out[0].kept and "NaN output" in out[0].reason and out[1].kept


def test_diversity_prefers_unlike_candidates():
    a = _img(0)
    twins = [a, np.clip(a.astype(int) + 30, 0, 255).astype(np.uint8), _img(9)]
    plain = ThresholdFilter({"top_k": 2, "dedupe": False}).select(_scored([0.9, 0.85, 0.8], twins))
    diverse = ThresholdFilter({"top_k": 2, "dedupe": False, "diversity": 0.9}).select(_scored([0.9, 0.85, 0.8], twins))
    assert [d.kept for d in plain] == [True, True, False]
    assert [d.kept for d in diverse] == [True, False, True]


def test_dhash_identity_and_difference():
    a = _img(1)
    assert hamming(dhash(a), dhash(a.copy())) == 0
    assert hamming(dhash(a), dhash(_img(2))) > 10


@settings(max_examples=80, deadline=None)
@given(totals=st.lists(st.floats(0, 1, allow_nan=False), min_size=0, max_size=12),
       min_score=st.floats(0, 1), top_k=st.one_of(st.none(), st.integers(1, 6)), dedupe=st.booleans())
def test_filter_properties(totals, min_score, top_k, dedupe):
    scored = _scored(totals)
    f = ThresholdFilter({"min_score": min_score, "top_k": top_k, "dedupe": dedupe})
    out = f.select(scored)
    assert len(out) == len(scored) and all(d.reason for d in out)
    kept = [s for s, d in zip(scored, out) if d.kept]
    assert all(s.total >= min_score for s in kept)
    if top_k is not None:
        assert len(kept) <= top_k
    assert out == f.select(scored)  # deterministic
    # nothing dropped for rank while a worse candidate was kept
    for s, d in zip(scored, out):
        if "top_k" in d.reason:
            assert all(k.total >= s.total for k in kept)


# --- near-duplicates by colour, and drop reasons that say why -------------------------------------

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "dreambench"


@pytest.fixture(scope="module")
def vase_composites():
    """The real vase photo composited (offline generator) on three backgrounds; the last two differ only by noise."""
    (ref,) = LocalAcquirer().acquire([str(SAMPLES / "vase/02.jpg")], product="vase", base_dir=SAMPLES)
    mask = ClassicMasker({"feather": 3}).mask(ref)
    gen = CompositeGenerator()

    def on(background: str) -> np.ndarray:
        cfg = gen.parse_config({"background": background, "size": [256, 256], "shadow": 0.0})
        return gen.generate(GenerationRequest(ref, mask, "p", "", cfg, (1,)))[0].image

    cream, sage = on("#f4efe6"), on("#b7d3b0")
    pale_blue = on("#e9eef2")  # the quickstart's two palest backdrops: warm cream against cool grey
    rng = np.random.default_rng(3)
    cream_again = np.clip(cream.astype(int) + rng.integers(-2, 3, cream.shape), 0, 255).astype(np.uint8)
    return cream, sage, cream_again, pale_blue


def test_background_colour_alone_is_not_a_duplicate(vase_composites):
    cream, sage, _, _ = vase_composites
    # The luminance hash alone cannot tell them apart; that is why colour is compared too.
    assert hamming(dhash(cream), dhash(sage)) <= ThresholdFilter.Config().dedupe_distance
    out = ThresholdFilter().select(_scored([0.9, 0.8], [cream, sage]))
    assert [d.kept for d in out] == [True, True]


def test_near_identical_composites_are_deduped(vase_composites):
    cream, sage, cream_again, _ = vase_composites
    out = ThresholdFilter().select(_scored([0.9, 0.8, 0.85], [cream, sage, cream_again]))
    assert [d.kept for d in out] == [True, True, False]
    assert "near-duplicate of id00" in out[2].reason and "ΔE" in out[2].reason


def test_pale_backdrops_a_person_tells_apart_are_both_kept(vase_composites):
    cream, _, _, pale_blue = vase_composites
    assert [d.kept for d in ThresholdFilter().select(_scored([0.9, 0.8], [cream, pale_blue]))] == [True, True]


def test_dedupe_color_zero_tolerance_keeps_recoloured_twins_apart():
    a = _img(4)
    tinted = np.clip(a.astype(int) + [5, 0, -5], 0, 255).astype(np.uint8)
    assert [d.kept for d in ThresholdFilter().select(_scored([0.9, 0.8], [a, tinted]))] == [True, False]
    strict = ThresholdFilter({"dedupe_color": 0.5}).select(_scored([0.9, 0.8], [a, tinted]))
    assert [d.kept for d in strict] == [True, True]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), shift=st.integers(0, 60))
def test_color_distance_properties(seed, shift):
    a = _img(seed)
    b = np.clip(a.astype(int) + shift, 0, 255).astype(np.uint8)
    la, lb = lab_thumbnail(a), lab_thumbnail(b)
    assert color_distance(la, la) == 0.0
    assert color_distance(la, lb) == pytest.approx(color_distance(lb, la))
    c = np.clip(a.astype(int) + shift + 20, 0, 255).astype(np.uint8)
    # Moving further in brightness never looks closer.
    assert color_distance(la, lab_thumbnail(c)) >= color_distance(la, lb) - 1e-3


def test_low_total_quotes_the_lowest_scorers_reason():
    s = Scored("x", Candidate(_img(0), 0, {}), {"seams": 0.1, "color": 0.9}, 0.4,
               reasons={"seams": "bright halo along the paste edge", "color": ""})
    (d,) = ThresholdFilter({"min_score": 0.5}).select([s])
    assert not d.kept
    assert "total 0.400 < 0.5" in d.reason and "lowest: seams 0.100 (bright halo along the paste edge)" in d.reason


def test_per_scorer_minimum_quotes_its_reason_and_missing_scores():
    s = Scored("x", Candidate(_img(0), 0, {}), {"seams": 0.1}, 0.1, reasons={"seams": "dark rim"})
    (d,) = ThresholdFilter({"min_scores": {"seams": 0.5, "framing": 0.2}}).select([s])
    assert "seams 0.100 (dark rim) < 0.5" in d.reason and "framing missing < 0.2" in d.reason
