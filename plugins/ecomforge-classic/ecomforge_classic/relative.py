"""Identity scores relative to the references: a candidate is as good as the references are to each other.

Real photos of one product (a new angle, light, pose) never match each other perfectly, and how
well they match depends on the product: a plain mug's photos agree on colour and disagree on
nothing, a printed backpack's keypoints survive only small turns. So each identity scorer
measures a raw similarity (higher = more alike), takes the candidate's best over the references,
and maps it through two anchors:

- ``baseline``: what the references achieve against each other (each one's best match among the
  others, the median over them) — a real re-shoot should reach it, and then scores 1;
- ``floor``: what an unrelated product typically gets — it scores 0.

score = clip((raw - floor) / (baseline - floor), 0, 1), where the floor is lowered to half the
baseline when the references barely agree (an untextured product's photos share few keypoints),
and a baseline of 0 gives no evidence against anything (1). With a single reference there is
nothing to compare it to, and the scorer's ``default_baseline`` stands in (``single_baseline``: a scorer may
tell better from the reference itself, as ``keypoints`` does). A reference scored against
itself reaches its self-similarity (the maximum) and so scores 1.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from ecomforge.run import cancel
from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, Score, ScoringContext

from .regions import region_key


class RelativeConfig(StageConfig):
    """Anchors shared by the relative identity scorers (each scorer sets its own defaults)."""

    floor: float = Field(default=0.0, description="Raw similarity an unrelated product gets (scores 0).")
    default_baseline: float = Field(default=1.0, description="Raw similarity a re-shoot gets, used when there is "
                                                             "only one reference (scores 1).")
    baseline_quantile: float = Field(default=0.5, ge=0, le=1, description="Which of the references' best matches "
                                     "to each other is the baseline (0: the worst, 0.5: the median).")
    min_span: float = Field(default=0.05, gt=0, description="Smallest baseline - floor gap, so near-identical "
                                                            "references do not make every small difference fatal.")


class RelativeScorer(Scorer):
    """Base of the offline identity scorers: features, a raw similarity, and the reference-relative map."""

    Config = RelativeConfig
    what = "product"  # named in the reason of a low score

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._cache: dict = {}

    def features(self, image: np.ndarray, mask: np.ndarray | None) -> Any:
        """The scorer's description of the product region (cached for references)."""
        raise NotImplementedError

    def reference_features(self, image: np.ndarray, mask: np.ndarray | None) -> Any:
        """A reference's description (by default the same as a candidate's)."""
        return self.features(image, mask)

    def similarity(self, candidate: Any, reference: Any) -> float:
        """Raw similarity of two product descriptions, higher = more alike."""
        raise NotImplementedError

    def _reference_features(self, context: ScoringContext) -> list:
        out = []
        for ref, mask in zip(context.references, context.masks):
            key = region_key(ref.sha256, mask.data)
            if key not in self._cache:
                self._cache[key] = self.reference_features(ref.image, mask.data)
            out.append(self._cache[key])
        return out

    def single_baseline(self, candidate: Any, reference: Any) -> float:
        """The baseline a candidate is judged by when there is only one reference (nothing to compare it with):
        ``default_baseline`` unless the scorer can tell what this product's re-shoot would reach."""
        return self.config.default_baseline

    def baseline(self, refs: list) -> float:
        """Median over the references of each one's best raw similarity to the others."""
        if len(refs) < 2:
            return self.config.default_baseline
        best = [max(self.similarity(r, o) for j, o in enumerate(refs) if j != i) for i, r in enumerate(refs)]
        return float(np.quantile(best, self.config.baseline_quantile))

    def calibrate(self, raw: float, baseline: float) -> float:
        """The relative score in [0, 1] of a raw similarity, given the references' baseline."""
        if baseline <= 0:  # the references share nothing measurable: no evidence against any candidate
            return 1.0
        floor = min(self.config.floor, baseline / 2)  # references that barely agree lower the bar for all
        span = max(baseline - floor, self.config.min_span)  # near-identical references: widen downwards
        floor = baseline - span
        return float(np.clip((raw - floor) / span, 0.0, 1.0))

    def reason(self, raw: float, baseline: float, references: int = 2) -> str:
        """Why a score is low, in a few words (with one reference, the baseline is what a re-shoot would reach)."""
        if references < 2:
            return f"{self.what} differs from the reference ({raw:.2f} vs {baseline:.2f} expected of a re-shoot)"
        return f"{self.what} differs from the references ({raw:.2f} vs {baseline:.2f} between the references)"

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[Score]:
        """The best match over the references, relative to the references' own agreement, per candidate."""
        self.ensure_setup()
        refs = self._reference_features(context)
        base = self.baseline(refs)
        out = []
        for cand in candidates:
            cancel.check()  # a scoring pass over many candidates stops between them
            feats = self.features(cand.image, cand.mask)
            raw = max((self.similarity(feats, r) for r in refs), default=0.0)
            mine = self.single_baseline(feats, refs[0]) if len(refs) == 1 else base
            value = self.calibrate(raw, mine) if np.isfinite(raw) else 0.0
            why = self.reason(raw, mine, len(refs)) if value < 0.5 else ""
            out.append(self.adjust(Score(value, why), feats, refs))
        return out

    def adjust(self, score: Score, candidate: Any, refs: list) -> Score:
        """A scorer's own check beyond the reference-relative map (by default none): the final score."""
        return score
