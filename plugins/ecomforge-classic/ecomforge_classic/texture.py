"""The ``texture`` scorer: the product's fine detail and texture statistics, relative to the references."""
from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from ecomforge.imaging.masks import erode
from ecomforge.pathspec import WORK

from .color import bhattacharyya
from .regions import product_region
from .relative import RelativeConfig, RelativeScorer


def local_binary_histogram(grey: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Normalised histogram of rotation-invariant 8-neighbour binary patterns (count of brighter neighbours, 0-8)."""
    g = grey.astype(np.int16)
    p = np.pad(g, 1, mode="edge")
    h, w = g.shape
    brighter = sum((p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] >= g + 3).astype(np.uint8)
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
    hist = np.bincount(brighter[inside].ravel(), minlength=9).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def cell_descriptors(lab: np.ndarray, grey: np.ndarray, inside: np.ndarray, grid: int) -> np.ndarray:
    """One row per grid cell the product fills: [a*, b*, local contrast, 9 binary-pattern shares]."""
    h, w = inside.shape
    ys, xs = np.linspace(0, h, grid + 1).astype(int), np.linspace(0, w, grid + 1).astype(int)
    rows = []
    for i in range(grid):
        for j in range(grid):
            sel = inside[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            if sel.sum() < 0.5 * sel.size or sel.sum() < 9:
                continue
            cell = lab[ys[i]:ys[i + 1], xs[j]:xs[j + 1]][sel].astype(np.float32)
            g = grey[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            rows.append(np.concatenate([(cell[:, 1:].mean(axis=0) - 128) / 12.0, [cell[:, 0].std() / 12.0],
                                        local_binary_histogram(g, sel) * 3.0]))
    return np.array(rows, np.float32).reshape(-1, 12)


class TextureScorer(RelativeScorer):
    """Detail identity: sharpness and texture of the product at a common scale, against the references.

    At ``size`` px (long side), inside the eroded mask: sharpness = mean |Laplacian| / std of the
    grey level (contrast-free), and a histogram of local binary patterns. Raw similarity =
    min(1, sharpness_cand / sharpness_ref)^2 x BC(patterns), the best over the references, mapped
    by relative.py. A blurred print, a smeared or foreign surface lowers it; a sharper re-shoot
    does not.
    """

    name = "texture"
    what = "surface detail"

    class Config(RelativeConfig):
        size: int = Field(default=96, ge=32, le=512, json_schema_extra=WORK, description="Long side (px) both crops are brought to.")
        grid: int = Field(default=6, ge=2, le=16, description="Cells per side matched against the references' cells.")
        cell_scale: float = Field(default=4.0, gt=0, le=100, description="Cell distance at which the local term falls to 1/e.")
        floor: float = Field(default=0.1, ge=0, lt=1, description="Raw similarity an unrelated surface gets (scores 0).")
        default_baseline: float = Field(default=0.4, gt=0, le=1, description="Raw similarity of a re-shoot, used with one reference.")
        min_span: float = Field(default=0.2, gt=0, description="Smallest baseline - floor gap.")

    def features(self, image: np.ndarray, mask: np.ndarray | None) -> dict[int, tuple]:
        """{long side: (sharpness, binary-pattern histogram, cell rows)} at each common scale the photo resolves.

        A product photographed small is never upsampled past its own pixels (interpolation would read
        as blur): it is described only at the scales of the ladder it covers, the smallest always.
        """
        img, m = product_region(image, mask, max_side=4096)
        native = max(img.shape[:2])
        ladder = self.ladder()
        return {side: self._at(img, m, side) for side in ladder if side <= native or side == ladder[-1]}

    def ladder(self) -> list[int]:
        """The common scales, ``size`` down to a third of it."""
        size = self.config.size
        return sorted({max(16, round(size * f)) for f in (1.0, 0.75, 0.56, 0.42, 0.33)}, reverse=True)

    def _at(self, img: np.ndarray, m: np.ndarray, side: int) -> tuple[float, np.ndarray, np.ndarray]:
        s = side / max(img.shape[:2])
        size = (max(8, round(img.shape[1] * s)), max(8, round(img.shape[0] * s)))
        grey = cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), size,
                          interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        inside = erode(cv2.resize(m, size, interpolation=cv2.INTER_NEAREST), 2) > 0
        if inside.sum() < 16:
            return 0.0, np.full(9, 1 / 9), np.zeros((0, 12), np.float32)
        lap = np.abs(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F, ksize=3))[inside]
        sharp = float(lap.mean() / (grey[inside].std() + 4.0))
        lab = cv2.cvtColor(cv2.resize(img, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2LAB)
        return sharp, local_binary_histogram(grey, inside), cell_descriptors(lab, grey, inside, self.config.grid)

    def similarity(self, candidate, reference) -> float:
        """At the finest scale both resolve: min(1, relative sharpness)^2 x pattern overlap x worst-cell match."""
        side = max(set(candidate) & set(reference))
        (sc, hc, cc), (sr, hr, cr) = candidate[side], reference[side]
        ratio = min(1.0, sc / max(sr, 1e-6))
        local = 1.0
        if len(cc) and len(cr):  # each candidate cell's nearest reference cell; a foreign patch has none
            d = np.abs(cc[:, None, :] - cr[None, :, :]).sum(axis=2).min(axis=1)
            worst = np.sort(d)[-max(1, len(d) // 8):].mean()
            local = float(np.exp(-worst / self.config.cell_scale))
        return ratio**2 * bhattacharyya(hc, hr) * local
