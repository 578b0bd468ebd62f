"""Sharpness of the product region relative to the sharpest reference."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, Score, ScoringContext


def laplacian_energy(image: np.ndarray, mask: np.ndarray | None) -> float:
    """Variance of the Laplacian of the grey image inside the mask (a standard focus measure)."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    inside = lap[mask > 0] if mask is not None and np.any(mask) else lap.ravel()
    return float(inside.var())


class SharpnessScorer(Scorer):
    """1.0 when the product is at least as sharp as in the references, falling to 0 as detail blurs away.

    Calibration: score = min(1, (E_candidate / E_reference) ** gamma), with E the Laplacian energy of
    the product region and E_reference the largest over the references.
    """

    name = "sharpness"

    class Config(StageConfig):
        gamma: float = Field(default=0.5, gt=0, le=4, description="How steeply lost detail lowers the score.")

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[Score]:
        """One score per candidate, saying why when it is low (the manifest and the filter's reason show it)."""
        ref = max(laplacian_energy(r.image, m.data) for r, m in zip(context.references, context.masks))
        out = []
        for c in candidates:
            e = laplacian_energy(c.image, c.mask)
            # A reference without any detail has none to lose: never divide by its zero energy.
            value = 1.0 if ref <= 0 else float(min(1.0, (e / ref) ** self.config.gamma))
            out.append(Score(value, "product is blurred" if value < 0.5 else ""))
        return out
