"""Continuation of the product's rim across its outline: regrown matter however it was made.

Helpers of the ``expansion`` scorer. A real boundary changes colour where the mask ends; regrown
product matter (stretched, extruded, smeared, shaded darker) carries the colours of the product's
rim at that spot on past the outline. Each pixel just outside the mask is compared with the rim
just inside at its nearest outline point, and with the colours of the scene away from the product.
"""
from __future__ import annotations

import cv2
import numpy as np

from .colours import bin_index, colour_histogram
from .common import View, local_mean

DARKER = (1.0, 0.85, 0.7)  # the rim's colours as shaded continuations also count as the rim's


def _odd(k: float) -> int:
    k = max(3, int(round(k)))
    return k if k % 2 else k + 1


def nearest_inside(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every pixel, the (row, column) of its nearest product pixel (a product pixel is its own)."""
    _, labels = cv2.distanceTransformWithLabels((~mask).astype(np.uint8), cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(mask)  # labels count the zero pixels (the product's) in raster order, from 1
    idx = np.clip(labels.astype(np.int64) - 1, 0, len(ys) - 1)
    return ys[idx], xs[idx]


def shaded(lab: np.ndarray, factors: tuple[float, ...] = DARKER) -> np.ndarray:
    """Pixels (n×3 Lab) with darker copies of themselves: lightness and chroma scaled together."""
    return np.concatenate([lab * np.float32([f, f, f]) for f in factors], axis=0)


def shade_tolerant_delta(out: np.ndarray, rim: np.ndarray, darkening: float) -> np.ndarray:
    """ΔE of ``out`` from ``rim`` (…×3 Lab) where a darker ``out`` is compared with the rim shaded to its lightness.

    Darkening by up to ``darkening`` (a share of the rim's lightness) costs only a third of its ΔL.
    """
    lin = np.maximum(rim[..., 0], 1.0)
    ratio = np.clip(out[..., 0] / lin, 1.0 - darkening, 1.0)
    target = rim * ratio[..., None]
    dl = out[..., 0] - target[..., 0]
    dl_shade = lin * (1.0 - ratio)  # the darkening forgiven
    da = out[..., 1] - target[..., 1]
    db = out[..., 2] - target[..., 2]
    return np.sqrt(dl ** 2 + da ** 2 + db ** 2 + (dl_shade / 3.0) ** 2)


def continued(view: View, dist: np.ndarray, size: float, gap: float, reach: float, *, tolerance: float,
              darkening: float, likeness: float) -> np.ndarray:
    """Pixels outside the mask (gap < d ≤ reach) that continue the rim at their nearest outline point.

    A pixel counts when its local colour is within ``tolerance`` (shade-tolerant ΔE) of the rim's
    local colour there, and its colour is the rim's rather than the scene's: P/(P+S) ≥ ``likeness``
    with P the histogram of the rim's colours (and their shaded copies) and S the far scene's.
    """
    mask = view.mask
    k = _odd(0.06 * size)
    inner = max(1.0, gap - 0.5)
    rim_band = (dist <= -inner) & (dist > -(inner + max(2.0, 0.04 * size)))
    if not rim_band.any():
        return np.zeros(mask.shape, bool)
    rim, _ = local_mean(view.lab, rim_band, k)
    out_w = dist > gap
    outside, _ = local_mean(view.lab, out_w, _odd(0.03 * size))
    ny, nx = nearest_inside(mask)
    rim_near = rim[ny, nx]
    ring = (dist > gap) & (dist <= reach)
    dev = shade_tolerant_delta(outside, rim_near, darkening)
    scene = dist > reach
    if scene.sum() < 64:
        scene = dist > gap
    rim_px = view.lab[rim_band].reshape(-1, 3)
    p = _hist(shaded(rim_px))
    s = colour_histogram(view.lab, scene)
    idx = bin_index(view.lab)
    pp, ss = p[idx], s[idx]
    like = pp / (pp + ss + 1e-4)
    return ring & (dev < tolerance) & (like >= likeness)


def _hist(px: np.ndarray) -> np.ndarray:
    """colour_histogram of a pixel list."""
    img = px.reshape(-1, 1, 3).astype(np.float32)
    return colour_histogram(img, np.ones((len(px), 1), bool))

