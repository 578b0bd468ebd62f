"""Product colour models: which colours are the product's (from the references) rather than the scene's."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .common import View, make_view, product_size, signed_distance

BINS = (10, 14, 14)  # L*, a*, b*
RANGE = ((0.0, 100.0), (-70.0, 70.0), (-70.0, 70.0))


def colour_histogram(lab: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Normalised, lightly smoothed 3-D Lab histogram of the selected pixels (all-zero when none)."""
    px = lab[where].reshape(-1, 3)
    if len(px) == 0:
        return np.zeros(BINS, np.float32)
    h, _ = np.histogramdd(px, bins=BINS, range=RANGE)
    h = h.astype(np.float32)
    # Smooth along each axis so a shade between two bins, or a small cast, still matches.
    for axis in range(3):
        h = (np.roll(h, 1, axis) + 2 * h + np.roll(h, -1, axis)) / 4
    return h / max(float(h.sum()), 1e-9)


def bin_index(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The histogram bin of every pixel of a Lab image."""
    out = []
    for c, (n, (lo, hi)) in enumerate(zip(BINS, RANGE)):
        out.append(np.clip(((lab[..., c] - lo) / (hi - lo) * n).astype(np.int32), 0, n - 1))
    return out[0], out[1], out[2]


@dataclass(frozen=True)
class ProductColours:
    """The colours of the product's core in its references (a normalised Lab histogram)."""

    hist: np.ndarray

    @classmethod
    def of(cls, image: np.ndarray, mask: np.ndarray, side: int) -> ProductColours:
        """The product core of one reference: the mask eroded so edge pixels mixed with background stay out."""
        view = make_view(image, mask, side)
        core = signed_distance(view.mask) < -max(1.0, 0.02 * product_size(view.mask))
        return cls(colour_histogram(view.lab, core if core.any() else view.mask))

    @staticmethod
    def merge(models: list[ProductColours]) -> ProductColours:
        """One model for all references of a product."""
        if not models:
            return ProductColours(np.zeros(BINS, np.float32))
        return ProductColours(np.mean([m.hist for m in models], axis=0))

    def likeness(self, view: View, scene: np.ndarray) -> np.ndarray:
        """Per pixel in [0,1]: how much more the colour is the product's than the scene's (``scene``: a pixel mask).

        P / (P + S) with P the product's and S the scene's histogram: 0.5 where the colour is as
        common in both, near 1 where only the product has it.
        """
        s = colour_histogram(view.lab, scene)
        idx = bin_index(view.lab)
        p = self.hist[idx]
        q = s[idx]
        return p / (p + q + 1e-4)


def attached_area(flags: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The parts of ``flags`` (bool) connected to any ``seed`` pixel, after removing single-pixel speckle."""
    f = cv2.morphologyEx(flags.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    n, labels = cv2.connectedComponents(f, connectivity=8)
    if n <= 1:
        return np.zeros(flags.shape, bool)
    touching = np.unique(labels[seed & (f > 0)])
    return np.isin(labels, touching[touching > 0])
