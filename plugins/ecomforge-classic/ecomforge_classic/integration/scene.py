"""The ``scene`` scorer: is the background around the product a believable scene or a degenerate one?"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import Field

from ecomforge.pathspec import WORK
from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, Score, ScoringContext

from .common import make_view, paste_band, product_size, ramp, score_each, signed_distance, verdict


class SceneConfig(StageConfig):
    """How degenerate backgrounds are recognised (every threshold is in docs/scorers.md)."""

    side: int = Field(384, ge=64, le=2048, json_schema_extra=WORK, description="Long side (px) of the working copy for the region measures.")
    plain_min_lightness: float = Field(75.0, ge=0, le=101, description="A flat background at least this light (L*) "
                                       "is a studio backdrop, not a failure; 0 accepts any flat colour, 101 none.")
    max_noise: float = Field(14.0, gt=0, le=255, description="Pixel-noise sigma (grey levels, native resolution) "
                             "at which the background counts as noise.")


class SceneScorer(Scorer):
    """Degenerate backgrounds: black, flat, noise, posterised, over-saturated, or a smeared blob at the product.

    Each check maps one raw measure of the background (everything outside the product and its
    paste-back band) linearly to [0,1]; the score is the lowest check, and its reason says which.
    """

    name = "scene"
    Config = SceneConfig

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[Score]:
        """One score per candidate: the worst of the six background checks."""
        band = paste_band(context)
        return score_each(candidates, context, lambda c, m: self._judge(c.image, m, band))

    def _judge(self, image: np.ndarray, mask: np.ndarray | None, band: int) -> Score:
        cfg: SceneConfig = self.config
        view = make_view(image, mask, cfg.side)
        dist = signed_distance(view.mask) if view.mask.any() else np.full(view.shape, 1e6, np.float32)
        gap = max(2.0, band * view.scale + 0.02 * product_size(view.mask))
        bg = dist > gap
        if bg.mean() < 0.05:  # the product fills the frame: there is no scene to judge
            return Score(1.0)
        native_bg = cv2.resize(bg.astype(np.uint8), image.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
        px = view.lab[::2, ::2][bg[::2, ::2]]  # every other pixel: the same statistics, a quarter of the work
        if len(px) < 16:
            px = view.lab[bg]
        spread = float(np.sqrt(px.astype(np.float64).var(axis=0).sum()))  # ΔE-like colour spread of the background
        checks = [
            _black(px, spread),
            _flat(px, spread, cfg.plain_min_lightness),
            _noise(image, view.lab, bg, native_bg, cfg.max_noise),
            _posterised(image, native_bg),
            _saturated(view.lab, bg),
            _smear(view.lab, view.mask, dist, bg, gap),
        ]
        value, reason = min(checks, key=lambda c: c[0])
        return verdict(value, reason)


def _black(px: np.ndarray, spread: float) -> tuple[float, str]:
    """Share of near-black, detail-free background: 50 % is a dark scene, 90 % a black canvas.

    A low-key photo (a teapot on dark wood) is as dark but keeps detail: spread over 4 ΔE clears it.
    """
    frac = float(np.mean(px[:, 0] < 6.0))
    raw = frac * ramp(spread, 2.0, 4.0)
    return ramp(raw, 0.5, 0.9), f"background is black ({frac:.0%} near-black)"


def _flat(px: np.ndarray, spread: float, plain_min_lightness: float) -> tuple[float, str]:
    """Colour spread of the background in ΔE: under 1.5 is a flat canvas, 4 and more a real surface."""
    light = float(np.median(px[:, 0]))
    if light >= plain_min_lightness:  # a light seamless backdrop is a packshot, not a failure
        return 1.0, ""
    return ramp(spread, 4.0, 1.5), f"background is flat (colour spread {spread:.1f} ΔE, L* {light:.0f})"


def _noise(image: np.ndarray, lab: np.ndarray, bg: np.ndarray, native_bg: np.ndarray,
           max_noise: float) -> tuple[float, str]:
    """Pixel noise: fine-scale residual that halves per octave (white noise), or random chroma.

    Natural texture (grass, gravel, fabric) is correlated: its residual stays as strong or grows
    at half resolution, and its colour follows its lightness. Noise loses half its sigma per
    octave, and RGB noise scatters chroma where no real surface does.
    """
    grey = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    fine = _residual_sigma(grey, native_bg)
    half_size = (max(1, grey.shape[1] // 2), max(1, grey.shape[0] // 2))
    half = cv2.resize(grey, half_size, interpolation=cv2.INTER_AREA)
    coarse = _residual_sigma(half, cv2.resize(native_bg.astype(np.uint8), half_size, interpolation=cv2.INTER_NEAREST) > 0)
    whiteness = ramp(coarse / max(fine, 1e-6), 0.6, 0.9) if fine > 0 else 0.0
    level = fine * whiteness  # 0 when the residual holds up at half resolution (texture)
    luma = ramp(level, 0.5 * max_noise, max_noise)
    ab = lab[..., 1:]
    r = ab - cv2.GaussianBlur(ab, (0, 0), 1.0)
    chroma = float(1.4826 * np.median(np.hypot(r[..., 0], r[..., 1])[bg][::3])) if bg.any() else 0.0
    colour = ramp(chroma, 4.0, 8.0)
    if colour < luma:
        return colour, f"background is colour noise (chroma residual {chroma:.1f})"
    return luma, f"background is noise (pixel sigma {level:.0f})"


def _residual_sigma(grey: np.ndarray, where: np.ndarray) -> float:
    """Robust sigma of the residual after a σ=1 blur, rescaled so white noise reads as its own sigma."""
    r = np.abs((grey - cv2.GaussianBlur(grey, (0, 0), 1.0))[where])[::7]  # a sample of the pixels: same median
    # 0.87: the share of white noise's sigma that a σ=1 blur residual keeps
    return float(1.4826 * np.median(r) / 0.87) if r.size >= 64 else 0.0


def _posterised(image: np.ndarray, bg: np.ndarray) -> tuple[float, str]:
    """Neighbour steps that are either zero or large: a few flat colour levels instead of a photo."""
    rows = slice(None, None, max(1, image.shape[0] // 192))  # steps along a row: every few rows suffice
    img = image[rows, :, :3].astype(np.int16)
    d = np.abs(np.diff(img, axis=1)).max(axis=2)
    both = bg[rows, 1:] & bg[rows, :-1]
    steps = d[both]
    moving = steps[steps > 0]
    if steps.size < 64 or moving.size < 16:
        return 1.0, ""  # constant: the flat check judges it (a banded backdrop still has a few jumps)
    big = float(np.mean(moving >= 8))
    flat_share = 1.0 - moving.size / steps.size
    # A photo has small steps everywhere; a gradient has only ±1 steps; posterising leaves jumps.
    # ... and jumps all over: one hard-edged object on a plain backdrop is not posterisation.
    raw = big * min(1.0, flat_share / 0.5) * min(1.0, (moving.size / steps.size) / 0.03)
    return ramp(raw, 0.6, 0.9), f"background is posterised ({big:.0%} of colour steps are jumps)"


def _saturated(lab: np.ndarray, bg: np.ndarray) -> tuple[float, str]:
    """Share of the background at extreme chroma (C* > 75, beyond almost every real surface)."""
    chroma = np.hypot(lab[..., 1], lab[..., 2])[bg]
    frac = float(np.mean(chroma > 75.0))
    return ramp(frac, 0.15, 0.5), f"background is over-saturated ({frac:.0%} at extreme colour)"


LAYOUT_AREA = 2.0  # a flat region touching the frame larger than this many products is layout


def _smear(lab: np.ndarray, mask: np.ndarray, dist: np.ndarray, bg: np.ndarray, gap: float) -> tuple[float, str]:
    """A textureless blob against the product in an otherwise textured scene (an inpainting smear)."""
    if not mask.any():
        return 1.0, ""
    L = lab[..., 0]
    g = np.hypot(cv2.Sobel(L, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(L, cv2.CV_32F, 0, 1, ksize=3))
    k = max(3, int(0.03 * max(L.shape)) | 1)
    texture = cv2.blur(g, (k, k))
    size = product_size(mask)
    far = bg & (dist > 0.25 * size)
    if far.sum() < 64:
        return 1.0, ""
    typical = float(np.percentile(texture[far], 60))
    textured = typical >= 2.0
    if not textured:  # a plain backdrop: a blob is whatever is neither backdrop nor its shadow
        backdrop = np.median(lab[far], axis=0)
        chroma_off = np.linalg.norm(lab[..., 1:] - backdrop[1:], axis=2) > 12.0
        lighter = lab[..., 0] > backdrop[0] + 10.0  # a shadow only darkens the backdrop
        smooth = (bg & (chroma_off | lighter)).astype(np.uint8)
    else:
        # Featureless in absolute terms too: real smooth surfaces (a cup, a wall) keep shading and grain.
        smooth = (bg & (texture < min(0.15 * typical, 1.0))).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(smooth, connectivity=4)
    near = bg & (dist <= gap + k + max(3.0, 0.04 * size))  # k: the texture window blurs the product's edge in
    h, w = mask.shape
    bg_area = int(bg.sum())  # on a plain backdrop only a blob covering much of it can be layout
    worst = 0.0
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        # A region reaching the frame is the scene's layout (sky, wall, table, an out-of-focus backdrop) when it
        # is large; a product-sized smear that runs off the frame beside a large product is still a smear.
        if (x == 0 or y == 0 or x + bw >= w or y + bh >= h) and area > (0.2 * bg_area if not textured
                                                                        else LAYOUT_AREA * mask.sum()):
            continue
        if not 8.0 < float(np.median(L[labels == i])) < 95.0:
            continue  # clipped shadow or highlight: a real photo loses its texture there too
        if not np.any(near & (labels == i)):
            continue
        worst = max(worst, area / max(1, mask.sum()))
    return ramp(worst, 0.1, 0.35), f"smeared blob against the product ({worst:.0%} of its area)"
