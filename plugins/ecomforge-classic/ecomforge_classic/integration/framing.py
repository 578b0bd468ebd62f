"""The ``framing`` scorer: is the product cut by the frame, or implausibly small or large in it?"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, Score, ScoringContext

from .colours import ProductColours
from .common import ReferenceCache, make_view, ramp, score_each, verdict

SIDES = ("top", "bottom", "left", "right")


class FramingConfig(StageConfig):
    """Calibration of the framing checks (see docs/scorers.md)."""

    side: int = Field(192, ge=32, le=2048, description="Long side (px) of the working copy of the mask.")
    max_cut: float = Field(0.25, gt=0, le=1, description="Share of the product's width (or height) lying on one "
                           "frame edge, beyond the references', that scores 0.")
    min_extent: float = Field(0.25, gt=0, le=1, description="Product bounding box (long side, as a fraction of the "
                              "frame) below which it starts to look lost in the scene.")
    max_area: float = Field(0.7, gt=0, le=1, description="Share of the frame the product may fill before it starts "
                            "to look cramped (raised to just above the references' own).")


@dataclass(frozen=True)
class Layout:
    """Where the product sits in its frame."""

    cut: tuple[float, float, float, float]  # per side: share of the product's extent lying on that frame edge
    extent: float  # long side of the product's bounding box relative to the frame
    area: float  # share of the frame covered by the product


def layout(image: np.ndarray, mask: np.ndarray, side: int, colours: ProductColours | None = None) -> Layout | None:
    """The product's layout in its frame; None for an empty mask.

    With ``colours``, only mask pixels coloured like the product count as cut: a mask that leaks
    into the background (a table, a wall) up to the frame edge has not cut the product.
    """
    view = make_view(image, mask, side)
    m = view.mask
    if not m.any():
        return None
    h, w = m.shape
    ys, xs = np.nonzero(m)
    bw, bh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    on = m
    if colours is not None and (~m).sum() >= 64:
        on = m & (colours.likeness(view, ~m) >= 0.5)
    strip = max(1, round(0.006 * max(h, w)))  # resampling blurs the frame line by a pixel or so
    cut = (on[:strip].any(axis=0).sum() / bw, on[-strip:].any(axis=0).sum() / bw,
           on[:, :strip].any(axis=1).sum() / bh, on[:, -strip:].any(axis=1).sum() / bh)
    return Layout(tuple(float(c) for c in cut), float(max(bw / w, bh / h)), float(m.mean()))


class FramingScorer(Scorer):
    """Framing: the product cut by a frame edge (where no reference is), tiny in the scene, or filling it.

    Compared with the references' own framing: a close-up reference allows a close-up candidate,
    a reference cut at the bottom allows a candidate cut there.
    """

    name = "framing"
    Config = FramingConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._refs = ReferenceCache()

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[Score]:
        """One score per candidate: the worst of the cut, small and large checks."""
        cfg: FramingConfig = self.config
        colours = ProductColours.merge(self._refs.get(context, ("colours", cfg.side),
                                                      lambda img, m: ProductColours.of(img, m, cfg.side)))
        shas = tuple(r.sha256 for r in context.references)
        refs = [r for r in self._refs.get(context, ("framing", cfg.side, shas),
                                          lambda img, m: layout(img, m, cfg.side, colours)) if r]
        allow_cut = [max((r.cut[i] for r in refs), default=0.0) for i in range(4)]
        # A reference shot small (or large) makes that framing plausible for this product.
        small = min([cfg.min_extent, *(0.9 * r.extent for r in refs)])
        large = max([cfg.max_area, *(min(0.95, r.area + 0.05) for r in refs)])

        def judge(cand: Candidate, mask: np.ndarray | None) -> Score:
            lay = layout(cand.image, mask, cfg.side, colours) if mask is not None else None
            if lay is None:
                return Score(1.0)
            excess = [lay.cut[i] - allow_cut[i] for i in range(4)]
            worst = int(np.argmax(excess))
            checks = [
                (ramp(excess[worst], 0.03, cfg.max_cut),
                 f"product cut by the {SIDES[worst]} edge of the frame ({lay.cut[worst]:.0%} of it on the edge)"),
                (ramp(lay.extent, small, small / 3), f"product is small in the frame ({lay.extent:.0%} of its size)"),
                (ramp(lay.area, large, min(1.0, large + 0.25)), f"product fills the frame ({lay.area:.0%} of it)"),
            ]
            return verdict(*min(checks, key=lambda c: c[0]))

        return score_each(candidates, context, judge)
