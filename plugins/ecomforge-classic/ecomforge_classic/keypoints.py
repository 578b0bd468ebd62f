"""The ``keypoints`` scorer: local-feature matches with geometric verification against the references."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import Field

from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, ScoringContext

from .regions import product_region, region_key


class KeypointsScorer(Scorer):
    """Print and shape fidelity: share of the reference's SIFT features found again, geometrically consistent.

    Calibration: matches pass Lowe's ratio test, then a RANSAC similarity transform; score =
    min(1, inliers / (saturation · min(n_reference, n_candidate))) × coverage, where coverage is
    the share of an N×N grid over the reference's features whose cells kept a verified match; the
    best over the references and their mirror images (a flipped product is the same product). Rotation, scale, lighting and
    background leave most features matchable; an altered print, a replaced patch, missing parts or a
    scrambled texture destroy the consistent matches there.
    """

    name = "keypoints"

    class Config(StageConfig):
        max_side: int = Field(default=384, ge=64, le=2048, description="Product crops are resized to this long side.")
        features: int = Field(default=600, ge=50, le=10000, description="Most SIFT features per image.")
        ratio: float = Field(default=0.75, gt=0, lt=1, description="Lowe's ratio test threshold.")
        reproj: float = Field(default=6.0, gt=0, le=50, description="RANSAC reprojection threshold, px.")
        saturation: float = Field(default=0.3, gt=0, le=1, description="Inlier share that already counts as a perfect match.")
        mirror: bool = Field(default=True, description="Also match against the mirrored references.")
        grid: int = Field(default=5, ge=1, le=16, description="Coverage grid (N×N cells over the reference's features).")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._cache: dict = {}
        self._sift = None

    def setup(self) -> None:
        """Create the SIFT detector (once)."""
        self._sift = cv2.SIFT_create(nfeatures=self.config.features)

    def _features(self, image: np.ndarray, mask: np.ndarray | None):
        if self._sift is None:
            self.setup()
        img, m = product_region(image, mask, max_side=self.config.max_side)
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        grey = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(grey)  # lighting-robust
        kps, desc = self._sift.detectAndCompute(grey, m)
        pts = np.float32([k.pt for k in kps]).reshape(-1, 2)
        return pts, desc, grey.shape[1]

    def _reference(self, ref, mask):
        key = region_key(ref.sha256, mask.data)
        if key not in self._cache:
            pts, desc, width = self._features(ref.image, mask.data)
            views = [(pts, desc)]
            if self.config.mirror and len(pts):
                flipped_img, flipped_mask = ref.image[:, ::-1], mask.data[:, ::-1]
                views.append(self._features(np.ascontiguousarray(flipped_img), np.ascontiguousarray(flipped_mask))[:2])
            self._cache[key] = views
        return self._cache[key]

    def _match(self, a, b) -> float:
        """Candidate features ``a`` against reference features ``b``: match share × spatial coverage."""
        (pa, da), (pb, db) = a, b
        if da is None or db is None or len(pa) < 4 or len(pb) < 4:
            return 0.0
        matcher = cv2.BFMatcher(cv2.NORM_L2)
        pairs = matcher.knnMatch(da, db, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < self.config.ratio * p[1].distance]
        if len(good) < 4:
            return 0.0
        src = np.float32([pa[m.queryIdx] for m in good])
        dst = np.float32([pb[m.trainIdx] for m in good])
        _, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=self.config.reproj,
                                             maxIters=2000, confidence=0.99)
        if inl is None or int(inl.sum()) < 4:
            return 0.0
        inliers = int(inl.sum())
        share = min(1.0, inliers / (self.config.saturation * min(len(pa), len(pb))))
        return share * self._coverage(pb, dst[inl.ravel() > 0])

    def _coverage(self, ref_pts: np.ndarray, hit_pts: np.ndarray) -> float:
        """Share of the reference's feature-bearing grid cells that kept at least one verified match.

        A replaced patch, a missing part or a warped print leaves whole cells without a consistent
        match even when the rest of the product matches perfectly.
        """
        n = self.config.grid
        lo, hi = ref_pts.min(axis=0), ref_pts.max(axis=0) + 1e-6
        def cells(pts):
            ij = np.clip(((pts - lo) / (hi - lo) * n).astype(int), 0, n - 1)
            return ij[:, 1] * n + ij[:, 0]
        counts = np.bincount(cells(ref_pts), minlength=n * n)
        bearing = counts >= 2
        hit = np.zeros(n * n, bool)
        hit[cells(hit_pts)] = True
        return float((hit & bearing).sum() / max(1, bearing.sum()))

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[float]:
        """The best verified match over the references (and their mirrors), per candidate."""
        self.ensure_setup()
        refs = [self._reference(r, m) for r, m in zip(context.references, context.masks)]
        out = []
        for cand in candidates:
            pts, desc, _ = self._features(cand.image, cand.mask)
            best = max((self._match((pts, desc), view) for views in refs for view in views), default=0.0)
            out.append(float(best))
        return out
