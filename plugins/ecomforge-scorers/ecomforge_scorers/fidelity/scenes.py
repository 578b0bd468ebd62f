"""Clean composites of a real product photo into real scenes, and integration failures made from them.

A composite cuts the product out of one of its photos (its mask, feathered by 1.5 px) and places
it, at 40-60 % of the frame height, low and near the centre, into a scikit-image photo or a
studio backdrop: the benign case of a generator that got the scene right. Each integration
failure re-renders the same composite with one thing wrong, so a scorer is judged on exactly
that fault. The returned mask is the product's pasted mask, as a generator reports it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ecomforge.imaging.masks import bbox, dilate

from .data import scene


@dataclass(frozen=True)
class Layout:
    """Where and how large the product goes: centre (fractions of the frame) and height fraction."""

    cx: float
    cy: float
    height: float


def cutout(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RGB crop, float alpha crop) of the product, the alpha feathered so the paste has no hard edge."""
    x0, y0, x1, y1 = bbox(mask) or (0, 0, mask.shape[1], mask.shape[0])
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 1.0)
    return image[y0:y1, x0:x1].copy(), alpha[y0:y1, x0:x1].copy()


def place(canvas: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Paste a cut-out at ``layout`` (clipped by the frame); returns (image, binary product mask)."""
    H, W = canvas.shape[:2]
    s = layout.height * H / rgb.shape[0]
    w, h = max(2, round(rgb.shape[1] * s)), max(2, round(rgb.shape[0] * s))
    top = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR).astype(np.float32)
    a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)[:, :, None]
    x, y = round(layout.cx * W - w / 2), round(layout.cy * H - h / 2)
    ox0, oy0, ox1, oy1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    out, mask = canvas.astype(np.float32), np.zeros((H, W), np.uint8)
    if ox1 > ox0 and oy1 > oy0:
        region = (slice(oy0 - y, oy1 - y), slice(ox0 - x, ox1 - x))
        aa = a[region]
        out[oy0:oy1, ox0:ox1] = top[region] * aa + out[oy0:oy1, ox0:ox1] * (1 - aa)
        mask[oy0:oy1, ox0:ox1] = np.where(aa[:, :, 0] > 0.5, 255, 0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask


def layout_for(rng: np.random.Generator, aspect: float) -> Layout:
    """A plausible placement: centred-ish, resting low, 40-60 % of the frame height (narrower if wide)."""
    height = float(rng.uniform(0.4, 0.6))
    height = min(height, 0.7 / max(aspect, 1e-3))  # a wide product must still fit the width
    return Layout(float(rng.uniform(0.42, 0.58)), float(rng.uniform(0.52, 0.6)), height)


def compose(image: np.ndarray, mask: np.ndarray, scene_name: str, rng: np.random.Generator, size: int = 256):
    """A clean composite of the photo's product into a scene; returns (image, mask, parts to re-render)."""
    rgb, alpha = cutout(image, mask)
    layout = layout_for(rng, rgb.shape[1] / max(1, rgb.shape[0]))
    background = scene(scene_name, (size, size))
    out, m = place(background, rgb, alpha, layout)
    return out, m, (background, rgb, alpha, layout)


def expansion(parts, rng):
    """Product colour regrown beyond the mask: a 1.35x copy of the product spreads around it."""
    background, rgb, alpha, lay = parts
    grown, _ = place(background, rgb, np.minimum(1, alpha * 3), Layout(lay.cx, lay.cy, lay.height * 1.35))
    return place(grown, rgb, alpha, lay)


def halo(parts, rng):
    """A bright or dark rim 3-5 px wide all along the paste edge, in the tone the scene there is not."""
    background, rgb, alpha, lay = parts
    out, mask = place(background, rgb, alpha, lay)
    rim = cv2.bitwise_and(dilate(mask, int(rng.integers(3, 6))), cv2.bitwise_not(mask)) > 0
    # A halo shows because it differs from the scene: a white rim on a white sweep is no failure at all, so
    # a light scene gets a dark rim and a dark scene a bright one (a mid-tone scene either, at random).
    under = float(out[rim].mean()) if rim.any() else 128.0
    tone = 250 if (under < 85 or (under <= 170 and rng.random() < 0.5)) else 10
    out[rim] = (0.2 * out[rim] + 0.8 * tone).astype(np.uint8)
    return out, mask


def seam(parts, rng):
    """A visible seam: the scene in a band around the product is re-lit and re-coloured (a bad inpaint band)."""
    background, rgb, alpha, lay = parts
    out, mask = place(background, rgb, alpha, lay)
    band = dilate(mask, 14) > 0
    shift = np.float32(rng.choice([-1, 1]) * np.array([45, 25, -30]))
    shifted = np.clip(out.astype(np.float32) + shift, 0, 255).astype(np.uint8)
    out[band & (mask == 0)] = shifted[band & (mask == 0)]
    return out, mask


def duplicate(parts, rng):
    """A second, smaller copy of the product elsewhere in the scene."""
    background, rgb, alpha, lay = parts
    side = 0.18 if lay.cx > 0.5 else 0.82
    with_copy, _ = place(background, rgb, alpha, Layout(side, 0.3, lay.height * 0.45))
    return place(with_copy, rgb, alpha, lay)


def _background(fill):
    def make(parts, rng):
        background, rgb, alpha, lay = parts
        return place(fill(background, rng), rgb, alpha, lay)
    return make


def _black(bg, rng):
    return np.zeros_like(bg) + np.uint8(rng.integers(0, 6))


def _flat(bg, rng):
    return np.full_like(bg, int(rng.integers(90, 170)))


def _noise(bg, rng):
    return rng.integers(0, 256, bg.shape, dtype=np.uint8)


def _posterised(bg, rng):
    levels = 3
    return ((bg.astype(np.int32) * levels // 256) * (255 // (levels - 1))).astype(np.uint8)


def _saturated(bg, rng):
    hsv = cv2.cvtColor(bg, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 4 + 90, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * 1.3 + 40, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def blob(parts, rng):
    """A large smeared blob of colour touching the product (a melted inpaint)."""
    background, rgb, alpha, lay = parts
    out, mask = place(background, rgb, alpha, lay)
    x0, y0, x1, y1 = bbox(mask) or (0, 0, 1, 1)
    H, W = mask.shape
    cx = x1 + (x1 - x0) * 0.25 if rng.random() < 0.5 else x0 - (x1 - x0) * 0.25
    ell = np.zeros((H, W), np.float32)
    cv2.ellipse(ell, (int(cx), int((y0 + y1) / 2)), (int((x1 - x0) * 0.5), int((y1 - y0) * 0.45)), 0, 0, 360, 1.0, -1)
    ell = cv2.GaussianBlur(ell, (0, 0), 6)[:, :, None] * (mask[:, :, None] == 0)
    colour = rgb.reshape(-1, 3).mean(axis=0) * 0.6 + rng.uniform(0, 255, 3) * 0.4
    return np.clip(out * (1 - ell) + colour * ell, 0, 255).astype(np.uint8), mask


def cut(parts, rng):
    """The product cut by the frame: 40 % of it falls outside the picture."""
    background, rgb, alpha, lay = parts
    w_frac = lay.height * rgb.shape[1] / rgb.shape[0]
    cx = 1 - 0.1 * w_frac if rng.random() < 0.5 else 0.1 * w_frac
    return place(background, rgb, alpha, Layout(cx, lay.cy, lay.height))


def tiny(parts, rng):
    """The product shrunk to 8 % of the frame height."""
    background, rgb, alpha, lay = parts
    return place(background, rgb, alpha, Layout(lay.cx, lay.cy, 0.08))


def huge(parts, rng):
    """The product blown up past the frame (140 % of its height)."""
    background, rgb, alpha, lay = parts
    return place(background, rgb, alpha, Layout(0.5, 0.5, 1.4))


INTEGRATION = {fn.__name__: fn for fn in (expansion, halo, seam, duplicate)}
INTEGRATION.update({f"bg-{name}": _background(fill) for name, fill in (
    ("black", _black), ("flat", _flat), ("noise", _noise), ("posterised", _posterised), ("saturated", _saturated))})
INTEGRATION.update({fn.__name__: fn for fn in (blob, cut, tiny, huge)})
# Failures that re-render the scene itself are only failures where the scene has content: a plain studio
# backdrop posterised to 3 levels or saturated is still a plain backdrop (a good packshot), so these
# are made on a photo scene.
NEEDS_PHOTO_SCENE = frozenset({"bg-posterised", "bg-saturated"})
DESCRIPTIONS = {name: (fn.__doc__ or "").strip() for name, fn in INTEGRATION.items()}
DESCRIPTIONS.update({"bg-black": "A black background.", "bg-flat": "A flat grey background.",
                     "bg-noise": "A background of pure noise.", "bg-posterised": "The scene posterised to 3 levels.",
                     "bg-saturated": "The scene over-saturated and blown out."})
