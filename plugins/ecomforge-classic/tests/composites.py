"""Composites of real product photos into real scenes, shared by the integration scorers' tests."""
from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from ecomforge.imaging.masks import bbox
from ecomforge.imaging.paste import composite, paste_alpha

SIDE = 384  # canvases of the property tests: small, so hypothesis stays fast


def photo(name: str, side: int = SIDE) -> np.ndarray:
    """A skimage.data photo (or a studio backdrop) covering a side×side canvas."""
    if name == "studio":  # the quickstart's linear studio gradient
        t = np.linspace(0, 1, side, dtype=np.float32)[:, None, None]
        img = np.array([255, 255, 255], np.float32) * (1 - t) + np.array([216, 222, 230], np.float32) * t
        return np.broadcast_to(np.round(img), (side, side, 3)).astype(np.uint8).copy()
    img = getattr(data, name)()
    img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
    s = side / min(img.shape[:2])
    img = cv2.resize(img, (round(img.shape[1] * s) + 1, round(img.shape[0] * s) + 1), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img[:side, :side])


def place(ref, mask, background: np.ndarray, *, scale: float = 0.6, centre=(0.5, 0.55), flip: bool = False,
          shadow: float = 0.0):
    """The product cut out (feathered alpha) and composited at ``scale`` of the frame: (image, product mask).

    ``shadow``: the darkening of a soft contact shadow (a blurred ellipse) under the product, 0 for none."""
    alpha = paste_alpha(mask.data, dilate_px=mask.dilate, feather_px=mask.feather)
    x0, y0, x1, y1 = bbox(alpha)
    prod, a = ref.image[y0:y1, x0:x1], alpha[y0:y1, x0:x1]
    if flip:
        prod, a = prod[:, ::-1], a[:, ::-1]
    H, W = background.shape[:2]
    f = scale * min(W / prod.shape[1], H / prod.shape[0])
    size = (max(1, round(prod.shape[1] * f)), max(1, round(prod.shape[0] * f)))
    prod = cv2.resize(np.ascontiguousarray(prod), size, interpolation=cv2.INTER_AREA)
    a = cv2.resize(np.ascontiguousarray(a), size, interpolation=cv2.INTER_LINEAR)
    left, top = int(centre[0] * W - size[0] / 2), int(centre[1] * H - size[1] / 2)
    full_a, full_p = np.zeros((H, W), np.uint8), np.zeros((H, W, 3), np.uint8)
    X0, Y0, X1, Y1 = max(left, 0), max(top, 0), min(left + size[0], W), min(top + size[1], H)
    full_a[Y0:Y1, X0:X1] = a[Y0 - top:Y1 - top, X0 - left:X1 - left]
    full_p[Y0:Y1, X0:X1] = prod[Y0 - top:Y1 - top, X0 - left:X1 - left]
    if shadow > 0:
        dark = np.zeros((H, W), np.float32)
        cv2.ellipse(dark, (int(centre[0] * W), top + size[1]), (size[0] // 2, 6), 0, 0, 360, shadow, -1)
        dark = cv2.GaussianBlur(dark, (0, 0), 5)
        background = (background.astype(np.float32) * (1 - dark[..., None])).astype(np.uint8)
    return composite(full_p, background, full_a), np.where(full_a >= 128, 255, 0).astype(np.uint8)
