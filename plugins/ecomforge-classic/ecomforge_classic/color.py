"""The ``color`` scorer: colour-distribution similarity of the product region."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import Field

from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, ScoringContext

from .regions import product_region, region_key


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


def lightness_histogram(image: np.ndarray, mask: np.ndarray, bins: int = 8) -> np.ndarray:
    """Normalised lightness histogram inside the mask, after removing the mean (brightness-invariant)."""
    L = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 0][mask > 0].astype(np.float32)
    if L.size == 0:
        return np.full(bins, 1.0 / bins, np.float32)
    h, _ = np.histogram(L - L.mean(), bins=bins, range=(-128, 128))
    return (h / max(h.sum(), 1)).astype(np.float32)


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


class ColorScorer(Scorer):
    """Colour fidelity: Bhattacharyya coefficient of the product's a*b* chroma histograms.

    Calibration: score = BC_chroma^gamma (· BC_lightness^(gamma·lightness_weight) when weighted),
    with BC_chroma the best over global chroma shifts of up to ``cast_tolerance`` bins (a colour
    cast), and the best over the references. Identical regions give 1.0. Pose, scale and background changes do not move the
    histograms; brightness hardly does (lightness is mean-removed, chroma is lightness-free); a hue
    shift or recolouring moves the chroma mass and drops the score towards 0.
    """

    name = "color"

    class Config(StageConfig):
        bins: int = Field(default=32, ge=4, le=128, description="Histogram bins per chroma axis.")
        smooth: float = Field(default=0.8, ge=0, le=8, description="Histogram blur (bins) tolerating small colour casts.")
        gamma: float = Field(default=2.0, gt=0, le=16, description="Sharpens the score: BC^gamma.")
        lightness_weight: float = Field(default=0.0, ge=0, le=2, description="Weight of the lightness-distribution term (0: lighting never counts).")
        cast_tolerance: int = Field(default=2, ge=0, le=8, description="Bins of global chroma shift forgiven (a white-balance cast), per axis.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._cache: dict = {}

    def _hists(self, image: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        img, m = product_region(image, mask)
        return chroma_histogram(img, m, self.config.bins, self.config.smooth), lightness_histogram(img, m)

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[float]:
        """The best match over the references, per candidate."""
        refs = []
        for ref, mask in zip(context.references, context.masks):
            key = region_key(ref.sha256, mask.data)
            if key not in self._cache:
                self._cache[key] = self._hists(ref.image, mask.data)
            refs.append(self._cache[key])
        cfg = self.config
        out = []
        for cand in candidates:
            ch, lh = self._hists(cand.image, cand.mask)
            best = 0.0
            for rch, rlh in refs:
                s = shifted_bhattacharyya(ch, rch, cfg.cast_tolerance) ** cfg.gamma
                if cfg.lightness_weight:
                    s *= bhattacharyya(lh, rlh) ** (cfg.gamma * cfg.lightness_weight)
                best = max(best, s)
            out.append(float(np.clip(best, 0.0, 1.0)))
        return out
