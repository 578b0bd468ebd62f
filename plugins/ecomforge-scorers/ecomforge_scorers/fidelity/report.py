"""The benchmark's figures (AUROC per scorer, failure group and kind; tuning vs held-out) and its contact sheet."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ecomforge.analysis.stats import auroc

from .cases import BENIGN_OF, Case
from .data import TUNE

TARGETS = {"integration": 0.95, "identity": 0.90, "cross-similar": 0.90}
TOTAL = "total"


def weighted_total(scores: dict[str, float], weights: dict[str, float]) -> float:
    """The recipe's weighted mean of the scores present (the runner's rule); the plain mean without weights."""
    pairs = [(w, scores[k]) for k, w in weights.items() if k in scores and w > 0]
    if not pairs:
        return float(np.mean(list(scores.values()))) if scores else 0.0
    return sum(w * v for w, v in pairs) / sum(w for w, _ in pairs)


def _auc(benign: list[float], bad: list[float]) -> float | None:
    return auroc(benign, bad) if benign and bad else None


def separation(rows: list[dict], column: str) -> dict[str, Any]:
    """AUROC of each failure group and kind against its benign group, and the mean score of each kind."""
    by_group: dict[str, list[float]] = {}
    by_kind: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        by_group.setdefault(r["group"], []).append(r["scores"][column])
        kind = r["kind"].split(":")[0]
        by_kind.setdefault((r["group"], kind), []).append(r["scores"][column])
    groups = {g: _auc(by_group.get(b, []), by_group.get(g, [])) for g, b in BENIGN_OF.items() if g in by_group}
    benign = by_group.get("reshoot", []) + by_group.get("composite", [])
    bad = [v for g in BENIGN_OF for v in by_group.get(g, [])]
    kinds = {}
    for (group, kind), values in sorted(by_kind.items()):
        base = BENIGN_OF.get(group)
        kinds[kind if group not in ("cross-similar", "cross-other") else f"{group}:{kind}"] = {
            "group": group, "mean": float(np.mean(values)), "n": len(values),
            "auroc": _auc(by_group.get(base, []), values) if base else None}
    return {"auroc_all": _auc(benign, bad), "groups": groups, "kinds": kinds}


FEW = 10  # a group with fewer cases than this gives an AUROC that is an anecdote, not a verdict


def kept_by(rows: list[dict], rule: dict[str, Any]) -> dict[str, Any]:
    """The share of each group (and identity kind) the recipe's threshold filter would keep: what the filter
    decides, where the AUROC says only how the total ranks. ``rule``: ``min_score`` and ``min_scores``."""
    def keeps(r: dict) -> bool:
        scores = r["scores"]
        return scores[TOTAL] >= rule["min_score"] and all(scores.get(k, 1.0) >= v for k, v in rule["min_scores"].items())

    out: dict[str, Any] = {"groups": {}, "kinds": {}}
    for key, field in (("groups", "group"), ("kinds", "kind")):
        for r in rows:
            if key == "kinds" and r["group"] != "identity":
                continue
            entry = out[key].setdefault(r[field].split(":")[0], {"n": 0, "kept": 0})
            entry["n"] += 1
            entry["kept"] += keeps(r)
    for entries in out.values():
        for entry in entries.values():
            entry["share"] = entry["kept"] / entry["n"]
    return out


def summarise(rows: list[dict], stages: dict, skipped: dict, seconds: dict, weights: dict[str, float],
              random_models: set, threshold: dict[str, Any] | None = None) -> dict:
    """fidelity.json's figures: per scorer and for the weighted total, on all, tuning and held-out products."""
    for r in rows:
        r["scores"][TOTAL] = weighted_total({k: v for k, v in r["scores"].items() if k in stages}, weights)
    n = max(1, len({(r["product"], r["view"]) for r in rows}))
    splits = {"all": rows, "tune": [r for r in rows if r["product"] in TUNE],
              "held_out": [r for r in rows if r["product"] not in TUNE]}
    columns = {}
    for col in [*stages, TOTAL] if stages else []:
        entry: dict[str, Any] = {name: separation(sub, col) for name, sub in splits.items() if sub}
        if col != TOTAL:
            identity = stages[col].identity()
            model = ", ".join(str(v) for v in identity.values()) or "-"
            entry.update(model=model, random_weights=col in random_models or "random" in model,
                         seconds_per_context=seconds[col] / n)
        columns[col] = entry
    targets = {}
    if TOTAL in columns:
        for split in ("all", "tune", "held_out"):
            if split in columns[TOTAL]:
                got = columns[TOTAL][split]["groups"]
                sub = splits[split]
                targets[split] = {}
                for g, t in TARGETS.items():
                    benign = sum(r["group"] == BENIGN_OF[g] for r in sub)
                    bad = sum(r["group"] == g for r in sub)
                    targets[split][g] = {"target": t, "auroc": got.get(g), "met": (got.get(g) or 0) >= t,
                                         "benign": benign, "failures": bad, "few": min(benign, bad) < FEW}
    filtered = None
    if threshold is not None and TOTAL in columns:
        filtered = {"rule": threshold, **{name: kept_by(sub, threshold) for name, sub in splits.items() if sub}}
    return {"weights": weights, "tune_products": list(TUNE), "scorers": {k: v for k, v in columns.items() if k != TOTAL},
            TOTAL: columns.get(TOTAL), "targets": targets, "filter": filtered, "skipped": skipped,
            "counts": {g: sum(r["group"] == g for r in rows) for g in ("reshoot", "composite", *BENIGN_OF)}}


def contact_sheet(context, cases: list[tuple[Case, dict]], weights: dict[str, float], path: Path, cell: int = 150) -> None:
    """The references, then every case of one photo with its mask outlined, group, kind and total: to look at."""
    import cv2

    tiles = [("reference", f"{r.name}", r.image, m.data, None) for r, m in zip(context.references, context.masks)]
    tiles += [(c.group, c.kind.split(":")[-1], c.candidate.image, c.candidate.mask, s.get(TOTAL)) for c, s in cases]
    cols = 8
    sheet = np.full((cell * ((len(tiles) + cols - 1) // cols), cell * cols, 3), 255, np.uint8)
    for i, (group, kind, image, mask, total) in enumerate(tiles):
        h, w = image.shape[:2]
        s = (cell - 4) / max(h, w)
        tile = cv2.resize(image, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA).copy()
        if mask is not None:
            small = cv2.resize(mask, (tile.shape[1], tile.shape[0]), interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(tile, contours, -1, (0, 255, 0), 1)
        colour = (0, 110, 0) if group in ("reference", "reshoot", "composite") else (190, 0, 0)
        lines = [group, kind] + ([f"total {total:.2f}"] if total is not None else [])
        tile[:14 * len(lines) + 4] = (tile[:14 * len(lines) + 4] * 0.35 + 255 * 0.65).astype(np.uint8)  # a label band
        for j, text in enumerate(lines):
            cv2.putText(tile, text, (3, 13 + 14 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, 1, cv2.LINE_AA)
        y, x = (i // cols) * cell + 2, (i % cols) * cell + 2
        sheet[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    from ecomforge.imaging.io import save_png

    save_png(path, sheet)
