"""Product preservation: paste the photographed product back over a generated image."""
from __future__ import annotations

import numpy as np

from .masks import dilate, erode, feather_alpha


def paste_alpha(mask: np.ndarray, *, dilate_px: int, feather_px: int) -> np.ndarray:
    """The paste-back alpha: the mask dilated by ``dilate_px``, then feathered inward by ``feather_px``.

    Exactly 255 on ``erode(mask, feather_px - dilate_px)``: discrete disks do not compose, so
    eroding the dilated mask can miss a few of those pixels; they are forced opaque.
    """
    alpha = feather_alpha(dilate(mask, dilate_px), feather_px)
    alpha[erode(mask, max(feather_px - dilate_px, 0)) > 0] = 255
    return alpha


def composite(top: np.ndarray, bottom: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``top`` over ``bottom`` through a uint8 alpha, in integer arithmetic (255 gives ``top`` exactly)."""
    a = alpha.astype(np.uint32)[..., None]
    out = (top.astype(np.uint32) * a + bottom.astype(np.uint32) * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def paste_back(original: np.ndarray, generated: np.ndarray, mask: np.ndarray, *,
               dilate_px: int = 0, feather_px: int = 0) -> np.ndarray:
    """Put the original product pixels back: inside ``erode(mask, feather_px - dilate_px)`` bit-exact."""
    if original.shape != generated.shape:
        raise ValueError(f"paste_back: original {original.shape} and generated {generated.shape} differ")
    return composite(original, generated, paste_alpha(mask, dilate_px=dilate_px, feather_px=feather_px))


def seam_band(mask: np.ndarray, *, dilate_px: int, feather_px: int, width: int) -> np.ndarray:
    """The band around the paste-back edge (where seams show), as uint8 {0,255}."""
    alpha = paste_alpha(mask, dilate_px=dilate_px, feather_px=feather_px)
    edge = ((alpha > 0) & (alpha < 255)).astype(np.uint8) * 255
    outer = dilate((alpha > 0).astype(np.uint8) * 255, width)
    inner = (alpha == 255).astype(np.uint8) * 255
    band = np.where((outer > 0) & (inner == 0), 255, 0).astype(np.uint8)
    return np.maximum(band, edge)
