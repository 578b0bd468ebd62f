"""The ``keypoints`` scorer: verified local-feature matches, relative to what the references achieve together."""
from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from ecomforge.pathspec import WORK

from .regions import product_region
from .relative import RelativeConfig, RelativeScorer


class Views(list):
    """A product's feature sets (the image, its mirror), with the product crop they were found in."""

    def __init__(self, views: list, region: tuple[np.ndarray, np.ndarray]) -> None:
        super().__init__(views)
        self.region = region


class KeypointsScorer(RelativeScorer):
    """Print and detail identity: geometrically verified SIFT matches, against the references' own matching.

    Raw similarity = the number of matches that pass Lowe's ratio test and a RANSAC homography
    (perspective: a re-shoot turns the product), the best over the references and their mirror
    images. Another angle of the same product keeps only part of its features, so the count is
    judged against what the references reach among themselves (relative.py): ``floor`` inliers
    are what chance gives between unrelated products. A blurred, replaced or recoloured print, a
    missing part or another product loses the consistent matches.
    """

    name = "keypoints"
    what = "print and detail"

    class Config(RelativeConfig):
        max_side: int = Field(default=256, ge=64, le=2048, json_schema_extra=WORK, description="Product crops are resized to this long side.")
        features: int = Field(default=800, ge=50, le=10000, description="Most SIFT features per image.")
        ratio: float = Field(default=0.8, gt=0, lt=1, description="Lowe's ratio test threshold.")
        reproj: float = Field(default=8.0, gt=0, le=50, description="RANSAC reprojection threshold, px.")
        mirror: bool = Field(default=True, description="Also match against the mirrored references.")
        floor: float = Field(default=6.0, ge=0, le=1000, description="Inliers chance gives an unrelated product (scores 0).")
        default_baseline: float = Field(default=12.0, gt=0, le=10000, description="Inliers of a re-shoot, used with one reference.")
        min_span: float = Field(default=3.0, gt=0, description="Smallest baseline - floor gap, in inliers.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._sift = None
        self._matcher = cv2.BFMatcher(cv2.NORM_L2)
        # (reference, side, backdrop) -> (the reference, kept alive so its id stays its own; its inliers against itself there)
        self._own: dict[tuple[int, ...], tuple[Views, float]] = {}

    def setup(self) -> None:
        """Create the SIFT detector (once)."""
        self._sift = cv2.SIFT_create(nfeatures=self.config.features)

    def _detect_region(self, img: np.ndarray, m: np.ndarray):
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        grey = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(grey)  # lighting-robust
        kps, desc = self._sift.detectAndCompute(grey, m)
        return np.float32([k.pt for k in kps]).reshape(-1, 2), desc

    def features(self, image: np.ndarray, mask: np.ndarray | None):
        """[(points, descriptors)] of the product, with the product crop (``.region``) it was found in."""
        if self._sift is None:
            self.setup()
        img, m = product_region(image, mask, max_side=self.config.max_side)
        return Views([self._detect_region(img, m)], (img, m))

    def reference_features(self, image: np.ndarray, mask: np.ndarray | None):
        """The product's features, plus its mirror image's when ``mirror`` is on (a flipped product is the same)."""
        views = self.features(image, mask)
        if self.config.mirror:
            flip = None if mask is None else np.ascontiguousarray(mask[:, ::-1])
            views += self.features(np.ascontiguousarray(image[:, ::-1]), flip)
        return views

    def single_baseline(self, candidate, reference) -> float:
        """With one reference: the inliers the reference keeps against itself brought to the candidate's product
        size, at most ``default_baseline``. A plain product (a rubber duck) has few features, and fewer still when
        it is shown small: a faithful candidate of it can reach no more than that, so that is what it must reach."""
        img, m = reference.region
        cand_img, cand_mask = candidate.region
        side = max(cand_img.shape[:2])
        around = cand_img[cand_mask == 0]
        fill = np.median(around, axis=0) if len(around) else np.full(3, 128.0)
        key = (id(reference), side, *(int(v) // 16 for v in fill))
        if key not in self._own:
            s = min(1.0, side / max(img.shape[:2]))
            size = (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s)))
            small = cv2.resize(img, size, interpolation=cv2.INTER_AREA) if s < 1 else img
            small_mask = cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) if s < 1 else m
            # on the candidate's kind of backdrop: a plain product's features are mostly on its outline
            small = np.where(small_mask[..., None] > 0, small, fill.astype(np.uint8)).astype(np.uint8)
            self._own[key] = (reference, self.similarity([self._detect_region(small, small_mask)], reference))
        return float(min(self.config.default_baseline, self._own[key][1]))

    def _inliers(self, a, b) -> int:
        (pa, da), (pb, db) = a, b
        if da is None or db is None or len(pa) < 5 or len(pb) < 5:
            return 0
        pairs = self._matcher.knnMatch(da, db, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < self.config.ratio * p[1].distance]
        if len(good) < 5:
            return len(good) // 2
        src = np.float32([pa[m.queryIdx] for m in good])
        dst = np.float32([pb[m.trainIdx] for m in good])
        _, inl = cv2.findHomography(src, dst, cv2.RANSAC, self.config.reproj, maxIters=1000, confidence=0.99)
        return 0 if inl is None else int(inl.sum())

    def similarity(self, candidate, reference) -> float:
        """Verified inliers of the candidate's features against the reference (or its mirror), the best."""
        return float(max(self._inliers(candidate[0], view) for view in reference))
