"""The ``threshold`` filter: minimum scores, top-K, near-duplicate removal, optional diversity."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import Field

from ecomforge.stages import Filter, StageConfig
from ecomforge.types import Decision, Scored


def dhash(image: np.ndarray, size: int = 8) -> int:
    """Difference hash: ``size``² bits comparing neighbouring pixels of a tiny grey thumbnail."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    small = cv2.resize(grey, (size + 1, size), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    """Number of differing bits."""
    return bin(a ^ b).count("1")


class ThresholdFilter(Filter):
    """Keep candidates above the minimum scores, drop near-duplicates, then the top K by total."""

    name = "threshold"

    class Config(StageConfig):
        min_score: float = Field(default=0.0, ge=0, le=1, description="Minimum weighted total.")
        min_scores: dict[str, float] = Field(default_factory=dict, description="Per-scorer minimums, e.g. {color: 0.5}.")
        top_k: int | None = Field(default=None, ge=1, description="Keep at most this many per product (best totals).")
        dedupe: bool = Field(default=True, description="Drop near-duplicates (perceptual hash), keeping the better one.")
        dedupe_distance: int = Field(default=4, ge=0, le=64, description="Hashes within this many bits (of 64) are duplicates.")
        diversity: float = Field(default=0.0, ge=0, le=1, description="0 = rank by total only; up to 1 = prefer candidates unlike those already kept.")

    def select(self, scored: Sequence[Scored]) -> list[Decision]:
        """One decision per candidate, in input order, each with its reason."""
        cfg = self.config
        verdict: dict[str, Decision] = {}
        passing: list[Scored] = []
        for s in scored:
            if s.candidate.failed:
                verdict[s.id] = Decision(False, f"dropped: failed ({s.candidate.failed})")
                continue
            low = [f"{k} {s.scores[k]:.3f} < {v:g}" for k, v in cfg.min_scores.items() if s.scores.get(k, 0.0) < v]
            if low:
                verdict[s.id] = Decision(False, "dropped: " + ", ".join(low))
            elif s.total < cfg.min_score:
                verdict[s.id] = Decision(False, f"dropped: total {s.total:.3f} < {cfg.min_score:g}")
            else:
                passing.append(s)
        ranked = sorted(passing, key=lambda s: (-s.total, s.id))
        hashes = {s.id: dhash(s.candidate.image) for s in ranked} if cfg.dedupe or cfg.diversity else {}
        kept: list[Scored] = []
        pool = list(ranked)
        while pool:
            pick = pool[0] if not cfg.diversity or not kept else max(pool, key=lambda s: self._mmr(s, kept, hashes))
            pool.remove(pick)
            if cfg.dedupe:
                twin = next((k for k in kept if hamming(hashes[pick.id], hashes[k.id]) <= cfg.dedupe_distance), None)
                if twin is not None:
                    verdict[pick.id] = Decision(False, f"dropped: near-duplicate of {twin.id}")
                    continue
            if cfg.top_k is not None and len(kept) >= cfg.top_k:
                verdict[pick.id] = Decision(False, f"dropped: beyond top_k {cfg.top_k} (total {pick.total:.3f})")
                continue
            kept.append(pick)
            verdict[pick.id] = Decision(True, f"kept: total {pick.total:.3f}, rank {len(kept)}")
        return [verdict[s.id] for s in scored]

    def _mmr(self, s: Scored, kept: list[Scored], hashes: dict[str, int]) -> float:
        """Maximal marginal relevance: total minus similarity to the closest kept candidate."""
        sim = max(1.0 - hamming(hashes[s.id], hashes[k.id]) / 64.0 for k in kept)
        return (1 - self.config.diversity) * s.total - self.config.diversity * sim
