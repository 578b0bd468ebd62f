"""The ``seams`` scorer: a halo or a colour step along the paste-back edge, beyond what the reference shows."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import Field

from ecomforge.pathspec import WORK
from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, Score, ScoringContext

from .common import (
    ReferenceCache,
    View,
    local_mean,
    make_view,
    paste_band,
    product_size,
    ramp,
    score_each,
    signed_distance,
    verdict,
)
from .regions_seam import region_evidence

OUTER = 5  # background bands outside the rim: a seam may sit up to about 5 band widths out (a wide dilate)


class SeamsConfig(StageConfig):
    """How the edge profile is read and calibrated (see docs/scorers.md)."""

    side: int = Field(384, ge=64, le=2048, json_schema_extra=WORK, description="Long side (px) of the working copy; halos are thin, so "
                      "this is larger than the other scorers'.")
    halo_tolerance: float = Field(8.0, gt=0, le=100, description="ΔE by which the rim may stand out from both "
                                  "sides before a contour pixel counts as haloed.")
    max_halo: float = Field(0.35, gt=0, le=1, description="Share of the contour, beyond the reference's own, "
                            "that scores 0.")
    max_carried: float = Field(6.0, gt=0, le=200, description="Width (px of the candidate) of the reference's old "
                               "background carried around the outline that scores 0; a quarter of it is tolerated.")
    max_step: float = Field(10.0, gt=0, le=100, description="Contour-aligned colour step (ΔE) in the background, "
                            "beyond the reference's own, that scores 0.")
    region_side: int = Field(256, ge=64, le=1024, json_schema_extra=WORK, description="Long side (px) of the working "
                             "copy for the inpainted-region check (its filters are calibrated at this size).")
    region_tolerance: float = Field(0.3, ge=0, le=10, description="Inpainted-region evidence (flatter grain × colour "
                                    "shift of the ring around the product vs the far scene) still scoring 1.")
    max_region: float = Field(0.8, gt=0, le=20, description="Inpainted-region evidence that scores 0; 0 < "
                              "region_tolerance < max_region.")


@dataclass(frozen=True)
class EdgeProfile:
    """How an image's product edge looks: share of haloed contour, its mean sign, the background step."""

    halo: float  # share of contour pixels whose rim stands out from both sides
    brightness: float  # mean L* of (rim − neighbours) over the haloed pixels: + bright, − dark
    step: float  # contour-aligned ΔE step just outside the paste band, beyond the background's own variation
    carried: float  # mean width (original px) of the reference's old background carried around the outline


class SeamsScorer(Scorer):
    """Halos and seams: the thin band around the product compared with the product and the scene on either side.

    Along the product's contour, local means of four bands (inside the product, the rim across the
    paste-back edge, the background just outside, further out) give a profile. A natural or clean
    edge blends the two sides (the rim lies between them in Lab); a halo stands out from both; a
    seam is a step in the background that follows the product's outline. The same profile of each
    reference photo with its own mask is the allowance: an edge that looks like the reference's
    own edge is fine. A third check (``regions_seam``) looks further out, for an inpainted box or
    ellipse around the product: the ring hugging the product with another grain and colour than the
    scene beyond any inpainting pad.
    """

    name = "seams"
    Config = SeamsConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._refs = ReferenceCache()

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[Score]:
        """One score per candidate: the worst of the halo, carried-background and step checks."""
        cfg: SeamsConfig = self.config
        band = paste_band(context)
        key = ("seams", cfg.side, cfg.halo_tolerance, band)
        palettes = self._refs.get(context, key + ("palette",), lambda img, m: near_palette(img, m, cfg.side, band))
        palette = np.concatenate([p for p in palettes if len(p)] or [np.zeros((0, 3), np.float32)])
        # Each reference against its own palette: how much "halo" its real, photographed edge shows.
        own = self._refs.get(context, key + ("own",), lambda img, m: edge_profile(
            img, m, cfg.side, band, cfg.halo_tolerance, near_palette(img, m, cfg.side, band)))
        allow = [p for p in own if p is not None]
        allow_halo = max((p.halo for p in allow), default=0.0)
        allow_step = max((p.step for p in allow), default=0.0)
        allow_carried = max((p.carried for p in allow), default=0.0)

        def judge(cand: Candidate, mask: np.ndarray | None) -> Score:
            checks = []
            prof = edge_profile(cand.image, mask, cfg.side, band, cfg.halo_tolerance, palette)
            if prof is not None:
                tone = "bright" if prof.brightness > 0 else "dark"
                checks += [
                    (ramp(prof.halo - allow_halo, 0.05, cfg.max_halo),
                     f"{tone} halo around the product ({prof.halo:.0%} of its outline)"),
                    (ramp(prof.carried - allow_carried, cfg.max_carried / 4, cfg.max_carried),
                     f"a {prof.carried:.1f} px rim of the reference photo's background around the product"),
                    (ramp(prof.step - allow_step, 0.2 * cfg.max_step, cfg.max_step),
                     f"colour step along the paste-back edge ({prof.step:.1f} ΔE)"),
                ]
            # An inpainted box/ellipse around the product: grain, softness and colour differ from the far scene.
            region = region_evidence(cand.image, mask, cfg.region_side)
            if region is not None:
                checks.append((ramp(region.evidence, cfg.region_tolerance, max(cfg.max_region, cfg.region_tolerance + 1e-3)),
                               f"an inpainted region around the product: grainier/softer and {region.colour:.0f} ΔE "
                               "off the rest of the scene"))
            if not checks:
                return Score(1.0)
            return verdict(*min(checks, key=lambda c: c[0]))

        return score_each(candidates, context, judge)


def near_palette(image: np.ndarray, mask: np.ndarray, side: int, band: int) -> np.ndarray:
    """Up to 4 Lab colours of the background hugging the product in a reference (what a loose mask carries)."""
    geo = _Geometry.of(make_view(image, mask, side), band)
    if geo is None:
        return np.zeros((0, 3), np.float32)
    px = geo.view.lab[(geo.dist > 0) & (geo.dist <= geo.w + geo.k)].reshape(-1, 3)[::4]
    if len(px) < 16:
        return np.zeros((0, 3), np.float32)
    n = min(4, len(px))
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(0)  # k-means++ seeding: same palette every run
    _, labels, centres = cv2.kmeans(px.astype(np.float32), n, None, crit, 1, cv2.KMEANS_PP_CENTERS)
    share = np.bincount(labels.ravel(), minlength=n) / len(px)
    return centres[share >= 0.05].astype(np.float32)


@dataclass(frozen=True)
class _Geometry:
    """Distance bands around one product outline at the working size."""

    view: View
    dist: np.ndarray
    w: float  # half-width of the soft paste-back transition (working px)
    k: float  # width of each averaging band (working px)
    contour: np.ndarray

    @classmethod
    def of(cls, view: View, band: int) -> _Geometry | None:
        area = int(view.mask.sum())
        if area < 64 or area > 0.9 * view.mask.size:
            return None
        dist = signed_distance(view.mask)
        w = max(1.5, band * view.scale * 0.5)
        k = max(3.0, 0.03 * product_size(view.mask))  # enough pixels to average, thin enough to stay local
        contour = (dist > 0) & (dist <= 1.0)
        contour[:2] = contour[-2:] = False  # the frame edge is not part of the product's outline
        contour[:, :2] = contour[:, -2:] = False
        if contour.sum() < 16:
            return None
        # Work on the box that the bands and their averaging windows reach: the rest never counts.
        reach = w + OUTER * k + cls.window(w, k)
        ys, xs = np.nonzero(dist <= reach)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        crop = View(view.rgb[y0:y1, x0:x1], view.lab[y0:y1, x0:x1], view.mask[y0:y1, x0:x1], view.scale)
        return cls(crop, dist[y0:y1, x0:x1], w, k, contour[y0:y1, x0:x1])

    @staticmethod
    def window(w: float, k: float) -> int:
        """Side of the box over which band means are taken around each outline point (odd)."""
        return int(2 * (w + OUTER * k)) | 1

    def bands(self) -> list[np.ndarray]:
        """inside, rim (the transition), then OUTER bands of width k outward, as boolean masks."""
        d, w, k = self.dist, self.w, self.k
        outer = [(d > w + i * k) & (d <= w + (i + 1) * k) for i in range(OUTER)]
        return [(d <= -w) & (d > -w - k), (d > -w) & (d <= w), *outer]


def edge_profile(image: np.ndarray, mask: np.ndarray | None, side: int, band: int, tolerance: float,
                 palette: np.ndarray) -> EdgeProfile | None:
    """The edge profile of ``image`` around ``mask``; ``palette``: the references' near-background colours."""
    geo = _Geometry.of(make_view(image, mask, side), band)
    if geo is None:
        return None
    lab, contour = geo.view.lab, geo.contour
    win = geo.window(geo.w, geo.k)
    maps = [local_mean(lab, b, win) for b in geo.bands()]
    valid = np.ones(int(contour.sum()), bool)
    for _, wsum in maps:
        valid &= wsum[contour] > 0.02  # every band must have pixels near this contour point
    if valid.sum() < 16:
        return None
    I, R, *O = (m[contour][valid] for m, _ in maps)
    O1 = O[0]
    off = _distance_to_segment(R, I, O1)
    for colour in palette:  # a rim the colour of the reference's own background is judged by `carried`
        off = np.minimum(off, _distance_to_triangle(R, I, O1, np.broadcast_to(colour, R.shape)))
    haloed = off > tolerance
    brightness = float((R[haloed, 0] - 0.5 * (I[haloed, 0] + O1[haloed, 0])).mean()) if haloed.any() else 0.0
    # A seam: one step between neighbouring outer bands jumps more than the others, all along the
    # outline; texture and gradients change every step alike, and their jumps do not line up.
    jumps = np.stack([np.linalg.norm(O[i] - O[i + 1], axis=1) for i in range(OUTER - 1)])
    step = 0.0
    for i in range(OUTER - 1):
        others = np.delete(jumps, i, axis=0).min(axis=0)
        step = max(step, float(np.percentile(jumps[i] - others, 60)))
    # Visual masking: a busy scene hides a step that a plain one shows, so texture discounts it.
    # Each band's own spread (pixels at one distance) does not straddle a seam that follows the outline.
    sds = [_local_spread(lab, b, win, maps[i + 2][0]) for i, b in enumerate(geo.bands()[2:])]
    texture = float(np.median([np.median(sd[contour]) for sd in sds]))
    step /= max(1.0, texture / 4.0)
    return EdgeProfile(float(haloed.mean()), brightness, step,
                       _carried_width(geo, maps[0][0], maps[-1][0], sds[-1], palette))


def _carried_width(geo: _Geometry, inside: np.ndarray, scene: np.ndarray, scene_sd: np.ndarray,
                   palette: np.ndarray) -> float:
    """Mean width (original px) of reference-background colour hugging the outline, unlike product and scene.

    Only a band attached to the outline counts; scattered scene pixels of that colour (grey gravel
    around a product shot on grey) are neither attached nor unlike their textured surroundings.
    """
    if len(palette) == 0:
        return 0.0
    d, lab = geo.dist, geo.view.lab
    zone = (d > -geo.w - geo.k) & (d <= geo.w + (OUTER - 1) * geo.k)
    px = lab[zone]
    to_palette = np.min(np.linalg.norm(px[:, None, :] - palette[None], axis=2), axis=1)
    unlike_scene = np.linalg.norm(px - scene[zone], axis=1) > np.maximum(15.0, 3.0 * scene_sd[zone])
    flags = (to_palette < 10.0) & unlike_scene & (np.linalg.norm(px - inside[zone], axis=1) > 15.0)
    carried = np.zeros(d.shape, np.uint8)
    carried[zone] = flags
    carried = cv2.morphologyEx(carried, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    n, labels = cv2.connectedComponents(carried, connectivity=8)
    if n <= 1:
        return 0.0
    attached = np.unique(labels[(np.abs(d) <= 1.5) & (carried > 0)])
    band = np.isin(labels, attached[attached > 0]).astype(np.float32)
    # Width per outline point; a paste band follows the whole outline, scene content only parts of it.
    win = geo.window(geo.w, geo.k)
    width, _ = local_mean(band, np.ones_like(band), win)
    length, _ = local_mean(geo.contour.astype(np.float32), np.ones_like(band), win)
    per_point = (width / np.maximum(length, 1e-6))[geo.contour]
    return float(np.percentile(per_point, 40) / geo.view.scale)


def _local_spread(lab: np.ndarray, band: np.ndarray, win: int, mean: np.ndarray) -> np.ndarray:
    """Local lightness spread (standard deviation of L*) of one band's pixels around each point."""
    L = np.ascontiguousarray(lab[..., 0])
    sq, _ = local_mean(L * L, band, win)
    return np.sqrt(np.maximum(sq - mean[..., 0] ** 2, 0.0))


def _distance_to_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the Euclidean distance (ΔE) from point ``p`` to the segment ``a``–``b`` in Lab."""
    ab = b - a
    t = np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-6)
    t = np.clip(t, 0.0, 1.0)[:, None]
    return np.linalg.norm(p - (a + t * ab), axis=1)


def _distance_to_triangle(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Per row, an upper bound of the ΔE from ``p`` to the triangle ``a b c``: the nearer of its edges or its plane."""
    n = np.cross(b - a, c - a)
    nn = np.linalg.norm(n, axis=1)
    plane = np.abs(np.einsum("ij,ij->i", p - a, n)) / np.maximum(nn, 1e-6)
    # barycentric test: the projection falls inside the triangle
    q = p - (np.einsum("ij,ij->i", p - a, n) / np.maximum(nn**2, 1e-6))[:, None] * n
    inside = np.ones(len(p), bool)
    for u, v in ((a, b), (b, c), (c, a)):
        inside &= np.einsum("ij,ij->i", np.cross(v - u, q - u), n) >= 0
    edges = np.minimum.reduce([_distance_to_segment(p, a, b), _distance_to_segment(p, b, c),
                               _distance_to_segment(p, c, a)])
    return np.where(inside & (nn > 1e-6), plane, edges)
