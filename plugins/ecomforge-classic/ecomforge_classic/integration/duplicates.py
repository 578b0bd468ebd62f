"""The ``duplicates`` scorer: a second, smaller (cropped, mirrored) copy of the product elsewhere in the scene."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import Field

from ecomforge.pathspec import WORK
from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, Score, ScoringContext

from .colours import ProductColours, colour_histogram
from .common import ReferenceCache, make_view, product_size, ramp, score_each, signed_distance, verdict


class DuplicatesConfig(StageConfig):
    """Search and calibration of the copy detector (see docs/scorers.md)."""

    side: int = Field(160, ge=64, le=1024, json_schema_extra=WORK, description="Long side (px) of the working copy searched for copies.")
    scales: tuple[float, ...] = Field((0.25, 0.3, 0.36, 0.43, 0.52, 0.62, 0.75, 0.9), min_length=1, max_length=16,
                                      description="Sizes of the copies looked for, relative to the product.")
    clear: float = Field(0.38, ge=0, le=1, description="Evidence (silhouette correlation × colour match) at or below "
                         "which the scene holds no copy (score 1).")
    certain: float = Field(0.6, ge=0, le=1, description="Evidence at which a copy is certain (score 0).")


@dataclass(frozen=True)
class Copy:
    """The best match of the product elsewhere in the scene."""

    correlation: float  # evidence: likeness contrast of the outline × colour match
    scale: float
    mirrored: bool
    where: tuple[float, float]  # centre of the match as fractions of (width, height)


def best_copy(image: np.ndarray, mask: np.ndarray, cfg: DuplicatesConfig) -> Copy | None:
    """The scene's strongest product-shaped, product-coloured blob; None without a usable product."""
    view = make_view(image, mask, cfg.side)
    m = view.mask
    if m.sum() < 48 or m.mean() > 0.8:
        return None
    h, w = m.shape
    dist = signed_distance(m)
    own = dist <= max(2.0, 0.05 * product_size(m))  # the product, its soft edge and its contact shadow
    colours = ProductColours(colour_histogram(view.lab, dist < -1.0 if (dist < -1.0).any() else m))
    like = colours.likeness(view, ~own).astype(np.float32)
    like[own] = 0.0
    ys, xs = np.nonzero(m)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    # The silhouette with a margin: a copy is product inside its outline and scene around it.
    margin = max(2, int(0.12 * max(y1 - y0, x1 - x0)))
    sil = np.pad(m[y0:y1, x0:x1].astype(np.float32), margin)
    prod = np.pad(view.lab[y0:y1, x0:x1], ((margin, margin), (margin, margin), (0, 0)))
    pad = int(0.3 * max(sil.shape))  # copies cut by the frame: the outside counts as scene
    search = cv2.copyMakeBorder(like, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    lab = cv2.copyMakeBorder(view.lab, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    integral = cv2.integral(search, sdepth=cv2.CV_64F).astype(np.float32)  # window sums in O(1)
    best = Copy(0.0, 0.0, False, (0.0, 0.0))
    for s in cfg.scales:
        tw, th = round(sil.shape[1] * s), round(sil.shape[0] * s)
        if min(tw, th) < 8 or tw >= search.shape[1] or th >= search.shape[0]:
            continue
        t = cv2.resize(sil, (tw, th), interpolation=cv2.INTER_AREA)
        tl = cv2.resize(prod, (tw, th), interpolation=cv2.INTER_AREA)
        for mirrored in (False, True):
            tt, ll = (t[:, ::-1].copy(), tl[:, ::-1]) if mirrored else (t, tl)
            # Mean product-likeness inside the outline minus around it: a filled, outlined blob.
            inner_sum = cv2.matchTemplate(search, tt, cv2.TM_CCORR)
            box = integral[th:, tw:] - integral[:-th, tw:] - integral[th:, :-tw] + integral[:-th, :-tw]
            area_in, area_out = max(float(tt.sum()), 1e-6), max(float(tt.size - tt.sum()), 1e-6)
            corr = inner_sum / area_in - (box - inner_sum) / area_out
            i = int(np.argmax(corr))
            yy, xx = divmod(i, corr.shape[1])
            cx, cy = (xx + tw / 2 - pad) / w, (yy + th / 2 - pad) / h
            if not (0 <= cx < 1 and 0 <= cy < 1):
                continue
            inside = tt >= 0.5
            window = lab[yy:yy + th, xx:xx + tw]
            delta = float(np.median(np.linalg.norm(window[inside] - ll[inside], axis=1))) if inside.any() else 99.0
            v = float(corr.flat[i]) * ramp(delta, 12.0, 35.0)  # the blob must also look like the product
            if v > best.correlation:
                best = Copy(v, s, mirrored, (float(cx), float(cy)))
    return best


class DuplicatesScorer(Scorer):
    """Duplicates: a product-shaped, product-coloured blob elsewhere in the scene (smaller, mirrored, cut).

    The candidate's own product gives a colour model (its Lab histogram against the scene's) and a
    silhouette. At several sizes and both orientations, the silhouette is slid over the scene's
    product-likeness map: evidence = mean likeness inside the outline − mean likeness in a margin
    around it, times how close the window's colours are to the product's. Windows on the product
    itself are blanked. A reference that already shows two of the product (a pair of shoes) raises
    the bar to its own best match.
    """

    name = "duplicates"
    Config = DuplicatesConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._refs = ReferenceCache()

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[Score]:
        """One score per candidate from its best copy's correlation, above the references' own."""
        cfg: DuplicatesConfig = self.config
        own = self._refs.get(context, ("duplicates", cfg), lambda img, m: best_copy(img, m, cfg))
        clear = max([cfg.clear, *(min(cfg.certain - 0.05, c.correlation + 0.05) for c in own if c)])

        def judge(cand: Candidate, mask: np.ndarray | None) -> Score:
            found = best_copy(cand.image, mask, cfg) if mask is not None else None
            if found is None:
                return Score(1.0)
            value = ramp(found.correlation, clear, cfg.certain)
            x, y = found.where
            place = f"{'upper' if y < 0.5 else 'lower'} {'left' if x < 0.5 else 'right'}"
            kind = "mirrored copy" if found.mirrored else "copy"
            return verdict(value, f"a second, {found.scale:.0%}-size {kind} of the product in the {place} "
                                  f"(evidence {found.correlation:.2f})")

        return score_each(candidates, context, judge)
