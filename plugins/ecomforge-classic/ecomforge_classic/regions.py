"""The product region of an image: cropped to its mask, at a bounded size, for the classical scorers."""
from __future__ import annotations

import cv2
import numpy as np

from ecomforge.imaging.masks import bbox


def product_region(image: np.ndarray, mask: np.ndarray | None, *, max_side: int = 384) -> tuple[np.ndarray, np.ndarray]:
    """(RGB crop, uint8 mask crop) of the product, downscaled so the long side is at most ``max_side``."""
    if mask is None or not np.any(mask):
        mask = np.full(image.shape[:2], 255, np.uint8)
    x0, y0, x1, y1 = bbox(mask)
    img, m = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    s = max_side / max(img.shape[:2])
    if s < 1:
        size = (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        m = cv2.resize(m, size, interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(img), np.ascontiguousarray(m)


def region_key(sha: str, mask: np.ndarray) -> tuple[str, int, tuple[int, ...]]:
    """Cache key of a reference's product region."""
    return sha, hash(mask.tobytes()), mask.shape
