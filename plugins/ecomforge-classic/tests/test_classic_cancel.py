"""A cancel lands inside a scoring pass: the offline scorers check between candidates."""
from __future__ import annotations

import threading

import pytest

from ecomforge.errors import Cancelled
from ecomforge.run import cancel
from ecomforge.testing import make_reference
from ecomforge.types import Candidate, ScoringContext
from ecomforge_classic.color import ColorScorer
from ecomforge_classic.integration.scene import SceneScorer


def _pass(n: int):
    ref, mask = make_reference(96, 64)
    cands = [Candidate(ref.image.copy(), seed, {}, plugin="t", mask=mask.data) for seed in range(n)]
    return cands, ScoringContext((ref,), (mask,), "a product photo")


@pytest.mark.parametrize("cls,method", [(ColorScorer, "features"), (SceneScorer, "_judge")])
def test_a_cancel_during_a_scoring_pass_stops_it_at_the_next_candidate(cls, method, monkeypatch):
    """40 candidates; the token is cancelled (from another thread) while the fifth is scored: no sixth."""
    scorer = cls()
    cands, context = _pass(40)
    scorer.score(cands[:1], context)  # references' features computed and cached first
    token = cancel.CancelToken()
    seen: list[int] = []
    real = getattr(scorer, method)

    def counted(*args, **kwargs):
        seen.append(1)
        if len(seen) == 5:
            t = threading.Thread(target=token.cancel)
            t.start()
            t.join()
        return real(*args, **kwargs)

    monkeypatch.setattr(scorer, method, counted)
    with cancel.scope(token), pytest.raises(Cancelled):
        scorer.score(cands, context)
    assert len(seen) == 5
