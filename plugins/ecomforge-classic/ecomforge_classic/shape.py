"""The ``shape`` scorer: the product's silhouette against the closest of the reference silhouettes."""
from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from ecomforge.imaging.masks import bbox, dilate
from ecomforge.pathspec import WORK
from ecomforge.types import Score

from .regions import product_region
from .relative import RelativeConfig, RelativeScorer


def _smooth_closed(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a closed curve's coordinate (the ends wrap round)."""
    r = int(3 * sigma) + 1
    kernel = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return np.convolve(np.pad(values, r, mode="wrap"), kernel / kernel.sum(), mode="valid")


def concave_turning(contour: np.ndarray, points: int = 256, sigma: float = 10.0) -> float:
    """Total inward turn (radians) of an outline smoothed at a coarse scale: 0 for a convex shape.

    The outline is resampled to ``points`` by arc length and smoothed by ``sigma`` samples, so a
    mask's jagged pixels and small notches vanish and only bends at the product's scale remain. A
    turned product keeps its concavities; a bent (warped) one gains waves along every side.
    """
    c = contour.reshape(-1, 2).astype(np.float64)
    if len(c) < 8:
        return 0.0
    closed = np.vstack([c, c[:1]])
    arc = np.r_[0.0, np.cumsum(np.hypot(*np.diff(closed, axis=0).T))]
    t = np.linspace(0.0, arc[-1], points, endpoint=False)
    x = _smooth_closed(np.interp(t, arc, closed[:, 0]), sigma)
    y = _smooth_closed(np.interp(t, arc, closed[:, 1]), sigma)
    heading = np.arctan2(np.roll(y, -1) - y, np.roll(x, -1) - x)
    turn = np.angle(np.exp(1j * (np.roll(heading, -1) - heading)))
    turn = turn if turn.sum() >= 0 else -turn  # either orientation: outward turns sum to +2 pi
    return float(-turn[turn < 0].sum())


def silhouette(mask: np.ndarray) -> np.ndarray:
    """Rotation- and scale-free descriptors of a mask's outline.

    [log elongation of the min-area rectangle, solidity (area / convex hull), log Hu moments 1-2,
    outline roughness (perimeter / hull perimeter), concave turning (radians, concave_turning())].
    A viewpoint change moves them a little; a squashed, warped or truncated product moves them far.
    """
    contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.full(6, np.nan)
    c = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(c)
    hull = cv2.convexHull(c)
    (_, _), (rw, rh), _ = cv2.minAreaRect(c)
    hu = cv2.HuMoments(cv2.moments(c)).ravel()[:2]
    return np.array([np.log(max(rw, rh, 1) / max(min(rw, rh), 1)),
                     area / max(cv2.contourArea(hull), 1.0),
                     *(-np.sign(hu) * np.log10(np.abs(hu) + 1e-12)),
                     cv2.arcLength(c, True) / max(cv2.arcLength(hull, True), 1.0), concave_turning(c)])


def straight_edges(image: np.ndarray, mask: np.ndarray, side: int = 192) -> float:
    """Sum of the squared lengths of the long straight edges on the product, in product sizes.

    Line segments (OpenCV's LSD) at ``side`` px whose midpoint lies on the product (mask dilated by
    a few px, so its outline counts) and that are longer than 12 % of the product's size. A turn or
    a perspective change keeps a straight edge straight; a bent (warped) or melted product breaks it
    into short pieces. Squared, so one long edge outweighs the pieces it breaks into (a bend leaves
    diagonal runs that are long enough to count, but far shorter).
    """
    img, m = product_region(image, dilate(mask, 3), max_side=4096)
    s = side / max(img.shape[:2])
    size = (max(8, round(img.shape[1] * s)), max(8, round(img.shape[0] * s)))
    grey = cv2.cvtColor(cv2.resize(img, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR),
                        cv2.COLOR_RGB2GRAY)
    m = cv2.resize(m, size, interpolation=cv2.INTER_NEAREST)
    lines = cv2.createLineSegmentDetector().detect(grey)[0]  # one per call: cheap, and no state shared by threads
    if lines is None:
        return 0.0
    seg = lines.reshape(-1, 4)
    length = np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1])
    mx = np.clip(((seg[:, 0] + seg[:, 2]) / 2).astype(int), 0, size[0] - 1)
    my = np.clip(((seg[:, 1] + seg[:, 3]) / 2).astype(int), 0, size[1] - 1)
    keep = (m[my, mx] > 0) & (length > 0.12 * max(size))
    return float(((length[keep] / max(size)) ** 2).sum())


def symmetry(mask: np.ndarray, side: int = 128) -> float:
    """How mirror-symmetric an outline is: the best IoU of the mask with its left-right mirror image.

    Tried at tilts of up to 8 degrees and shifts of a few px, so a leaning or off-centre product still
    counts. A turned product that is round about its axis (a can, a vase, a bowl) stays symmetric
    from every side; a bent, sagging or twisted one does not.
    """
    x0, y0, x1, y1 = bbox(mask) or (0, 0, mask.shape[1], mask.shape[0])
    m = mask[y0:y1, x0:x1]
    s = side / max(m.shape)
    m = cv2.resize(m, (max(1, round(m.shape[1] * s)), max(1, round(m.shape[0] * s))),
                   interpolation=cv2.INTER_NEAREST) > 127
    if not m.any():
        return 0.0
    h, w = m.shape
    best = 0.0
    for angle in (-8, -4, 0, 4, 8):
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        r = cv2.warpAffine(m.astype(np.uint8), turn, (w, h), flags=cv2.INTER_NEAREST) > 0
        mirror = r[:, ::-1]
        for dx in range(-6, 7, 2):
            shifted = np.roll(mirror, dx, axis=1)
            best = max(best, float((r & shifted).sum()) / max(1, int((r | shifted).sum())))
    return best


class ShapeScorer(RelativeScorer):
    """Shape identity: silhouette distance to the closest reference mask, relative to the references' spread.

    Raw similarity = exp(-sum_i w_i |d_i| - lines_weight x lost) over the silhouette descriptors
    (silhouette(); a gain in concave turning only), with ``lost`` the log ratio of the reference's long
    straight edges to the candidate's (straight_edges(); gaining edges costs nothing), the best over
    the references (mirror images have the same descriptors). A product seen from a new
    angle is compared with the reference whose outline is closest, and the result is mapped by
    relative.py against how close the references' outlines are to each other.
    """

    name = "shape"
    what = "product outline"

    class Config(RelativeConfig):
        max_side: int = Field(default=128, ge=32, le=1024, json_schema_extra=WORK, description="Masks are resized to this long side.")
        weights: tuple[float, float, float, float, float, float] = Field(
            default=(2.0, 4.0, 1.0, 0.5, 3.0, 0.5),
            description="Weights of elongation, solidity, Hu 1, Hu 2, roughness and concave-turning differences.")
        floor: float = Field(default=0.15, ge=0, lt=1, description="Raw similarity an unrelated outline gets (scores 0).")
        default_baseline: float = Field(default=0.6, gt=0, le=1, description="Raw similarity of a re-shoot, used with one reference.")
        min_span: float = Field(default=0.2, gt=0, description="Smallest baseline - floor gap.")
        lines_weight: float = Field(default=1.0, ge=0, le=10, description="Weight of the loss of long straight edges "
                                    "(log ratio to the reference's; gaining edges costs nothing).")
        symmetry_span: float = Field(default=0.15, ge=0, le=1, description="Mirror symmetry (IoU) lost below the least "
                                     "symmetric reference that scores 0 (0: symmetry not judged).")

    def features(self, image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """The silhouette descriptors of the product mask (the whole frame when there is none)."""
        _, m = product_region(image, mask, max_side=4096)
        # Every outline at one scale: roughness and bends depend on size, and a small product shown large
        # (or a large one small) is the same shape. Upscaling goes through a blurred edge, not pixel blocks.
        s = self.config.max_side / max(m.shape)
        size = (max(1, round(m.shape[1] * s)), max(1, round(m.shape[0] * s)))
        m = cv2.resize(m, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        whole = mask if mask is not None and mask.any() else np.full(image.shape[:2], 255, np.uint8)
        edges = straight_edges(image, whole) if self.config.lines_weight > 0 else 0.0
        sym = symmetry(m) if self.config.symmetry_span > 0 else 1.0
        return np.r_[silhouette(np.pad(np.where(m > 127, 255, 0).astype(np.uint8), 2)), edges, sym]

    def similarity(self, candidate: np.ndarray, reference: np.ndarray) -> float:
        """exp(-(weighted L1 distance of two silhouettes + lines_weight x the straight edges lost))."""
        d = np.abs(candidate[:6] - reference[:6])
        d[5] = max(0.0, candidate[5] - reference[5])  # bending only counts one way: a turn can hide a concavity
        if not np.all(np.isfinite(d)):
            return 0.0
        lost = max(0.0, float(np.log((reference[6] + 0.5) / (candidate[6] + 0.5))))  # straight edges broken up
        return float(np.exp(-np.dot(self.config.weights, d) - self.config.lines_weight * lost))

    def adjust(self, score: Score, candidate: np.ndarray, refs: list) -> Score:
        """The lower of the outline score and the symmetry score: a product whose every reference is more
        mirror-symmetric than it has been bent, sagged or twisted (a turn keeps a round product symmetric)."""
        span = self.config.symmetry_span
        if span <= 0 or not refs:
            return score
        least = min(float(r[7]) for r in refs)
        lost = least - float(candidate[7])
        value = float(np.clip(1.0 - lost / span, 0.0, 1.0))
        if value >= score.value:
            return score
        return Score(value, f"outline is less mirror-symmetric than every reference ({candidate[7]:.2f} vs "
                            f"{least:.2f}): bent or twisted" if value < 0.5 else "")
