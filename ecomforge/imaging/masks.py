"""Mask refinement shared by all maskers: binarise, fill holes, keep components, dilate/erode, feather."""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError


def binarize(mask: np.ndarray, threshold: int = 128) -> np.ndarray:
    """Any single-channel or RGB(A) mask as uint8 {0,255} (255 = product)."""
    arr = np.asarray(mask)
    if arr.ndim == 3:
        arr = arr[..., 3] if arr.shape[2] == 4 else arr[..., :3].max(axis=2)
    if arr.ndim != 2:
        raise InputError(f"a mask must be 2-D, got shape {arr.shape}")
    if arr.dtype == bool:
        return np.where(arr, 255, 0).astype(np.uint8)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        threshold_f = 0.5 if hi <= 1.0 else threshold
        return np.where(arr >= threshold_f, 255, 0).astype(np.uint8)
    return np.where(arr >= threshold, 255, 0).astype(np.uint8)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow the product region by ``radius`` px (a disk); ``radius <= 0`` returns a copy."""
    if radius <= 0:
        return mask.copy()
    return cv2.dilate(mask, _disk(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Shrink the product region by ``radius`` px; the image border does not erode it."""
    if radius <= 0:
        return mask.copy()
    return cv2.erode(mask, _disk(radius), borderType=cv2.BORDER_REPLICATE)


def fill_holes(mask: np.ndarray, close_radius: int = 0) -> np.ndarray:
    """Fill every background region not connected to the image border, after an optional closing."""
    out = mask.copy()
    if close_radius > 0:
        closed = cv2.morphologyEx(out, cv2.MORPH_CLOSE, _disk(close_radius))
        out = np.maximum(out, closed)  # closing never removes foreground
    h, w = out.shape
    background = (out == 0).astype(np.uint8)
    count, labels = cv2.connectedComponents(background, connectivity=4)
    if count <= 1:
        return out
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    enclosed = ~np.isin(labels, border) & (background == 1)
    out[enclosed] = 255
    return out


def keep_components(mask: np.ndarray, *, largest: int = 0, min_area_fraction: float = 0.0) -> np.ndarray:
    """Keep the ``largest`` N connected components and/or those above an area fraction of the largest."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask.copy()
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(-areas, kind="stable")
    keep = set()
    biggest = float(areas[order[0]])
    for rank, idx in enumerate(order):
        if largest and rank >= largest:
            break
        if areas[idx] >= min_area_fraction * biggest:
            keep.add(int(idx) + 1)
    return np.where(np.isin(labels, list(keep)), 255, 0).astype(np.uint8)


def feather_alpha(mask: np.ndarray, width: int) -> np.ndarray:
    """A uint8 alpha that ramps from 0 at the mask's edge to 255 at ``width`` px inside it.

    Pixels at least ``width`` px inside the mask (the mask eroded by ``width``) get exactly 255,
    pixels outside it exactly 0, so a paste-back through this alpha is bit-exact there.
    """
    binary = (mask > 0).astype(np.uint8)
    if width <= 0:
        return binary * 255
    # Distance from each inside pixel to the nearest outside pixel; the image border is not an edge.
    padded = cv2.copyMakeBorder(binary, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    alpha = np.clip(dist / float(width), 0.0, 1.0)
    alpha = np.where(erode(binary * 255, width) > 0, 1.0, alpha)
    out = np.round(alpha * 255.0).astype(np.uint8)
    out[binary == 0] = 0
    return out


def refine(mask: np.ndarray, *, fill: bool = True, close_radius: int = 0, largest: int = 0,
           min_area_fraction: float = 0.0, grow: int = 0) -> np.ndarray:
    """The standard clean-up chain: components, hole filling, then grow (>0) or shrink (<0)."""
    out = binarize(mask)
    if largest or min_area_fraction:
        out = keep_components(out, largest=largest, min_area_fraction=min_area_fraction)
    if fill:
        out = fill_holes(out, close_radius)
    if grow > 0:
        out = dilate(out, grow)
    elif grow < 0:
        out = erode(out, -grow)
    return out


def check_usable(mask: np.ndarray, what: str) -> None:
    """Reject a mask that is all product or all background, naming where it came from."""
    n = int(np.count_nonzero(mask))
    if n == 0:
        raise InputError(f"{what}: the mask is empty (no product pixels)")
    if n == mask.size:
        raise InputError(f"{what}: the mask covers the whole image (nothing left to generate)")


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the product pixels, exclusive ends; None if empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
