"""Where a mask's outline has nothing behind it: a stretch along which the image shows no boundary.

A true cut-out ends where the product does, so across its outline the image changes. A mask that runs
through one continuous surface instead (cloth or ground taken with the product, a part painted over with
the scene) has a stretch of outline with the same colour on both sides. The ``parts`` scorer uses it for a
missing part, the ``classic`` masker's confidence for a mask that took in what touches the product.
"""
from __future__ import annotations

import cv2
import numpy as np

from ecomforge.imaging.masks import dilate, erode


def edgeless_run(lab: np.ndarray, mask: np.ndarray, contrast: float, depth: int = 4, window: int = 4) -> float:
    """Longest run of the mask's outline, as a share of it, along which the image shows no boundary.

    Where a part went missing and the scene was painted over it, the mask still runs where the
    product's boundary was, but nothing in the image ends there. At each outline point the mean
    colour of a band ``depth`` px deep just inside the mask is compared with the band just outside
    it, both over a (2 ``window`` + 1) px box: a boundary is a CIELAB step of at least ``contrast``.
    Averaging over the bands makes a textured scene (grain, carpet, foliage) no boundary, which a
    pixel gradient would take for one. The frame's border is skipped (a product cut by the frame has
    no boundary there, and framing judges that).
    """
    m = mask > 127
    inner = (m & ~(erode(mask, depth) > 127)).astype(np.float32)
    outer = ((dilate(mask, depth) > 127) & ~m).astype(np.float32)
    values = lab.astype(np.float32)
    box = (2 * window + 1,) * 2

    def band_mean(band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        count = cv2.boxFilter(band, -1, box, normalize=False)
        total = cv2.boxFilter(values * band[..., None], -1, box, normalize=False)
        return total / np.maximum(count, 1e-6)[..., None], count

    (mean_in, n_in), (mean_out, n_out) = band_mean(inner), band_mean(outer)
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return 0.0
    pts = max(contours, key=len).reshape(-1, 2)
    x, y = pts[:, 0], pts[:, 1]
    h, w = mask.shape
    judged = (x > 1) & (y > 1) & (x < w - 2) & (y < h - 2) & (n_in[y, x] > 0) & (n_out[y, x] > 0)
    step = np.sqrt(((mean_in[y, x] - mean_out[y, x]) ** 2).sum(axis=1))
    boundary = (step >= contrast) | ~judged
    # A boundary shorter than 2 % of the outline is noise of the scene's texture, not the product's edge.
    k = max(3, int(0.02 * len(boundary)))
    wrapped = np.concatenate([boundary[-k:], boundary, boundary[:k]]).astype(np.uint8)[None, :]
    opened = cv2.morphologyEx(wrapped, cv2.MORPH_OPEN, np.ones((1, k), np.uint8))[0, k:-k] > 0
    boundary = opened | ~judged  # the frame's border stays what it is: not judged, so no missing part
    if not boundary.any():
        return 1.0
    flat = np.roll(~boundary, -int(np.argmax(boundary)))  # start on a boundary, so a run never wraps around
    edges = np.flatnonzero(~flat)
    gaps = np.diff(np.append(edges, len(flat))) - 1  # flat points between consecutive boundary points
    return float(gaps.max()) / len(flat)
