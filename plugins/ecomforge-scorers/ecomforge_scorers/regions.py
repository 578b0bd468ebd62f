"""Cut the product out of an image so that scores compare products, not backgrounds."""
from __future__ import annotations

import hashlib

import numpy as np

from ecomforge.imaging.masks import bbox

NEUTRAL_GREY = 128
"""Fill for pixels outside the product: mid-grey carries no colour and little texture."""


def product_crop(image: np.ndarray, mask: np.ndarray | None, *, margin: float = 0.08,
                 fill: int = NEUTRAL_GREY, square: bool = True) -> np.ndarray:
    """The product's bounding box (plus ``margin`` of its long side) with non-product pixels set to ``fill``.

    ``mask`` None or empty means the whole image is the product. With ``square`` the box grows
    along its short side (padding with ``fill`` past the image border) so that a model's centre
    crop cannot cut the product off and both sides of a comparison keep their aspect ratio.
    """
    rgb = as_rgb(image)
    h, w = rgb.shape[:2]
    box = None
    if mask is not None:
        m = np.asarray(mask)
        if m.shape[:2] != (h, w):
            raise ValueError(f"mask shape {m.shape[:2]} does not match image shape {(h, w)}")
        inside = (m[..., 0] if m.ndim == 3 else m) > 127
        box = bbox(inside)
    if box is None:
        inside = None
        x0, y0, x1, y1 = 0, 0, w, h
    else:
        x0, y0, x1, y1 = box
    pad = int(round(margin * max(x1 - x0, y1 - y0)))
    x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
    if square:
        side = max(x1 - x0, y1 - y0)
        x0 -= (side - (x1 - x0)) // 2
        y0 -= (side - (y1 - y0)) // 2
        x1, y1 = x0 + side, y0 + side
    if inside is not None:
        rgb = np.where(inside[:, :, None], rgb, np.uint8(fill))
    out = np.full((y1 - y0, x1 - x0, 3), fill, np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out


def as_rgb(image: np.ndarray) -> np.ndarray:
    """An H×W×3 uint8 view of a grey, RGB or RGBA image."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"expected an H×W×3 image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr[:, :, :3])


def array_hash(array: np.ndarray | None) -> str:
    """sha256 of an array's shape, dtype and bytes ('none' for None): a cache key for pixels or masks."""
    if array is None:
        return "none"
    arr = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{arr.shape}{arr.dtype}".encode())
    digest.update(arr.data)
    return digest.hexdigest()


def calibrate(value: float, low: float, high: float) -> float:
    """Map ``value`` linearly so ``low`` -> 0 and ``high`` -> 1, clipped to [0,1]; NaN -> 0."""
    if not np.isfinite(value):
        return 0.0
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))
