"""Packshot segmentation without weights: model the background from the image border, keep what differs."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ecomforge.imaging.masks import dilate, erode, keep_components


@dataclass(frozen=True)
class Segmentation:
    """A raw product mask at working resolution, with the numbers behind it."""

    mask: np.ndarray  # uint8 {0,255}
    contrast: float  # median background distance inside the product (Lab units)
    noise: float  # 90th percentile of the border's distance to the background model
    distance: np.ndarray  # per-pixel Lab distance to the background model (float)


def background_distance(rgb: np.ndarray, *, border: float = 0.02, lightness_weight: float = 0.5
                        ) -> tuple[np.ndarray, float, np.ndarray]:
    """Per-pixel Lab distance to a planar background model fitted robustly to the border band.

    A plane (not one colour) absorbs a lighting gradient; down-weighting lightness makes soft
    shadows and cloth folds count less than real colour changes. Returns (distance, noise, band).
    """
    h, w = rgb.shape[:2]
    blurred = cv2.GaussianBlur(rgb, (5, 5), 0)
    lab = cv2.cvtColor(blurred.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    width = max(2, round(border * max(h, w)))
    band = np.zeros((h, w), bool)
    band[:width], band[-width:], band[:, :width], band[:, -width:] = True, True, True, True
    ys, xs = np.mgrid[0:h, 0:w]
    design = np.stack([np.ones(h * w), xs.ravel() / w, ys.ravel() / h], axis=1)
    x_band, y_band = design[band.ravel()], lab[band]
    keep = np.ones(len(y_band), bool)
    # Iteratively trimmed least squares: a product touching the border must not drag the model.
    for _ in range(4):
        coef, *_ = np.linalg.lstsq(x_band[keep], y_band[keep], rcond=None)
        resid = np.linalg.norm(y_band - x_band @ coef, axis=1)
        keep = resid <= 3.0 * float(np.median(resid[keep])) + 1.0
    diff = lab - (design @ coef).reshape(h, w, 3)
    diff[..., 0] *= lightness_weight
    dist = np.linalg.norm(diff, axis=2)
    noise = float(np.percentile(dist[band][keep], 90))
    return dist, noise, band


def segment(rgb: np.ndarray, *, min_contrast: float = 30.0, lightness_weight: float = 0.5,
            reach: float = 0.04, detail: float = 25.0, grabcut: bool = False, convex_hull: bool = True) -> Segmentation:
    """Product mask of a photo on a plain background (working resolution, no clean-up beyond the method)."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    dist, noise, band = background_distance(rgb, lightness_weight=lightness_weight)
    hi = max(min_contrast, 3.0 * noise)
    lo = max(0.4 * min_contrast, 2.0 * noise)
    radius = max(1, round(0.01 * side))
    # Core: clearly different, opened so that thin folds and specks do not seed the product.
    core = np.where(dist > hi, 255, 0).astype(np.uint8)
    core = cv2.morphologyEx(core, cv2.MORPH_OPEN, _disk(radius))
    core[band] = 0
    if not core.any():
        return Segmentation(core, 0.0, noise, dist)
    core = keep_components(core, min_area_fraction=0.25)
    # Weaker detail (print, thin lines, rims) joins when it lies within ``reach`` of the core.
    weak = np.where(dist > lo, 255, 0).astype(np.uint8)
    if detail > 0:
        # Thin dark lines (print, seams, grid lines) stand out in a black-hat; broad soft shadows do not.
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        hat = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, _disk(2 * radius))
        weak = np.maximum(weak, np.where(hat > detail, 255, 0).astype(np.uint8))
    near = dilate(core, max(1, round(reach * side)))
    count, labels = cv2.connectedComponents(weak, connectivity=8)
    touching = np.unique(labels[(near > 0) & (weak > 0)])
    touching = touching[touching > 0]
    mask = np.maximum(core, np.where(np.isin(labels, touching), 255, 0).astype(np.uint8))
    if grabcut:
        mask = _grabcut(rgb, mask, core, radius)
    if convex_hull:
        mask = _hull(mask)
    contrast = float(np.median(dist[core > 0]))
    return Segmentation(mask, contrast, noise, dist)


def _grabcut(rgb: np.ndarray, mask: np.ndarray, core: np.ndarray, radius: int) -> np.ndarray:
    """Snap the mask's edge to the photo's edges; the confident core always stays product."""
    state = np.full(mask.shape, cv2.GC_BGD, np.uint8)
    state[dilate(mask, 4 * radius) > 0] = cv2.GC_PR_BGD
    state[mask > 0] = cv2.GC_PR_FGD
    state[erode(core, 2 * radius) > 0] = cv2.GC_FGD
    if not (state == cv2.GC_BGD).any() or not ((state == cv2.GC_FGD) | (state == cv2.GC_PR_FGD)).any():
        return mask
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation is random: seed it for reproducible masks
    try:
        cv2.grabCut(np.ascontiguousarray(rgb[..., ::-1]), state, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return mask  # degenerate colour models (e.g. a flat image): keep the threshold mask
    out = np.where((state == cv2.GC_FGD) | (state == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    return np.maximum(out, core)


def _hull(mask: np.ndarray) -> np.ndarray:
    """The convex hull of the mask: recovers product parts the colour of the background (a white bowl)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = mask.copy()
    if contours:
        cv2.fillPoly(out, [cv2.convexHull(np.concatenate(contours))], 255)
    return out


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def working_copy(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """A copy no longer than ``long_side`` px (area-averaged), or the image itself when smaller."""
    h, w = rgb.shape[:2]
    scale = long_side / max(h, w)
    if scale >= 1.0:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def upscale_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a {0,255} mask to (width, height) smoothly, then re-binarise."""
    if (mask.shape[1], mask.shape[0]) == size:
        return mask
    resized = cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR)
    return np.where(resized >= 128, 255, 0).astype(np.uint8)
