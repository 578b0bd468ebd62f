"""The ``color`` scorer: the product's chroma distribution and colour support, relative to the references."""
from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from ecomforge.pathspec import WORK

from .regions import product_region
from .relative import RelativeConfig, RelativeScorer


def chroma_histogram(image: np.ndarray, mask: np.ndarray, bins: int, smooth: float) -> np.ndarray:
    """Normalised 2-D histogram of CIELAB a*, b* inside the mask, lightness-weighted towards mid-tones."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    sel = mask > 0
    a = lab[..., 1][sel].astype(np.float32)
    b = lab[..., 2][sel].astype(np.float32)
    if a.size == 0:
        return np.full((bins, bins), 1.0 / bins**2, np.float32)
    # a*, b* are 128-centred in 8-bit Lab; real colours stay within ±80.
    h, _, _ = np.histogram2d(a, b, bins=bins, range=[[48, 208], [48, 208]])
    h = h.astype(np.float32)
    if smooth > 0:  # tolerate small shifts (white balance, JPEG) without hiding a real recolouring
        h = cv2.GaussianBlur(h, (0, 0), smooth)
    return h / max(h.sum(), 1e-9)


def bhattacharyya(p: np.ndarray, q: np.ndarray) -> float:
    """Bhattacharyya coefficient of two normalised histograms, in [0, 1] (1 = identical)."""
    return float(np.clip(np.sqrt(p * q).sum(), 0.0, 1.0))


def shifted_bhattacharyya(p: np.ndarray, q: np.ndarray, radius: int) -> float:
    """The best Bhattacharyya coefficient over global shifts of ``p`` by up to ``radius`` bins per axis.

    A white-balance or colour-temperature change moves the whole chroma histogram a little; a
    recoloured product moves it far (or reshapes it), which no small shift undoes.
    """
    best = bhattacharyya(p, q)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx or dy:
                shifted = np.roll(np.roll(p, dy, axis=0), dx, axis=1)
                best = max(best, bhattacharyya(shifted, q))
    return best


def support(p: np.ndarray, q: np.ndarray, level: float) -> float:
    """Share of ``p``'s mass in chroma bins where ``q`` has at least ``level`` of its peak density.

    A missing part filled with background, a foreign patch or a recoloured print puts candidate
    pixels where no reference has colour, even when the histograms' overlap stays fair.
    """
    wide = cv2.GaussianBlur(q, (0, 0), 1.0)
    return float(p[wide >= level * max(float(wide.max()), 1e-12)].sum())


class ColorScorer(RelativeScorer):
    """Colour identity: chroma-histogram overlap x colour support, relative to the references' own agreement.

    Raw similarity = BC^gamma x support, with BC the Bhattacharyya coefficient of the product's
    CIELAB a*b* histograms (the best over global chroma shifts of up to ``cast_tolerance`` bins: a
    white-balance cast) and support the share of the candidate's colours that the reference shows
    at all, averaged over the whole product and its worst grid cell. Lightness is left out, so a re-shoot in other light keeps its score. The raw value is
    mapped through relative.py (floor: what an unrelated product gets; baseline: what the
    references achieve against each other), the best over the references.
    """

    name = "color"
    what = "product colours"

    class Config(RelativeConfig):
        bins: int = Field(default=32, ge=4, le=128, description="Histogram bins per chroma axis.")
        smooth: float = Field(default=0.8, ge=0, le=8, description="Histogram blur (bins) tolerating small colour casts.")
        gamma: float = Field(default=1.0, gt=0, le=16, description="Sharpens the overlap term: BC^gamma.")
        cast_tolerance: int = Field(default=2, ge=0, le=8, description="Bins of global chroma shift forgiven (a white-balance cast), per axis.")
        support_level: float = Field(default=0.03, gt=0, lt=1, description="Density (share of the peak) below which a reference shows no such colour.")
        grid: int = Field(default=3, ge=1, le=8, description="Cells per side whose worst colour support counts half: "
                                                            "a local foreign patch or missing part shows there.")
        max_side: int = Field(default=128, ge=16, le=1024, json_schema_extra=WORK, description="Product crops are resized to this long side.")
        floor: float = Field(default=0.35, ge=0, lt=1, description="Raw similarity an unrelated product gets (scores 0).")
        default_baseline: float = Field(default=0.85, gt=0, le=1, description="Raw similarity of a re-shoot, used with one reference.")

    def features(self, image: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, list[np.ndarray]]:
        """The product's smoothed a*b* histogram, and one per cell of a ``grid`` x ``grid`` split of its box."""
        cfg = self.config
        img, m = product_region(image, mask, max_side=cfg.max_side)
        whole = chroma_histogram(img, m, cfg.bins, cfg.smooth)
        n, cells = cfg.grid, []
        ys, xs = np.linspace(0, m.shape[0], n + 1).astype(int), np.linspace(0, m.shape[1], n + 1).astype(int)
        total = max(1, np.count_nonzero(m))
        for i in range(n):
            for j in range(n):
                cm = m[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
                if np.count_nonzero(cm) >= 0.5 * total / n**2:  # cells the product really fills
                    cells.append(chroma_histogram(img[ys[i]:ys[i + 1], xs[j]:xs[j + 1]], cm, cfg.bins, cfg.smooth))
        return whole, cells

    def similarity(self, candidate, reference) -> float:
        """BC^gamma x colour support (of the whole product and of its worst cell) against one reference."""
        cfg = self.config
        (whole, cells), (ref, _) = candidate, reference
        overlap = shifted_bhattacharyya(whole, ref, cfg.cast_tolerance) ** cfg.gamma
        worst = min((support(c, ref, cfg.support_level) for c in cells), default=1.0)
        return overlap * (0.5 * support(whole, ref, cfg.support_level) + 0.5 * worst)
