"""The ``expansion`` scorer: product-coloured matter regrown beyond the product mask (inpainting object expansion)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from ecomforge.pathspec import WORK
from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, Score, ScoringContext

from .colours import ProductColours, attached_area
from .common import ReferenceCache, make_view, paste_band, product_size, ramp, score_each, signed_distance, verdict


class ExpansionConfig(StageConfig):
    """Calibration of the expansion measure (see docs/scorers.md)."""

    side: int = Field(320, ge=64, le=2048, json_schema_extra=WORK, description="Long side (px) of the working copy.")
    likeness: float = Field(0.75, gt=0.5, lt=1, description="Product-likeness (P/(P+S) of the colour) from which a "
                            "pixel outside the mask counts as product matter.")
    reach: float = Field(0.35, gt=0, le=2, description="How far out (in product sizes, √area) regrowth is looked for.")
    max_growth: float = Field(0.25, gt=0, le=4, description="Regrown area, as a share of the product's area and "
                              "beyond the references' own, that scores 0; a fifth of it is tolerated.")


def regrowth(image: np.ndarray, mask: np.ndarray | None, colours: ProductColours, cfg: ExpansionConfig,
             band: int) -> float | None:
    """Area of product-coloured matter attached to the outside of the mask, as a share of the product's area."""
    view = make_view(image, mask, cfg.side)
    area = int(view.mask.sum())
    if area < 32 or area > 0.9 * view.mask.size:
        return None
    dist = signed_distance(view.mask)
    size = product_size(view.mask)
    gap = max(1.5, band * view.scale + 0.01 * size)  # the soft paste-back edge blends product and scene
    reach = gap + cfg.reach * size
    scene = dist > reach  # what the scene looks like away from the product
    if scene.sum() < 64:
        scene = dist > gap
    like = colours.likeness(view, scene)
    ring = (dist > gap) & (dist <= reach)
    grown = attached_area(ring & (like >= cfg.likeness), ring & (dist <= gap + 1.5))
    return float(grown.sum() / area)


class ExpansionScorer(Scorer):
    """Object expansion: the product's colours continue past its mask (a taller vase, an extra handle).

    A colour model of the product's core in the references (a Lab histogram) against the
    candidate's own scene (away from the product) makes a per-pixel product-likeness; the area of
    product-like pixels just outside the mask and connected to it, relative to the product's area,
    is the raw measure. Each reference measured against its own photographed background (a loose or
    tight mask, a product part the mask missed) is the allowance.
    """

    name = "expansion"
    Config = ExpansionConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._refs = ReferenceCache()

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[Score]:
        """One score per candidate: 1 − the regrown share beyond the references' own, calibrated."""
        cfg: ExpansionConfig = self.config
        band = paste_band(context)
        models = self._refs.get(context, ("colours", cfg.side), lambda img, m: ProductColours.of(img, m, cfg.side))
        colours = ProductColours.merge(models)
        shas = tuple(r.sha256 for r in context.references)  # the colour model depends on every reference
        own = self._refs.get(context, ("expansion", cfg, band, shas), lambda img, m: regrowth(img, m, colours, cfg, band))
        allow = max((o for o in own if o is not None), default=0.0)

        def judge(cand: Candidate, mask: np.ndarray | None) -> Score:
            raw = regrowth(cand.image, mask, colours, cfg, band) if mask is not None else None
            if raw is None:
                return Score(1.0)
            value = ramp(raw - allow, cfg.max_growth / 5, cfg.max_growth)
            return verdict(value, f"product-coloured matter grows beyond the product ({raw:.0%} of its area)")

        return score_each(candidates, context, judge)
