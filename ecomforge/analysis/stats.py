"""Small statistics for A/B comparison: paired bootstrap interval, win rate, Spearman correlation."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def ranks(values: ArrayLike) -> np.ndarray:
    """Ranks starting at 1, ties given their average rank."""
    vals = np.asarray(values, dtype=np.float64)
    order = np.argsort(vals, kind="mergesort")
    sorted_vals = vals[order]
    r = np.empty(len(vals), dtype=np.float64)
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return r


def spearman(a: ArrayLike, b: ArrayLike) -> float | None:
    """Spearman's rank correlation; None when undefined (fewer than 2 items or a constant side)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 2 or len(x) != len(y):
        return None
    ra, rb = ranks(x), ranks(y)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return round(float(np.corrcoef(ra, rb)[0, 1]), 9)  # float noise: one order against itself is 1, not 0.9999…


def bootstrap_mean_ci(diff: np.ndarray, *, groups: ArrayLike | None = None, level: float = 0.95,
                      resamples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of paired differences (deterministic for a seed).

    With ``groups`` (one label per difference), whole groups are resampled, not single differences: the
    candidates of one reference photo differ by seed only and score alike, so counting them as independent
    would make the interval too narrow. Each resample's mean weighs every difference once.
    """
    diff = np.asarray(diff, float)
    if len(diff) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
        means = diff[idx].mean(axis=1)
    else:
        _, label = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
        sums, counts = np.bincount(label, weights=diff), np.bincount(label).astype(float)
        pick = rng.integers(0, len(sums), size=(resamples, len(sums)))
        means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def win_rate(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pairs where B beats A, ties counting half."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) == 0:
        return float("nan")
    return float(((b > a).sum() + 0.5 * (b == a).sum()) / len(a))


def paired_summary(a: np.ndarray, b: np.ndarray,
                   groups: Sequence[str] | None = None) -> dict[str, float | list[float] | int | str]:
    """Means, medians, the mean paired difference (B − A) with its 95 % interval, B's win rate (ties half), and
    the shares of pairs B wins, loses and ties. With ``groups`` of at least two labels the interval resamples groups (``ci_unit``: "group"), else pairs."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = b - a
    clustered = groups is not None and len(set(groups)) >= 2
    lo, hi = bootstrap_mean_ci(diff, groups=groups if clustered else None)
    return {"n": int(len(a)), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
            "median_a": float(np.median(a)), "median_b": float(np.median(b)),
            "mean_diff": float(diff.mean()), "ci95": [lo, hi], "ci_unit": "group" if clustered else "pair",
            "win_rate_b": win_rate(a, b), "tie_rate": float((a == b).mean()) if len(a) else float("nan"),
            # the three shares that add up to 1: "B wins 50%" from all ties (win_rate_b) is no win
            "wins_b": float((b > a).mean()) if len(a) else float("nan"),
            "losses_b": float((b < a).mean()) if len(a) else float("nan")}


def auroc(positives, negatives) -> float:
    """P(a random positive scores above a random negative), ties counting half (Mann–Whitney U / n·m)."""
    pos, neg = np.asarray(positives, float)[:, None], np.asarray(negatives, float)[None, :]
    if pos.size == 0 or neg.size == 0:
        raise ValueError("auroc needs at least one positive and one negative")
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())
