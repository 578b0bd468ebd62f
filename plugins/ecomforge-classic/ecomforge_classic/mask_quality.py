"""How far to trust a ``classic`` mask: cues that predict whether it is the product, and a score from them.

The background model (a plane fitted to the border band) only holds for plain backgrounds. On a
casual photo the same method returns the ground, a person or a tree line as "product", so the
score must come from what such failures look like, not from how strongly the region stands out.
Calibrated on hand-labelled DreamBench photos (tests/data/classic_mask_labels.json).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .outline import edgeless_run

# The colour step (8-bit CIELAB) across the outline below which it has nothing behind it. A product shot on a
# backdrop steps by far more all round; cloth or ground cut through by the mask does not.
GAP_CONTRAST = 10.0


@dataclass(frozen=True)
class MaskCues:
    """Measurements of one mask at working resolution (all unitless)."""

    border: float  # fraction of the image's outer frame (1 px ring) the mask covers
    noise: float  # 90th percentile Lab residual of the background model on the border band
    separation: float  # median background distance inside the mask / 90th percentile outside it
    clutter: float  # fraction of the area outside the mask that differs from the background model
    solidity: float  # mask area / convex hull area
    area: float  # mask area / image area
    parts: int  # connected components of the mask
    edge: float  # share of the outline that lies on a visible edge of the photo
    roughness: float  # outline length / its convex hull's outline length (1 = convex)
    gap: float = 0.0  # longest stretch of the outline with the same colour on both sides (share of the outline)

    def as_dict(self) -> dict[str, float]:
        """The cues rounded, for logs and the label file."""
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def measure(rgb: np.ndarray, mask: np.ndarray, distance: np.ndarray, noise: float) -> MaskCues:
    """Cues of a {0,255} mask against the per-pixel background distance it was cut from (same size)."""
    inside = mask > 0
    area = float(inside.mean())
    frame = np.concatenate([inside[0], inside[-1], inside[1:-1, 0], inside[1:-1, -1]])
    outside = ~inside
    inner = np.median(distance[inside]) if inside.any() else 0.0
    outer = np.percentile(distance[outside], 90) if outside.any() else float("inf")
    clutter = float((distance[outside] > max(2.0 * noise, 12.0)).mean()) if outside.any() else 1.0
    count, _ = cv2.connectedComponents(mask, connectivity=8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours)) if contours else None
    hull_area = cv2.contourArea(hull) if hull is not None else 0.0
    solidity = float(np.count_nonzero(inside)) / hull_area if hull_area > 0 else 0.0
    hull_len = cv2.arcLength(hull, True) if hull is not None else 0.0
    outline = sum(cv2.arcLength(c, True) for c in contours)
    return MaskCues(border=float(frame.mean()), noise=float(noise), separation=float(inner / max(outer, 1e-6)),
                    clutter=clutter, solidity=min(1.0, solidity), area=area, parts=max(0, count - 1),
                    edge=_edge_support(rgb, mask), roughness=outline / hull_len if hull_len > 0 else 0.0,
                    gap=edgeless_run(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB), mask, GAP_CONTRAST))


def _edge_support(rgb: np.ndarray, mask: np.ndarray) -> float:
    """Share of outline pixels within 2 px of a clear photo edge (Lab gradient above the image's 80th percentile)."""
    lab = cv2.cvtColor(cv2.GaussianBlur(rgb, (3, 3), 0).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    grad = np.zeros(rgb.shape[:2], np.float32)
    for ch in range(3):
        gx, gy = cv2.Sobel(lab[..., ch], cv2.CV_32F, 1, 0), cv2.Sobel(lab[..., ch], cv2.CV_32F, 0, 1)
        grad = np.maximum(grad, np.hypot(gx, gy))
    strong = grad > max(float(np.percentile(grad, 80)), 8.0)
    near = cv2.dilate(strong.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    ring = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    ring[0], ring[-1], ring[:, 0], ring[:, -1] = False, False, False, False  # the frame is not an outline
    return float(near[ring].mean()) if ring.any() else 0.0


def _ramp(x: float, zero: float, one: float) -> float:
    """0 at ``zero``, 1 at ``one``, linear between (either direction)."""
    return float(np.clip((x - zero) / (one - zero), 0.0, 1.0))


def confidence(c: MaskCues) -> tuple[float, str]:
    """(score in [0, 1], the weakest cue in words): the product of one factor per failure kind.

    Each factor is 1 where a clean packshot mask lies and falls to 0 where the failure it
    stands for is unmistakable; a product because any one failure makes the mask wrong.
    """
    factors = [
        # Ground, walls, people and trees run off the frame; a packshot product rarely does.
        (_ramp(c.border, 0.20, 0.0), f"the mask touches {c.border:.0%} of the image frame (background or "
                                     "a cropped subject taken for the product)"),
        # A busy scene leaves regions that differ from the border as much as the product does.
        (_ramp(c.clutter, 0.01, 0.0), f"{c.clutter:.1%} of the area outside the mask differs from the "
                                      "background too (a busy scene, not a plain backdrop)"),
        (_ramp(c.separation, 1.0, 2.5), f"the region stands out only {c.separation:.1f}x the background's own "
                                        f"variation (residual {c.noise:.1f})"),
        (_ramp(c.edge, 0.80, 0.95), f"only {c.edge:.0%} of the outline follows an edge in the photo"),
        (_ramp(c.solidity, 0.30, 0.70), f"the mask fills only {c.solidity:.0%} of its convex hull (fragments)"),
        (_ramp(c.roughness, 3.0, 1.5), f"ragged outline ({c.roughness:.1f}x its convex hull's length)"),
        # Cloth, ground or an object touching the product, taken with it: the mask ends inside one surface, and a
        # stretch of its outline has the same colour on both sides (right masks: at most 6 % of the outline).
        (_ramp(c.gap, 0.13, 0.07), f"{c.gap:.0%} of the outline runs through one unbroken surface (cloth, "
                                   "ground or an object touching the product taken with it)"),
        (1.0 / max(1, c.parts), f"{c.parts} separate parts"),
    ]
    score = float(np.prod([f for f, _ in factors]))
    weakest = min(factors, key=lambda fr: fr[0])
    return score, (weakest[1] if weakest[0] < 0.9 else "clean outline on a plain background")
