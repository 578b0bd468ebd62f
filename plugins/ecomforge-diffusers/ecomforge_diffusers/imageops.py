"""Pixel work around the pipeline call: sizes, crops, resizing, colour matching, failure checks."""
from __future__ import annotations

import cv2
import numpy as np

from ecomforge.imaging.masks import bbox, dilate


def generation_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) with the long side at ``max_side``, aspect kept, both sides multiples of 8 (≥ 8)."""
    scale = max_side / max(width, height)
    return (max(8, int(round(width * scale / 8)) * 8), max(8, int(round(height * scale / 8)) * 8))


def crop_box(mask: np.ndarray, padding: int, aspect: float | None = None) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the product's bounding box plus ``padding``, widened to ``aspect`` (w/h), in the image."""
    h, w = mask.shape
    box = bbox(mask)
    if box is None:
        return 0, 0, w, h
    x0, y0, x1, y1 = box
    x0, y0, x1, y1 = max(0, x0 - padding), max(0, y0 - padding), min(w, x1 + padding), min(h, y1 + padding)
    if aspect:
        # widen the short dimension around its centre, as A1111 does, so the crop is not distorted
        cw, ch = x1 - x0, y1 - y0
        if cw / ch < aspect:
            grow = min(w, int(round(ch * aspect))) - cw
            x0 = max(0, min(w - (cw + grow), x0 - grow // 2))
            x1 = x0 + cw + grow
        else:
            grow = min(h, int(round(cw / aspect))) - ch
            y0 = max(0, min(h - (ch + grow), y0 - grow // 2))
            y1 = y0 + ch + grow
    return int(x0), int(y0), int(x1), int(y1)


def resize(image: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """Resize to (w, h): area filter when shrinking, cubic when growing, nearest for masks."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if size[0] < image.shape[1] else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interp)


def color_match(image: np.ndarray, band: np.ndarray, ring_px: int = 16) -> np.ndarray:
    """Shift the Lab mean/std of the ``band`` pixels to those of the ring just outside it."""
    inside = band > 0
    ring = (dilate(band, ring_px) > 0) & ~inside
    if inside.sum() < 4 or ring.sum() < 4:
        return image
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    src, ref = lab[inside], lab[ring]
    matched = (src - src.mean(0)) / (src.std(0) + 1e-3) * ref.std(0) + ref.mean(0)
    lab[inside] = matched
    out = cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
    return np.where(inside[..., None], out, image)


def failure_reason(image: np.ndarray) -> str | None:
    """Why a float [0,1] decoded image is unusable (NaN/inf or all black), else None."""
    if not np.isfinite(image).all():
        return "NaN or inf in the decoded image"
    if float(np.max(image)) < 2 / 255:
        return "black image (all pixels ≈ 0)"
    return None


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0,1] H×W×3 to uint8, rounding as diffusers' numpy_to_pil does."""
    return (np.clip(np.nan_to_num(image), 0, 1) * 255).round().astype(np.uint8)
