"""The ``parts`` scorer: is every part of the product one the references show?

A foreign patch painted onto the product, a part replaced by background, a recoloured panel: each
is a *connected region* of the product whose colours no reference photo of it shows, or that
looks like the backdrop right around it. Whole-product statistics (``color``) dilute such a
region in the rest of the product; here it is found as a region and measured by its size.

Per pixel of the product (eroded mask, at ``side`` px): its CIELAB colour is looked up in the
union of the references' product colours (a smoothed 3-D histogram, lightness in coarse bins so
a re-shoot in other light keeps its colours) and in the colours of a ring of scene just outside
the candidate's mask. A pixel is a defect where the references show its colour at under
``support_level`` of their peak density, or where the ring shows it ``background_ratio`` times
more densely than the references' product, or where its local detail is below every reference's
``flat_share`` quantile (a smear) or above every reference's top ``busy_share`` (a foreign texture
in the product's own colours: grain, gravel, print from elsewhere). Defects are opened
(``open_radius``, so scattered specks of highlight and JPEG noise drop out) and the largest
connected region, as a share of the product, is the candidate's defect size. The references measured the same way, each against the
others, give the defect size real re-shoots show (their median, the baseline); the score falls
linearly from 1 at the baseline to 0 at ``span`` more of the product.

A part that went missing and was painted over with scene of the product's own colours shows no new
colour. It shows as an outline with nothing behind it: the mask still runs where the product's
boundary was, and the image has no edge there. The longest such run of the outline (edgeless_run()),
beyond the longest a reference photo shows, costs points too, up to 0 at ``outline_span`` more of
the outline; the lower of the two scores counts, and its reason is given.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import Field

from ecomforge.imaging.masks import bbox, dilate, erode
from ecomforge.pathspec import WORK
from ecomforge.run import cancel
from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, Score, ScoringContext

from .outline import edgeless_run
from .regions import region_key

__all__ = ["PartsScorer", "colour_density", "edgeless_run"]

BINS = (6, 32, 32)  # L, a*, b*: lightness coarse (light changes it), chroma fine (a new colour is a defect)
_SMOOTH = np.array([0.8, 1.0, 1.0])  # histogram blur per axis, in bins


class PartsConfig(StageConfig):
    """How a foreign or missing region is told from a re-shoot's new view."""

    side: int = Field(default=128, ge=32, le=512, json_schema_extra=WORK, description="Long side (px) of the product's box at which it is judged.")
    support_level: float = Field(default=0.02, gt=0, lt=1, description="Reference colour density (share of its peak) "
                                 "below which the references do not show a colour.")
    background_ratio: float = Field(default=3.0, gt=0, description="A product pixel whose colour the surrounding scene "
                                    "shows this many times more densely than the references' product is background.")
    flat_share: float = Field(default=0.02, ge=0, lt=1, description="A product pixel whose local detail is below "
                              "this quantile of the references' is smeared (0: detail not judged).")
    busy_share: float = Field(default=0.02, ge=0, lt=1, description="A product pixel whose local detail is above "
                              "this top quantile of every reference's is a foreign texture (0: not judged).")
    open_radius: int = Field(default=2, ge=0, le=16, description="Opening radius (px at ``side``) that removes specks.")
    span: float = Field(default=0.2, gt=0, le=1, description="Defect share of the product, beyond the references' own, "
                        "that scores 0.")
    edge_contrast: float = Field(default=6.0, ge=0, le=100, description="Colour step (CIELAB units) across the outline "
                                 "below which it shows no boundary (0: the outline is not judged).")
    outline_span: float = Field(default=0.2, gt=0, le=1, description="Share of the outline in one edgeless run, beyond "
                                "the longest a reference shows, that scores 0.")


def _crop(image: np.ndarray, mask: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lab crop and mask of the product's box with a margin for the scene ring, scaled so the box is ``side``.

    Also the local detail (mean |Laplacian| of lightness) at that size, measured at the photo's own
    resolution where the box is smaller than ``side``: upsampling would smooth it into a smear.
    """
    if not np.any(mask):
        mask = np.full(image.shape[:2], 255, np.uint8)
    x0, y0, x1, y1 = bbox(mask)
    margin = int(0.25 * max(x1 - x0, y1 - y0))
    X0, Y0 = max(0, x0 - margin), max(0, y0 - margin)
    X1, Y1 = min(image.shape[1], x1 + margin), min(image.shape[0], y1 + margin)
    s = side / max(x1 - x0, y1 - y0)
    size = (max(1, round((X1 - X0) * s)), max(1, round((Y1 - Y0) * s)))
    crop = np.ascontiguousarray(image[Y0:Y1, X0:X1])
    img = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    m = cv2.resize(mask[Y0:Y1, X0:X1], size, interpolation=cv2.INTER_NEAREST)
    lab = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2LAB)
    if s > 1:
        grey = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32)
        detail = cv2.resize(_detail(grey, 5 / s), size, interpolation=cv2.INTER_LINEAR)
    else:
        detail = _detail(lab[..., 0].astype(np.float32), 5)
    return lab, m, detail


def _detail(grey: np.ndarray, window: float) -> np.ndarray:
    """Mean |Laplacian| over a ``window``-px box (at least 3 px)."""
    k = max(3, int(round(window)) | 1)
    return cv2.blur(np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3)), (k, k))


def _bins(lab: np.ndarray) -> tuple[np.ndarray, ...]:
    """Histogram bin indices (L, a*, b*) of Lab pixels (8-bit OpenCV Lab; a*, b* within ±80 of 128)."""
    v = lab.astype(np.float32)
    return (np.clip(v[:, 0] * BINS[0] / 256, 0, BINS[0] - 1).astype(np.intp),
            np.clip((v[:, 1] - 48) * BINS[1] / 160, 0, BINS[1] - 1).astype(np.intp),
            np.clip((v[:, 2] - 48) * BINS[2] / 160, 0, BINS[2] - 1).astype(np.intp))


def _blur_axis(hist: np.ndarray, axis: int, sigma: float) -> np.ndarray:
    """Gaussian blur of an array along one axis, its edges clamped."""
    r = int(2 * sigma) + 1
    kernel = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    pad = [(0, 0)] * hist.ndim
    pad[axis] = (r, r)
    padded = np.pad(hist, pad, mode="edge")
    n = hist.shape[axis]
    return sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(kernel))


def colour_density(lab_pixels: np.ndarray) -> np.ndarray:
    """Smoothed, normalised 3-D Lab histogram of some pixels (all zero when there are none)."""
    hist = np.zeros(BINS, np.float32)
    if len(lab_pixels):
        np.add.at(hist, _bins(lab_pixels), 1.0)
        for axis, sigma in enumerate(_SMOOTH):  # separable blur, edges clamped: tolerance to small shifts
            hist = _blur_axis(hist, axis, float(sigma))
    return hist / max(float(hist.sum()), 1e-12)


class PartsScorer(Scorer):
    """Local identity: the largest region of the product whose colours the references do not show, or the
    longest stretch of its outline with nothing behind it."""

    name = "parts"
    Config = PartsConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._cache: dict = {}

    def _prepare(self, image: np.ndarray, mask: np.ndarray | None) -> tuple:
        """(Lab crop, product pixels, scene ring, local detail, mask) at the working scale."""
        lab, m, detail = _crop(image, mask if mask is not None else np.zeros(image.shape[:2], np.uint8),
                               self.config.side)
        inside = erode(m, 2) > 127  # the outline's blended pixels belong to neither side
        ring = (dilate(m, max(3, self.config.side // 10)) > 127) & ~(dilate(m, 2) > 127)
        return lab, inside, ring, detail, m

    def defect_share(self, prepared: tuple, colours: Sequence[np.ndarray], flat: float = -1.0,
                     busy: float = np.inf) -> float:
        """Share of the product covered by its largest region of defects: colours no reference shows or background
        ones, detail below ``flat`` or above ``busy``."""
        lab, inside, ring, detail, _ = prepared
        if inside.sum() < 16 or not colours:
            return 0.0
        cfg, idx = self.config, _bins(lab[inside])
        # A colour counts as shown when any one reference shows it: views of the product differ in which parts
        # they show, and averaging the references would dilute each one's colours.
        own = np.max([c[idx] for c in colours], axis=0)
        shown = np.max([c[idx] / max(float(c.max()), 1e-12) for c in colours], axis=0)
        bad = (shown < cfg.support_level) | (detail[inside] < flat) | (detail[inside] > busy)
        if ring.sum() >= 16:
            bad |= colour_density(lab[ring])[idx] > cfg.background_ratio * own
        defects = np.zeros(inside.shape, np.uint8)
        defects[inside] = bad.astype(np.uint8) * 255
        if cfg.open_radius:
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * cfg.open_radius + 1,) * 2)
            defects = cv2.morphologyEx(defects, cv2.MORPH_OPEN, k)
        n, _, stats, _ = cv2.connectedComponentsWithStats(defects, connectivity=8)
        largest = int(stats[1:, cv2.CC_STAT_AREA].max()) if n > 1 else 0
        return largest / float(inside.sum())

    def _references(self, context: ScoringContext) -> tuple[list[np.ndarray], float]:
        """The references' colour densities, their own median defect share, the detail bounds and their longest
        edgeless outline run (cached per reference set)."""
        key = tuple(region_key(r.sha256, m.data) for r, m in zip(context.references, context.masks))
        if key not in self._cache:
            prepared = [self._prepare(r.image, m.data) for r, m in zip(context.references, context.masks)]
            colours = [colour_density(lab[inside]) for lab, inside, _, _, _ in prepared]
            flat = -1.0
            if self.config.flat_share > 0:
                flat = float(min(np.quantile(d[i], self.config.flat_share) for _, i, _, d, _ in prepared if i.any()))
            busy = np.inf
            if self.config.busy_share > 0:
                busy = float(max(np.quantile(d[i], 1 - self.config.busy_share) for _, i, _, d, _ in prepared if i.any()))
            own = [self.defect_share(p, colours[:i] + colours[i + 1:], flat, busy) for i, p in enumerate(prepared)]
            runs = [self.edgeless(p) for p in prepared]
            self._cache[key] = (colours, float(np.median(own)) if len(prepared) > 1 else 0.0, (flat, busy),
                                float(max(runs)))
        return self._cache[key]

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[Score]:
        """Per candidate: 1 at the references' own defect size, falling to 0 at ``span`` more of the product."""
        self.ensure_setup()
        colours, baseline, flat, run_baseline = self._references(context)
        out = []
        for cand in candidates:
            cancel.check()
            prepared = self._prepare(cand.image, cand.mask)
            share = self.defect_share(prepared, colours, *flat)
            value = float(np.clip(1.0 - (share - baseline) / self.config.span, 0.0, 1.0))
            reason = (f"{share:.0%} of the product is one region no reference shows: foreign or background colours, "
                      f"or detail smeared or foreign (references: {baseline:.0%})") if value < 0.5 else ""
            run = self.edgeless(prepared)
            outline = float(np.clip(1.0 - (run - run_baseline) / self.config.outline_span, 0.0, 1.0))
            if outline < value:
                value = outline
                reason = (f"{run:.0%} of the product's outline shows no edge in the image: a part is missing "
                          f"(references: {run_baseline:.0%})") if value < 0.5 else ""
            out.append(Score(value, reason))
        return out

    def edgeless(self, prepared: tuple) -> float:
        """The longest edgeless run of the outline (0 when the outline is not judged)."""
        lab, inside, _, _, m = prepared
        if self.config.edge_contrast <= 0 or inside.sum() < 16:
            return 0.0
        return edgeless_run(lab, m, self.config.edge_contrast)
