"""The threshold filter: minimums, top-K, near-duplicates, diversity, reasons."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.testing import FilterContract
from ecomforge.types import Candidate, Scored
from ecomforge_classic.threshold import ThresholdFilter, dhash, hamming


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
