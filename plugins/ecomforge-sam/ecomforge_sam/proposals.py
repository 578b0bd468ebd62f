"""Region proposals to score against a text: SAM's automatic masks, or a grid of square windows."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .embeddings import LRU, SamSession

PROPOSALS = LRU(max_items=4)
"""Automatic masks do not depend on the text: (model, reference, generator settings) -> proposals."""


@dataclass(frozen=True, eq=False)
class Proposal:
    """One candidate product region: a boolean mask and SAM's own quality estimate."""

    mask: np.ndarray  # H×W bool
    predicted_iou: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends)

    @property
    def area(self) -> float:
        """Fraction of the image covered."""
        return float(self.mask.mean())


@dataclass(frozen=True)
class AutoSettings:
    """The automatic mask generator's options (also the proposal cache key)."""

    points_per_side: int
    points_per_batch: int
    pred_iou_thresh: float
    stability_score_thresh: float
    crop_n_layers: int
    box_nms_thresh: float


def automatic_proposals(session: SamSession, image: np.ndarray, sha256: str, settings: AutoSettings,
                        *, min_area: float, max_area: float, limit: int) -> list[Proposal]:
    """SAM's automatic masks for a reference, cached; filtered by area, best predicted IoU first."""
    key = (session.sam.model_id, session.sam.device, sha256, image.shape, settings)

    def generate() -> list[Proposal]:
        import torch
        from segment_anything import SamAutomaticMaskGenerator

        generator = SamAutomaticMaskGenerator(
            session.sam.model, points_per_side=settings.points_per_side,
            points_per_batch=settings.points_per_batch, pred_iou_thresh=settings.pred_iou_thresh,
            stability_score_thresh=settings.stability_score_thresh, crop_n_layers=settings.crop_n_layers,
            box_nms_thresh=settings.box_nms_thresh, output_mode="binary_mask")
        # The generator's own predictor would re-encode the image; ours restores the cached embedding.
        generator.predictor = session.predictor
        with session.lock, torch.inference_mode():
            session.predictor.reference_sha256 = sha256
            session.predictor.reference_shape = image.shape
            records = generator.generate(image)
        out = []
        for rec in records:
            x, y, w, h = (int(round(v)) for v in rec["bbox"])
            out.append(Proposal(rec["segmentation"].astype(bool), float(rec["predicted_iou"]), (x, y, x + w, y + h)))
        return out

    found = PROPOSALS.get(key, generate)
    kept = [p for p in found if min_area <= p.area <= max_area]
    kept.sort(key=lambda p: -p.predicted_iou)
    return kept[:limit]


def square_around(box: tuple[float, float, float, float], padding: float) -> tuple[int, int, int, int]:
    """A square (x0, y0, x1, y1) centred on ``box``, its side the box's longer side plus ``padding``."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * padding)
    side = max(1.0, side)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    sx0, sy0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    n = int(round(side))
    return sx0, sy0, sx0 + n, sy0 + n


def square_crop(image: np.ndarray, square: tuple[int, int, int, int], fill: int,
                keep: np.ndarray | None = None) -> np.ndarray:
    """Cut a square from ``image`` (parts outside it become ``fill``); pixels where ``keep`` is False too.

    CLIP's preprocessing centre-crops to a square, so an already-square crop loses nothing.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = square
    canvas = np.full((y1 - y0, x1 - x0, 3), fill, np.uint8)
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if ix1 <= ix0 or iy1 <= iy0:
        return canvas
    patch = image[iy0:iy1, ix0:ix1]
    if keep is not None:
        patch = np.where(keep[iy0:iy1, ix0:ix1, None], patch, np.uint8(fill))
    canvas[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = patch
    return canvas


def masked_crop(image: np.ndarray, mask: np.ndarray, *, padding: float, fill: int) -> np.ndarray:
    """The product region on a plain ``fill`` background, in a square around the mask's box."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.full((16, 16, 3), fill, np.uint8)
    box = (float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1)
    return square_crop(image, square_around(box, padding), fill, keep=mask.astype(bool))


def windows(width: int, height: int, scales: tuple[float, ...], stride: float) -> list[tuple[int, int, int, int]]:
    """Square windows (x0, y0, x1, y1) covering the image at each scale of its shorter side."""
    out: list[tuple[int, int, int, int]] = []
    short = min(width, height)
    for scale in scales:
        side = max(8, int(round(short * scale)))
        step = max(1, int(round(side * stride)))
        xs = _positions(width, side, step)
        ys = _positions(height, side, step)
        out.extend((x, y, x + side, y + side) for y in ys for x in xs)
    return list(dict.fromkeys(out))  # scale 1.0 and rounding can repeat windows


def _positions(length: int, side: int, step: int) -> list[int]:
    """Window starts along one axis; the last window is flush with the far edge."""
    if side >= length:
        return [(length - side) // 2]
    starts = list(range(0, length - side + 1, step))
    if starts[-1] != length - side:
        starts.append(length - side)
    return starts


def touches(a: np.ndarray, b: np.ndarray, reach: int = 2) -> bool:
    """Whether two boolean masks overlap or come within ``reach`` px of each other."""
    from ecomforge.imaging.masks import dilate

    grown = dilate(a.astype(np.uint8) * 255, reach) > 0
    return bool(np.logical_and(grown, b).any())


def union_box(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """The smallest box holding every box."""
    arr = np.asarray(boxes)
    return int(arr[:, 0].min()), int(arr[:, 1].min()), int(arr[:, 2].max()), int(arr[:, 3].max())


def overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two boxes share any area."""
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])
