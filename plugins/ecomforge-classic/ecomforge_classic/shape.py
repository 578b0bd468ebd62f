"""The ``shape`` scorer: the product's silhouette against the closest of the reference silhouettes."""
from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from .regions import product_region
from .relative import RelativeConfig, RelativeScorer


def silhouette(mask: np.ndarray) -> np.ndarray:
    """Rotation- and scale-free descriptors of a mask's outline.

    [log elongation of the min-area rectangle, solidity (area / convex hull), log Hu moments 1-2,
    outline roughness (perimeter / hull perimeter)]. A viewpoint change moves them a little; a
    squashed, warped or truncated product moves them far.
    """
    contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.full(5, np.nan)
    c = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(c)
    hull = cv2.convexHull(c)
    (_, _), (rw, rh), _ = cv2.minAreaRect(c)
    hu = cv2.HuMoments(cv2.moments(c)).ravel()[:2]
    return np.array([np.log(max(rw, rh, 1) / max(min(rw, rh), 1)),
                     area / max(cv2.contourArea(hull), 1.0),
                     *(-np.sign(hu) * np.log10(np.abs(hu) + 1e-12)),
                     cv2.arcLength(c, True) / max(cv2.arcLength(hull, True), 1.0)])


class ShapeScorer(RelativeScorer):
    """Shape identity: silhouette distance to the closest reference mask, relative to the references' spread.

    Raw similarity = exp(-sum_i w_i |d_i|) over the silhouette descriptors (silhouette()), the
    best over the references (mirror images have the same descriptors). A product seen from a new
    angle is compared with the reference whose outline is closest, and the result is mapped by
    relative.py against how close the references' outlines are to each other.
    """

    name = "shape"
    what = "product outline"

    class Config(RelativeConfig):
        max_side: int = Field(default=128, ge=32, le=1024, description="Masks are resized to this long side.")
        weights: tuple[float, float, float, float, float] = Field(
            default=(2.0, 4.0, 1.0, 0.5, 3.0),
            description="Weights of elongation, solidity, Hu 1, Hu 2 and roughness differences.")
        floor: float = Field(default=0.15, ge=0, lt=1, description="Raw similarity an unrelated outline gets (scores 0).")
        default_baseline: float = Field(default=0.6, gt=0, le=1, description="Raw similarity of a re-shoot, used with one reference.")
        min_span: float = Field(default=0.2, gt=0, description="Smallest baseline - floor gap.")

    def features(self, image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """The silhouette descriptors of the product mask (the whole frame when there is none)."""
        _, m = product_region(image, mask, max_side=self.config.max_side)
        return silhouette(np.pad(m, 2))

    def similarity(self, candidate: np.ndarray, reference: np.ndarray) -> float:
        """exp(-weighted L1 distance) of two silhouettes."""
        d = np.abs(candidate - reference)
        if not np.all(np.isfinite(d)):
            return 0.0
        return float(np.exp(-np.dot(self.config.weights, d)))
