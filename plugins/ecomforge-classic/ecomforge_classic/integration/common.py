"""Shared helpers of the integration scorers: working copies, distance bands, references, calibration."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ecomforge.run import cancel
from ecomforge.types import Candidate, Score, ScoringContext

# Below this a score carries a reason: the runner quotes it when the filter drops the candidate.
REASON_BELOW = 0.85


@dataclass(frozen=True)
class View:
    """An image and its product mask at a bounded working size (both scorer-private copies)."""

    rgb: np.ndarray  # h×w×3 uint8
    lab: np.ndarray  # h×w×3 float32: L in [0,100], a*, b* centred on 0
    mask: np.ndarray  # h×w bool, True = product
    scale: float  # working px per original px

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the working copy."""
        return self.mask.shape[0], self.mask.shape[1]


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB of an 8-bit RGB image as float32 (L 0–100, a*/b* signed), via OpenCV's fast 8-bit path."""
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return lab


def make_view(image: np.ndarray, mask: np.ndarray | None, side: int) -> View:
    """Downscale (never upscale) so the long side is at most ``side``; an absent mask is empty."""
    h, w = image.shape[:2]
    s = min(1.0, side / max(h, w))
    if mask is None or mask.shape != (h, w):
        mask = np.zeros((h, w), np.uint8)
    if s < 1.0:
        size = (max(1, round(w * s)), max(1, round(h * s)))
        rgb = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        m = cv2.resize(mask, size, interpolation=cv2.INTER_AREA) >= 128
    else:
        rgb, m = image, mask >= 128
    rgb = np.ascontiguousarray(rgb[..., :3])
    return View(rgb, to_lab(rgb), m, s)


def shrink_mask(mask: np.ndarray, side: int) -> np.ndarray:
    """A uint8 {0,255} mask as bool, downscaled (area-averaged, then halved) so its long side is at most ``side``."""
    h, w = mask.shape
    s = min(1.0, side / max(h, w))
    if s < 1.0:
        size = (max(1, round(w * s)), max(1, round(h * s)))
        return cv2.resize(mask, size, interpolation=cv2.INTER_AREA) >= 128
    return mask >= 128


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Distance in px to the mask's edge: positive outside the product, negative inside (float32)."""
    m = mask.astype(np.uint8)
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, 3)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, 3)
    return np.where(m > 0, -inside, outside).astype(np.float32)


def local_mean(values: np.ndarray, weight: np.ndarray, ksize: int) -> tuple[np.ndarray, np.ndarray]:
    """(weighted box-filter mean of ``values`` over ``weight``, local weight sum) with a ``ksize`` window."""
    k = (max(1, ksize), max(1, ksize))
    wgt = weight.astype(np.float32)
    den = cv2.blur(wgt, k, borderType=cv2.BORDER_CONSTANT)
    if values.ndim == 3:
        num = cv2.blur(values * wgt[..., None], k, borderType=cv2.BORDER_CONSTANT)
        return num / np.maximum(den, 1e-6)[..., None], den
    num = cv2.blur(values * wgt, k, borderType=cv2.BORDER_CONSTANT)
    return num / np.maximum(den, 1e-6), den


def product_size(mask: np.ndarray) -> float:
    """The product's linear size in px: the square root of its area."""
    return float(np.sqrt(max(1, int(np.count_nonzero(mask)))))


def ramp(x: float, good: float, bad: float) -> float:
    """Linear calibration: 1 at or below ``good``, 0 at or beyond ``bad`` (either direction)."""
    if good == bad:
        return 1.0 if x <= good else 0.0
    t = (x - good) / (bad - good)
    return float(np.clip(1.0 - t, 0.0, 1.0))


def verdict(value: float, reason: str) -> Score:
    """A Score in [0,1] that keeps ``reason`` only when the value is low enough to need one."""
    v = float(np.clip(value, 0.0, 1.0)) if np.isfinite(value) else 0.0
    return Score(round(v, 6), reason if v < REASON_BELOW else "")


def candidate_mask(cand: Candidate, context: ScoringContext) -> np.ndarray | None:
    """The candidate's product mask; without one, a reference mask of the same size (paste-back keeps geometry)."""
    if cand.mask is not None and cand.mask.shape == cand.image.shape[:2] and np.any(cand.mask):
        return cand.mask
    for m in context.masks:
        if m.data.shape == cand.image.shape[:2] and np.any(m.data):
            return m.data
    return None


def paste_band(context: ScoringContext) -> int:
    """The widest paste-back band (dilate + feather, px) of the product's masks: the soft edge to step over."""
    return max((int(m.dilate) + int(m.feather) for m in context.masks), default=0)


class ReferenceCache:
    """Per-reference measurements, computed once per (pixels, mask, settings) and reused across calls."""

    def __init__(self) -> None:
        self._store: dict[tuple, object] = {}

    def get(self, context: ScoringContext, key: tuple, compute: Callable[[np.ndarray, np.ndarray], object]) -> list:
        """``compute(image, mask)`` for each reference with a usable mask, cached by sha256 and mask bytes."""
        out = []
        for ref, mask in zip(context.references, context.masks):
            if mask.data.shape != ref.image.shape[:2] or not np.any(mask.data):
                continue
            k = (ref.sha256, hash(mask.data.tobytes()), mask.data.shape, key)
            if k not in self._store:
                if len(self._store) > 256:  # a long-lived server sees many products
                    self._store.clear()
                self._store[k] = compute(ref.image, mask.data)
            out.append(self._store[k])
        return out


def score_each(candidates: Sequence[Candidate], context: ScoringContext,
               judge: Callable[[Candidate, np.ndarray | None], Score]) -> list[Score]:
    """Apply ``judge`` to every candidate; a failed candidate scores 0 with the generator's reason."""
    out = []
    for cand in candidates:
        cancel.check()  # a scoring pass over many candidates stops between them
        if cand.failed:
            out.append(Score(0.0, f"generation failed: {cand.failed}"))
            continue
        out.append(judge(cand, candidate_mask(cand, context)))
    return out
