"""Identity failures made by code: the product itself is damaged (colour, print, parts, shape).

Each takes (image, mask, rng, severity in (0, 1]) and returns (image, mask). The mask is what a
generator would report: unchanged where the generator believes the product is still whole
(hue, blur, patch, missing), moved with the pixels where the product's outline itself changed
(squash, warp). ``severity`` scales the size of the damage (the benchmark uses 1).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ecomforge.imaging.masks import bbox, dilate

Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator, float], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Variant:
    """A named failure: what it does (from the docstring) and the group it is benchmarked in."""

    name: str
    group: str
    fn: Transform
    description: str

    def apply(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, severity: float = 1.0):
        """(image, mask) after the failure, deterministic for a given ``rng`` state."""
        return self.fn(image, mask, rng, severity)


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    return bbox(mask) or (0, 0, mask.shape[1], mask.shape[0])


def _inside(image: np.ndarray, changed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``changed`` pixels inside the product mask, the original elsewhere."""
    return np.where(mask[:, :, None] > 127, changed, image).astype(np.uint8)


def hue(image, mask, rng, severity=1.0):
    """Shift the product's hue by 55-90 degrees (another colourway of the product)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + int(severity * rng.uniform(40, 64))) % 256  # 256 steps per turn
    hsv[..., 1] = np.maximum(hsv[..., 1], int(70 * severity))  # greys have no hue to shift: give them colour
    return _inside(image, cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL), mask), mask


def blur(image, mask, rng, severity=1.0):
    """Blur the product's print and texture (sigma 2.5 % of its size)."""
    x0, y0, x1, y1 = _box(mask)
    sigma = max(0.3, severity * max(1.5, 0.025 * max(x1 - x0, y1 - y0)))
    return _inside(image, cv2.GaussianBlur(image, (0, 0), sigma), mask), mask


def patch(image, mask, rng, severity=1.0):
    """Paste a foreign patch (40 % of the product's box per side) of another texture over the product."""
    import skimage.data

    x0, y0, x1, y1 = _box(mask)
    bw, bh = max(2, int((x1 - x0) * 0.4 * severity ** 0.5)), max(2, int((y1 - y0) * 0.4 * severity ** 0.5))
    px = int(rng.integers(x0 + (x1 - x0 - bw) // 4, max(x0 + 1, x1 - bw - (x1 - x0 - bw) // 4 + 1)))
    py = int(rng.integers(y0 + (y1 - y0 - bh) // 4, max(y0 + 1, y1 - bh - (y1 - y0 - bh) // 4 + 1)))
    donor = getattr(skimage.data, str(rng.choice(["coffee", "chelsea", "rocket", "astronaut"])))()[:, :, :3]
    out = image.copy()
    out[py:py + bh, px:px + bw] = cv2.resize(donor, (bw, bh), interpolation=cv2.INTER_AREA)
    return _inside(image, out, mask), mask


def missing(image, mask, rng, severity=1.0):
    """Remove a part of the product (a third of its box, at one side) and inpaint the background over it."""
    x0, y0, x1, y1 = _box(mask)
    cw, ch = max(1, int((x1 - x0) * severity / 3)), max(1, int((y1 - y0) * severity / 3))
    side = int(rng.integers(4))
    box = [(x0, y0, x0 + cw, y1), (x1 - cw, y0, x1, y1), (x0, y0, x1, y0 + ch), (x0, y1 - ch, x1, y1)][side]
    hole = np.zeros_like(mask)
    hole[box[1]:box[3], box[0]:box[2]] = 255
    hole &= mask
    return cv2.inpaint(image, dilate(hole, 3), 5, cv2.INPAINT_TELEA), mask


def _reshape(image, mask, map_x, map_y):
    """Resample product pixels and mask through a map; the background the product left is inpainted."""
    moved_mask = cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST, borderValue=0)
    moved = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    vacated = cv2.bitwise_and(dilate(mask, 2), cv2.bitwise_not(moved_mask))
    base = cv2.inpaint(image, vacated, 5, cv2.INPAINT_TELEA) if vacated.any() else image
    return _inside(base, moved, moved_mask), moved_mask


def squash(image, mask, rng, severity=1.0):
    """Squash the product to 60 % of its height or width about its centre (a distorted shape)."""
    h, w = mask.shape
    x0, y0, x1, y1 = _box(mask)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    f = 1.0 - 0.4 * severity
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:
        return _reshape(image, mask, xx, (cy + (yy - cy) / f).astype(np.float32))
    return _reshape(image, mask, (cx + (xx - cx) / f).astype(np.float32), yy)


def warp(image, mask, rng, severity=1.0):
    """Bend the product and its outline with a sine displacement (an amplitude of 7 % of its size)."""
    h, w = mask.shape
    x0, y0, x1, y1 = _box(mask)
    size = max(x1 - x0, y1 - y0)
    amp, period = 0.07 * severity * size, size / float(rng.uniform(1.2, 1.8))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = xx + amp * np.sin(2 * np.pi * yy / period)
    map_y = yy + amp * np.sin(2 * np.pi * xx / period)
    return _reshape(image, mask, map_x.astype(np.float32), map_y.astype(np.float32))


IDENTITY: tuple[Variant, ...] = tuple(Variant(fn.__name__, "identity", fn, (fn.__doc__ or "").strip())
                                      for fn in (hue, blur, patch, missing, squash, warp))
"""The identity failures, in report order."""
