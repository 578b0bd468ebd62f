"""The ``framing`` scorer: is the product cut by the frame, or implausibly small or large in it?"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import Field

from ecomforge.pathspec import WORK
from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, Score, ScoringContext

from .colours import ProductColours
from .common import ReferenceCache, make_view, ramp, score_each, verdict

SIDES = ("top", "bottom", "left", "right")


class FramingConfig(StageConfig):
    """Calibration of the framing checks (see docs/scorers.md)."""

    side: int = Field(192, ge=32, le=2048, json_schema_extra=WORK, description="Long side (px) of the working copy of the mask.")
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
    shape: np.ndarray  # the mask's bounding-box crop at 32×32: which reference a candidate came from


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
    crop = m[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.uint8) * 255
    shape = cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA) >= 128
    return Layout(tuple(float(c) for c in cut), float(max(bw / w, bh / h)), float(m.mean()), shape)


def source(lay: Layout, refs: list[Layout]) -> Layout | None:
    """The reference whose product outline the candidate's matches best (IoU of the normalised boxes, ≥ 0.8)."""
    best, best_iou = None, 0.8
    for r in refs:
        iou = np.logical_and(lay.shape, r.shape).sum() / max(1, np.logical_or(lay.shape, r.shape).sum())
        if iou > best_iou:
            best, best_iou = r, iou
    return best


class FramingScorer(Scorer):
    """Framing: the product cut by a frame edge (where no reference is), tiny in the scene, or filling it.

    Also a product its reference photo had cut off (touching that photo's edge) placed inside a new
    frame, where the straight cut is seen in mid-air; the source reference is the one whose
    outline the candidate's matches.

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
            # A reference cut by its frame, moved into a scene: the cut edge now floats in view.
            src = source(lay, refs)
            # Not the bottom: a base cut flat by the photo's edge reads as a base when it stands on a surface.
            floating = [src.cut[i] - lay.cut[i] if src and SIDES[i] != "bottom" else 0.0 for i in range(4)]
            fside = int(np.argmax(floating))
            checks = [
                (ramp(floating[fside], 0.05, cfg.max_cut),
                 f"the product's {SIDES[fside]} was cut off in its photo and the cut now shows in the scene"),
                (ramp(excess[worst], 0.03, cfg.max_cut),
                 f"product cut by the {SIDES[worst]} edge of the frame ({lay.cut[worst]:.0%} of it on the edge)"),
                (ramp(lay.extent, small, small / 3), f"product is small in the frame ({lay.extent:.0%} of its size)"),
                (ramp(lay.area, large, min(1.0, large + 0.25)), f"product fills the frame ({lay.area:.0%} of it)"),
            ]
            return verdict(*min(checks, key=lambda c: c[0]))

        return score_each(candidates, context, judge)
