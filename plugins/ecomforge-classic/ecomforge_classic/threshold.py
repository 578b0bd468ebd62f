"""The ``threshold`` filter: minimum scores, top-K, near-duplicate removal, optional diversity."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def lab_thumbnail(image: np.ndarray, size: int = 8) -> np.ndarray:
    """A ``size``×``size`` CIELAB thumbnail (float32, L in 0–100): the colour layout a person sees."""
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    small = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return cv2.cvtColor(small, cv2.COLOR_RGB2LAB)


def color_distance(a: np.ndarray, b: np.ndarray) -> float:
    """90th-percentile CIE76 ΔE between two Lab thumbnails' cells.

    A high percentile rather than the mean: a background that changed colour over a fifth of the
    frame is a different picture to a person even though most cells agree.
    """
    return float(np.percentile(np.linalg.norm(a - b, axis=2), 90))


@dataclass(frozen=True)
class Look:
    """What a candidate looks like, for near-duplicate tests: luminance structure and colour layout."""

    hash: int
    lab: np.ndarray

    @classmethod
    def of(cls, image: np.ndarray) -> "Look":
        """The look of an RGB (or grey) image."""
        return cls(dhash(image), lab_thumbnail(image))


def _low_reason(s: Scored, key: str) -> str:
    """``key 0.123`` plus the scorer's own reason for it, when it gave one."""
    why = getattr(s, "reasons", {}).get(key, "")
    return f"{key} {s.scores[key]:.3f}" + (f" ({why})" if why else "")


class ThresholdFilter(Filter):
    """Keep candidates above the minimum scores, drop near-duplicates, then the top K by total."""

    name = "threshold"
    default = True  # what a recipe without a `filter:` step uses

    class Config(StageConfig):
        min_score: float = Field(default=0.0, ge=0, le=1, description="Minimum weighted total.")
        min_scores: dict[str, float] = Field(default_factory=dict, description="Per-scorer minimums, e.g. {color: 0.5}.")
        top_k: int | None = Field(default=None, ge=1, description="Keep at most this many per product (best totals).")
        dedupe: bool = Field(default=True, description="Drop near-duplicates (same structure and same colours), "
                                                       "keeping the better one.")
        dedupe_distance: int = Field(default=4, ge=0, le=64,
                                     description="Luminance hashes within this many bits (of 64) look alike.")
        dedupe_color: float = Field(default=4.0, ge=0, le=200,
                                    description="Colour layouts within this ΔE (CIELAB, 90th percentile over an 8×8 "
                                                "thumbnail) look alike; both this and dedupe_distance must hold. "
                                                "4 is about what a person sees side by side.")
        diversity: float = Field(default=0.0, ge=0, le=1, description="0 = rank by total only; up to 1 = prefer candidates unlike those already kept.")

    @classmethod
    def reads_scores(cls, config: Config) -> dict[str, str]:
        """The scores ``min_scores`` names, by key path: validation refuses one that no scorer of the recipe gives."""
        return {f"min_scores.{key}": key for key in config.min_scores}

    def select(self, scored: Sequence[Scored]) -> list[Decision]:
        """One decision per candidate, in input order, each with its reason."""
        verdict: dict[str, Decision] = {}
        passing: list[Scored] = []
        for s in scored:
            dropped = self._below_minimum(s)
            if dropped:
                verdict[s.id] = Decision(False, dropped)
            else:
                passing.append(s)
        self._rank(passing, verdict)
        return [verdict[s.id] for s in scored]

    def _below_minimum(self, s: Scored) -> str:
        """Why ``s`` fails the minimums (quoting the low scorers' own reasons), or '' when it passes."""
        cfg = self.config
        if s.candidate.failed:
            return f"dropped: failed ({s.candidate.failed})"
        low = [f"{_low_reason(s, k) if k in s.scores else f'{k} missing'} < {v:g}"
               for k, v in cfg.min_scores.items() if s.scores.get(k, 0.0) < v]
        if low:
            return "dropped: " + ", ".join(low)
        if s.total < cfg.min_score:
            lowest = f"; lowest: {_low_reason(s, min(s.scores, key=s.scores.__getitem__))}" if s.scores else ""
            return f"dropped: total {s.total:.3f} < {cfg.min_score:g}{lowest}"
        return ""

    def _rank(self, passing: list[Scored], verdict: dict[str, Decision]) -> None:
        """Best totals first (or maximal marginal relevance), skipping look-alikes, up to top_k."""
        cfg = self.config
        pool = sorted(passing, key=lambda s: (-s.total, s.id))
        looks = {s.id: Look.of(s.candidate.image) for s in pool} if cfg.dedupe or cfg.diversity else {}
        kept: list[Scored] = []
        while pool:
            pick = pool[0] if not cfg.diversity or not kept else max(pool, key=lambda s: self._mmr(s, kept, looks))
            pool.remove(pick)
            twin = next((k for k in kept if self._alike(looks[pick.id], looks[k.id])), None) if cfg.dedupe else None
            if twin is not None:
                a, b = looks[pick.id], looks[twin.id]
                verdict[pick.id] = Decision(False, f"dropped: near-duplicate of {twin.id} (structure "
                                                   f"{hamming(a.hash, b.hash)}/64 bits apart, colour ΔE "
                                                   f"{color_distance(a.lab, b.lab):.1f})")
            elif cfg.top_k is not None and len(kept) >= cfg.top_k:
                tie = ", tied with the last kept: ties go by candidate id" if abs(pick.total - kept[-1].total) < 1e-9 else ""
                verdict[pick.id] = Decision(False, f"dropped: beyond top_k {cfg.top_k} (total {pick.total:.3f}{tie})")
            else:
                kept.append(pick)
                verdict[pick.id] = Decision(True, f"kept: total {pick.total:.3f}, rank {len(kept)}")

    def _alike(self, a: Look, b: Look) -> bool:
        """Near-duplicates: the same luminance structure and the same colours."""
        return (hamming(a.hash, b.hash) <= self.config.dedupe_distance
                and color_distance(a.lab, b.lab) <= self.config.dedupe_color)

    def _mmr(self, s: Scored, kept: list[Scored], looks: dict[str, Look]) -> float:
        """Maximal marginal relevance: total minus similarity to the closest kept candidate."""
        def similarity(a: Look, b: Look) -> float:
            # Unlike in either structure or colour is unlike; 50 ΔE is already a different palette.
            return 1.0 - max(hamming(a.hash, b.hash) / 64.0, min(1.0, color_distance(a.lab, b.lab) / 50.0))

        sim = max(similarity(looks[s.id], looks[k.id]) for k in kept)
        return (1 - self.config.diversity) * s.total - self.config.diversity * sim
