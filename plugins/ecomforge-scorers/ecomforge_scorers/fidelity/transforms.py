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


def _scale_one_axis(image, mask, rng, f):
    """Scale the product by ``f`` along its height or its width (at random), about its centre."""
    h, w = mask.shape
    x0, y0, x1, y1 = _box(mask)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:
        return _reshape(image, mask, xx, (cy + (yy - cy) / f).astype(np.float32))
    return _reshape(image, mask, (cx + (xx - cx) / f).astype(np.float32), yy)


def squash(image, mask, rng, severity=1.0):
    """Squash the product to 60 % of its height or width about its centre (a distorted shape)."""
    return _scale_one_axis(image, mask, rng, 1.0 - 0.4 * severity)


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


# --- A second implementation of every failure kind, never used to tune a scorer or a weight -----------------
# The benchmark's failures above are one way to make each kind. A scorer tuned on them can learn the way
# rather than the kind, so `ecomforge bench fidelity --failures alternate` makes each kind differently
# (another colour space, another blur, other textures and shapes of patch, another inpainting, other bends)
# and reports how far the figures carry over.


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)


def _rgb(lab: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def hue_lab(image, mask, rng, severity=1.0):
    """Turn the product's CIELAB a*b* by 35-70 degrees, either way (a colourway turned in another colour space)."""
    lab = _lab(image)
    a, b = lab[..., 1] - 128, lab[..., 2] - 128
    t = np.deg2rad(severity * rng.uniform(35, 70)) * rng.choice([-1, 1])
    lab[..., 1], lab[..., 2] = 128 + np.cos(t) * a - np.sin(t) * b, 128 + np.sin(t) * a + np.cos(t) * b
    return _inside(image, _rgb(_within_gamut(lab)), mask), mask


def recolour(image, mask, rng, severity=1.0):
    """Paint the product in one new hue, at least 90 degrees from its own, keeping its lightness and a fifth of its chroma."""
    lab = _lab(image)
    sel = mask > 127
    a, b = lab[..., 1] - 128, lab[..., 2] - 128
    own = np.arctan2(b[sel].mean(), a[sel].mean()) if sel.any() else 0.0
    t = own + rng.choice([-1, 1]) * np.deg2rad(rng.uniform(90, 180))
    chroma = (float(np.hypot(a[sel], b[sel]).mean()) if sel.any() else 0.0) + 25.0
    keep = 1.0 - 0.8 * severity
    lab[..., 1] = 128 + (1 - keep) * chroma * np.cos(t) + keep * a
    lab[..., 2] = 128 + (1 - keep) * chroma * np.sin(t) + keep * b
    return _inside(image, _rgb(_within_gamut(lab)), mask), mask


def _within_gamut(lab: np.ndarray) -> np.ndarray:
    """8-bit-scaled Lab with each pixel's chroma cut (hue and lightness kept) until it has an RGB colour.

    Clipping RGB instead would turn a very dark or very light pixel towards another hue.
    """
    out = lab.copy()
    todo = np.ones(lab.shape[:2], bool)
    for scale in (1.0, 0.85, 0.7, 0.55, 0.4, 0.25, 0.1, 0.0):
        trial = np.dstack([lab[..., 0] * 100 / 255, (lab[..., 1] - 128) * scale, (lab[..., 2] - 128) * scale])
        trial = trial.astype(np.float32)
        back = cv2.cvtColor(cv2.cvtColor(trial, cv2.COLOR_LAB2RGB), cv2.COLOR_RGB2LAB)  # RGB clips what it lacks
        fits = todo & (np.abs(back - trial).max(axis=2) < 1.0)
        out[fits, 1] = 128 + (lab[fits, 1] - 128) * scale
        out[fits, 2] = 128 + (lab[fits, 2] - 128) * scale
        todo &= ~fits
    return out


def lowres(image, mask, rng, severity=1.0):
    """Lose the print's detail by rendering the product at a fifth to a third of its resolution."""
    h, w = image.shape[:2]
    f = 1.0 - severity * (1.0 - rng.uniform(0.2, 0.33))
    small = cv2.resize(image, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
    return _inside(image, cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), mask), mask


def texture_patch(image, mask, rng, severity=1.0):
    """An ellipse of a foreign texture (brick, grass, gravel, a colour wheel, a star field), 45 % of the box per axis."""
    import skimage.data

    x0, y0, x1, y1 = _box(mask)
    bw, bh = max(2, int((x1 - x0) * 0.45 * severity ** 0.5)), max(2, int((y1 - y0) * 0.45 * severity ** 0.5))
    donor = getattr(skimage.data, str(rng.choice(["brick", "grass", "gravel", "colorwheel", "hubble_deep_field"])))()
    donor = np.stack([donor] * 3, axis=-1) if donor.ndim == 2 else donor[..., :3]
    cx = int(rng.integers(x0 + bw // 2, max(x0 + bw // 2 + 1, x1 - bw // 2)))
    cy = int(rng.integers(y0 + bh // 2, max(y0 + bh // 2 + 1, y1 - bh // 2)))
    texture = cv2.resize(donor.astype(np.uint8), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    ellipse = np.zeros(mask.shape, np.uint8)
    cv2.ellipse(ellipse, (cx, cy), (bw // 2, bh // 2), float(rng.uniform(0, 180)), 0, 360, 255, -1)
    return _inside(image, np.where(ellipse[..., None] > 0, texture, image), mask), mask


def texture_in_colour(image, mask, rng, severity=1.0):
    """A pattern the product does not have, in its own colour: a grey texture (a photo, print, coins, the moon)
    shifted to the product's mean colour, 40 % of the box per side (an invented print or surface)."""
    import skimage.data

    x0, y0, x1, y1 = _box(mask)
    bw, bh = max(2, int((x1 - x0) * 0.4 * severity ** 0.5)), max(2, int((y1 - y0) * 0.4 * severity ** 0.5))
    px = int(rng.integers(x0 + (x1 - x0 - bw) // 4, max(x0 + 1, x1 - bw - (x1 - x0 - bw) // 4 + 1)))
    py = int(rng.integers(y0 + (y1 - y0 - bh) // 4, max(y0 + 1, y1 - bh - (y1 - y0 - bh) // 4 + 1)))
    donor = getattr(skimage.data, str(rng.choice(["camera", "moon", "text", "coins", "page"])))()
    grey = cv2.resize(donor.astype(np.float32), (bw, bh), interpolation=cv2.INTER_AREA)
    tint = image[mask > 127].astype(np.float32).mean(axis=0) if np.any(mask > 127) else np.full(3, 128.0)
    out = image.copy()
    out[py:py + bh, px:px + bw] = np.clip((grey - grey.mean())[..., None] + tint, 0, 255).astype(np.uint8)
    return _inside(image, out, mask), mask


def corner_missing(image, mask, rng, severity=1.0):
    """Remove a corner of the product (45 % of the box per side) and inpaint the scene over it (Navier-Stokes)."""
    x0, y0, x1, y1 = _box(mask)
    cw, ch = max(1, int((x1 - x0) * 0.45 * severity)), max(1, int((y1 - y0) * 0.45 * severity))
    corner = int(rng.integers(4))
    xs = (x0, x0 + cw) if corner % 2 == 0 else (x1 - cw, x1)
    ys = (y0, y0 + ch) if corner < 2 else (y1 - ch, y1)
    hole = np.zeros_like(mask)
    hole[ys[0]:ys[1], xs[0]:xs[1]] = 255
    hole &= mask
    return cv2.inpaint(image, dilate(hole, 3), 9, cv2.INPAINT_NS), mask


def stretch(image, mask, rng, severity=1.0):
    """Stretch the product to 145 % of its height or width about its centre."""
    return _scale_one_axis(image, mask, rng, 1.0 + 0.45 * severity)


def sag(image, mask, rng, severity=1.0):
    """Melt the product sideways: its top shifts by 18 % of its size, less and less towards its base."""
    h, w = mask.shape
    x0, y0, x1, y1 = _box(mask)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.clip((y1 - yy) / max(1, y1 - y0), 0, 1)
    amp = rng.choice([-1, 1]) * 0.18 * severity * max(x1 - x0, y1 - y0)
    return _reshape(image, mask, (xx - amp * t**2).astype(np.float32), yy)


def twirl(image, mask, rng, severity=1.0):
    """Twist the product about its centre: 0.6 rad there, falling to none at its edge."""
    h, w = mask.shape
    x0, y0, x1, y1 = _box(mask)
    cx, cy, radius = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    angle = rng.choice([-1, 1]) * 0.6 * severity * np.clip(1 - np.hypot(dx, dy) / max(radius, 1.0), 0, 1)
    c, s = np.cos(angle), np.sin(angle)
    return _reshape(image, mask, (cx + c * dx - s * dy).astype(np.float32), (cy + s * dx + c * dy).astype(np.float32))


ALTERNATE: tuple[Variant, ...] = tuple(Variant(fn.__name__.replace("_", "-"), "identity", fn, (fn.__doc__ or "").strip())
                                       for fn in (hue_lab, recolour, lowres, texture_patch, corner_missing, stretch,
                                                  sag, twirl, texture_in_colour))
"""The same failure kinds made another way (hue, hue, blur, patch, missing, squash, warp, warp, patch); the last
came later, so the others' draws are what they were."""
