"""Benign variants of a product photo (the product is unchanged) and distortions of the product itself.

Every transform takes ``(image, mask, rng)`` — RGB uint8, product mask uint8 {0,255}, a seeded
numpy Generator — and returns the new image and the product's mask in it. Geometric transforms
move the mask with the pixels; the others keep it, as a generator's paste-back mask would.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ecomforge.imaging.masks import bbox, dilate

Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Variant:
    """A named transform and whether it keeps the product faithful (benign) or damages it (distorted)."""

    name: str
    kind: str  # "benign" or "distorted"
    apply: Transform
    description: str


def _affine(image: np.ndarray, mask: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    out = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    m = cv2.warpAffine(mask, matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    return out, m


def _centre(mask: np.ndarray) -> tuple[float, float]:
    box = bbox(mask)
    if box is None:
        return mask.shape[1] / 2, mask.shape[0] / 2
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def rotate(image, mask, rng):
    """Rotate the whole photo 8–15° about the product's centre."""
    angle = float(rng.uniform(8, 15) * rng.choice([-1, 1]))
    return _affine(image, mask, cv2.getRotationMatrix2D(_centre(mask), angle, 1.0))


def flip(image, mask, rng):
    """Mirror the photo left to right."""
    return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])


def scale(image, mask, rng):
    """Zoom the photo by 0.8x or 1.15x about the product's centre."""
    factor = float(rng.choice([0.8, 1.15]))
    return _affine(image, mask, cv2.getRotationMatrix2D(_centre(mask), 0.0, factor))


def shift(image, mask, rng):
    """Shift the framing by 6–10 % of the image size (a different crop of the same shot)."""
    h, w = mask.shape
    dx, dy = (rng.uniform(0.06, 0.10, 2) * rng.choice([-1, 1], 2) * (w, h)).astype(np.float32)
    return _affine(image, mask, np.float32([[1, 0, dx], [0, 1, dy]]))


def brightness(image, mask, rng):
    """Exposure ±20 % and a slight contrast change over the whole photo."""
    gain = float(rng.choice([0.8, 1.2]))
    out = (image.astype(np.float32) - 128) * float(rng.uniform(0.9, 1.1)) + 128
    return np.clip(out * gain, 0, 255).astype(np.uint8), mask


def temperature(image, mask, rng):
    """A warmer or cooler white balance over the whole photo (red and blue gains of ±10 %)."""
    warm = float(rng.choice([-1, 1])) * 0.1
    gains = np.float32([1 + warm, 1.0, 1 - warm])
    return np.clip(image.astype(np.float32) * gains, 0, 255).astype(np.uint8), mask


def background(image, mask, rng):
    """Replace everything outside the (slightly dilated) product mask with a blurred colour gradient."""
    h, w = mask.shape
    c0, c1 = rng.integers(40, 220, (2, 3)).astype(np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    scene = np.broadcast_to(c0 * (1 - t) + c1 * t, (h, w, 3))
    noise = cv2.GaussianBlur(rng.normal(0, 25, (h, w, 3)).astype(np.float32), (0, 0), 6)
    scene = np.clip(scene + noise, 0, 255)
    keep = cv2.GaussianBlur(dilate(mask, 2).astype(np.float32) / 255.0, (0, 0), 1.5)[:, :, None]
    return np.rint(image * keep + scene * (1 - keep)).astype(np.uint8), mask


def _inside(image: np.ndarray, changed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``changed`` pixels inside the product mask, the original elsewhere."""
    return np.where(mask[:, :, None] > 127, changed, image).astype(np.uint8)


def hue(image, mask, rng):
    """Shift the product's hue by 50–90° (a different colourway of the product)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + int(rng.uniform(35, 65))) % 256  # 256 steps per turn in HSV_FULL
    hsv[..., 1] = np.maximum(hsv[..., 1], 60)  # greys have no hue to shift: give them some colour
    return _inside(image, cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL), mask), mask


def blur(image, mask, rng):
    """Blur the product's print and texture (σ = 2.5 % of its size)."""
    box = bbox(mask) or (0, 0, mask.shape[1], mask.shape[0])
    sigma = max(1.5, 0.025 * max(box[2] - box[0], box[3] - box[1]))
    return _inside(image, cv2.GaussianBlur(image, (0, 0), sigma), mask), mask


def warp(image, mask, rng):
    """Warp the product's print with a sine displacement (an amplitude of 3 % of its size)."""
    h, w = mask.shape
    box = bbox(mask) or (0, 0, w, h)
    size = max(box[2] - box[0], box[3] - box[1])
    amp, period = 0.03 * size, size / float(rng.uniform(2.0, 3.0))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = xx + amp * np.sin(2 * np.pi * yy / period)
    map_y = yy + amp * np.sin(2 * np.pi * xx / period)
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return _inside(image, warped, mask), mask


def _sub_box(mask: np.ndarray, rng: np.random.Generator, frac: float) -> tuple[int, int, int, int]:
    """A random box ``frac`` of the product's box on each side, inside it."""
    x0, y0, x1, y1 = bbox(mask) or (0, 0, mask.shape[1], mask.shape[0])
    bw, bh = max(2, int((x1 - x0) * frac)), max(2, int((y1 - y0) * frac))
    px = int(rng.integers(x0, max(x0 + 1, x1 - bw + 1)))
    py = int(rng.integers(y0, max(y0 + 1, y1 - bh + 1)))
    return px, py, px + bw, py + bh


def patch(image, mask, rng):
    """Replace a patch (45 % of the product's box per side) with content from elsewhere in the photo, flipped."""
    x0, y0, x1, y1 = _sub_box(mask, rng, 0.45)
    out = image.copy()
    donor = np.ascontiguousarray(image[::-1, ::-1])  # unrelated pixels of the same photo
    out[y0:y1, x0:x1] = donor[y0:y1, x0:x1]
    return _inside(image, out, mask), mask


def missing(image, mask, rng):
    """Remove a part of the product (a third of its box, at one side), inpainting the background over it."""
    x0, y0, x1, y1 = bbox(mask) or (0, 0, mask.shape[1], mask.shape[0])
    hole = np.zeros_like(mask)
    side = int(rng.integers(4))
    cw, ch = (x1 - x0) // 3, (y1 - y0) // 3
    box = [(x0, y0, x0 + cw, y1), (x1 - cw, y0, x1, y1), (x0, y0, x1, y0 + ch), (x0, y1 - ch, x1, y1)][side]
    hole[box[1]:box[3], box[0]:box[2]] = 255
    hole &= mask
    filled = cv2.inpaint(image, dilate(hole, 3), 7, cv2.INPAINT_TELEA)
    return filled, mask


def scramble(image, mask, rng):
    """Shuffle the product's texture in tiles of 1/6 of its size (same colours, destroyed layout)."""
    x0, y0, x1, y1 = bbox(mask) or (0, 0, mask.shape[1], mask.shape[0])
    tile = max(4, max(x1 - x0, y1 - y0) // 6)
    out = image.copy()
    cells = [(x, y) for y in range(y0, y1 - tile + 1, tile) for x in range(x0, x1 - tile + 1, tile)]
    order = rng.permutation(len(cells))
    for (x, y), j in zip(cells, order):
        sx, sy = cells[j]
        out[y:y + tile, x:x + tile] = image[sy:sy + tile, sx:sx + tile]
    return _inside(image, out, mask), mask


VARIANTS: tuple[Variant, ...] = tuple(
    Variant(fn.__name__, kind, fn, (fn.__doc__ or "").strip())
    for kind, fns in (("benign", (rotate, flip, scale, shift, brightness, temperature, background)),
                      ("distorted", (hue, blur, warp, patch, missing, scramble)))
    for fn in fns
)
"""Every variant the fidelity benchmark applies, benign ones first."""
