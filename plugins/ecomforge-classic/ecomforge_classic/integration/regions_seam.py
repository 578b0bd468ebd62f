"""An inpainted region around the product: the scene near it has another grain/softness and colour than further out.

Inpainting regenerates a padded box, ellipse or blob around the product. The regenerated pixels
went through the model's own image path: the scene's fine texture is lost (down/up-sampling) and
replaced by the sampler's grain, and exposure and white balance drift. So, compared with the scene
well away from the product, the ring hugging the product has a *flatter spectrum* (more energy at the
finest scale relative to the next one: white grain over a softened picture) *and* another colour.
A clean paste keeps the photo's own pixels all around: its near ring and its far scene share the
camera's spectrum, and any colour difference is the scene's own layout.

The evidence is the grain excess times the colour difference, the colour discounted by how busy the
scene is (a textured photo differs from place to place anyway); in a plain scene the grain excess
alone also counts (discounted by the square of the texture, so it fades out on photos).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .common import make_view, signed_distance

NEAR = (0.04, 0.12)  # the ring hugging the product, in units of the product's long extent (inside any inpaint pad)
FAR = 0.45  # beyond this distance (same units) the scene is taken as untouched


@dataclass(frozen=True)
class RegionEvidence:
    """How the ring around the product differs from the scene further out."""

    flatness: float  # median spectral flatness (log fine − log mid energy) near minus far
    colour: float  # ΔE between the smoothed near ring and far scene (medians)
    busy: float  # the scene's median band-pass colour energy (ΔE): texture that masks a colour difference
    evidence: float  # combined: flatness excess × colour / texture discount


def region_evidence(image: np.ndarray, mask: np.ndarray | None, side: int, flat_margin: float = 0.05,
                    flat_unit: float = 0.2, colour_unit: float = 10.0, busy_unit: float = 0.3) -> RegionEvidence | None:
    """Evidence that a region around the product was regenerated; None when it cannot be judged."""
    view = make_view(image, mask, side)
    m = view.mask
    area = int(m.sum())
    if area < 64 or area > 0.8 * m.size:
        return None
    gray = cv2.cvtColor(view.rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    fine = np.log(np.abs(gray - cv2.GaussianBlur(gray, (0, 0), 0.7)) + 0.5)
    mid = np.log(np.abs(cv2.GaussianBlur(gray, (0, 0), 1.0) - cv2.GaussianBlur(gray, (0, 0), 2.5)) + 0.5)
    flat = fine - mid
    lab = view.lab
    smooth = cv2.GaussianBlur(lab, (0, 0), 2.0)
    busy_map = np.linalg.norm(cv2.GaussianBlur(lab, (0, 0), 1.0) - cv2.GaussianBlur(lab, (0, 0), 4.0), axis=2)
    dist = signed_distance(m)  # outside the product: > 0
    ys, xs = np.nonzero(m)
    ext = float(max(np.ptp(ys), np.ptp(xs)) + 1)
    t = dist / ext
    near = (t > NEAR[0]) & (t <= NEAR[1])
    far = t > FAR
    if near.sum() < 40 or far.sum() < 40:
        return None
    flatness = float(np.median(flat[near]) - np.median(flat[far]))
    colour = float(np.linalg.norm(np.median(smooth[near], axis=0) - np.median(smooth[far], axis=0)))
    busy = float(np.median(busy_map[near | far]))
    excess = max(flatness - flat_margin, 0.0) / flat_unit
    texture = max(1.0, busy / busy_unit)
    # Grain and colour together, the colour discounted by texture; or, in a plain scene, the grain alone
    # (a busy photo's own texture varies its fine-scale spectrum from place to place, so it is discounted twice).
    ev = max(excess * colour / colour_unit / texture, excess / texture**2)
    return RegionEvidence(flatness, colour, busy, float(ev))
