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
from .continuation import continued


class ExpansionConfig(StageConfig):
    """Calibration of the expansion measure (see docs/scorers.md)."""

    side: int = Field(320, ge=64, le=2048, json_schema_extra=WORK, description="Long side (px) of the working copy.")
    likeness: float = Field(0.75, gt=0.5, lt=1, description="Product-likeness (P/(P+S) of the colour) from which a "
                            "pixel outside the mask counts as product matter.")
    reach: float = Field(0.35, gt=0, le=2, description="How far out (in product sizes, √area) regrowth is looked for.")
    continuation: float = Field(10.0, ge=0, le=40, description="Shade-tolerant ΔE within which a pixel just outside "
                                "the mask continues the product's rim at its nearest outline point (0: off).")
    darkening: float = Field(0.3, ge=0, le=0.8, description="Darkening (share of the rim's lightness) a continuation "
                             "may show and still count as the rim's, at a third of its ΔL.")
    rim_likeness: float = Field(0.6, ge=0, le=1, description="Rim-likeness (P/(P+S), P: the rim's colours and their "
                                "shaded copies) from which a continuing pixel is the product's, not the scene's.")
    global_colours: bool = Field(False, description="Also count pixels whose colour is like the references' product "
                                 "core (the `likeness` test) wherever they lie, as before continuation.")
    allowance_quantile: float = Field(0.75, ge=0, le=1, description="Quantile of the references' own regrowth "
                                      "(each against its photographed background) tolerated.")
    max_growth: float = Field(0.12, gt=0, le=4, description="Regrown area, as a share of the product's area and "
                              "beyond the references' own, that scores 0; a fifth of it is tolerated.")


def regrowth(image: np.ndarray, mask: np.ndarray | None, colours: ProductColours, cfg: ExpansionConfig,
             band: int) -> float | None:
    """Area of regrown product matter attached to the outside of the mask, as a share of the product's area.

    Regrown matter is what continues the product's rim across the outline (continuation.py): within
    ``continuation`` ΔE of the rim at the nearest outline point, shading darker forgiven, and coloured like
    the rim rather than like the scene away from the product.
    """
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
    ring = (dist > gap) & (dist <= reach)
    flags = ring & (colours.likeness(view, scene) >= cfg.likeness) if cfg.global_colours else np.zeros_like(ring)
    if cfg.continuation > 0:
        flags |= continued(view, dist, size, gap, reach, tolerance=cfg.continuation, darkening=cfg.darkening,
                           likeness=cfg.rim_likeness)
    grown = attached_area(flags, ring & (dist <= gap + 1.5))
    return float(grown.sum() / area)


class ExpansionScorer(Scorer):
    """Object expansion: the product's colours continue past its mask (a taller vase, an extra handle).

    However it was regrown (stretched, extruded, smeared, shaded darker, a larger copy behind), the
    matter continues the product's rim across its outline, where a real boundary changes colour. The
    area of pixels just outside the mask, connected to it, whose local colour continues the rim at
    their nearest outline point (shade-tolerant) and is the rim's rather than the scene's, relative
    to the product's area, is the raw measure. A high quantile (0.75) of the references' own measure, each
    against its photographed background (a tight mask, a product part the mask missed), is the
    allowance; the max would let one reference standing on a product-coloured table excuse all.
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
        vals = [o for o in own if o is not None]
        allow = float(np.quantile(vals, cfg.allowance_quantile)) if vals else 0.0

        def judge(cand: Candidate, mask: np.ndarray | None) -> Score:
            raw = regrowth(cand.image, mask, colours, cfg, band) if mask is not None else None
            if raw is None:
                return Score(1.0)
            value = ramp(raw - allow, cfg.max_growth / 5, cfg.max_growth)
            return verdict(value, f"product-coloured matter grows beyond the product, continuing its rim past the outline "
                           f"({raw:.0%} of its area)")

        return score_each(candidates, context, judge)
