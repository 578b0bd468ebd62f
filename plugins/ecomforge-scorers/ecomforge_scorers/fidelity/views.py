"""Real-photo pairs: other photos of the same DreamBench product vs photos of other products.

Synthetic edits (transforms.py) control exactly what changed; these pairs are the genuine case —
another shot of one physical product (new pose, light, background) should outrank a different
product. Each DreamBench product's ``00.jpg`` is the reference; up to ``same`` of its other
photos and the ``00.jpg`` of the next ``others`` products (in list order) are the candidates.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ecomforge.types import Candidate, ScoringContext

from .data import DREAMBENCH, Product, find_samples, load_products


def view_sets(products: list[Product], size: int, same: int = 3, others: int = 3) -> list[tuple[Product, list[tuple[str, Product]]]]:
    """(reference product, [(kind, candidate product)]) for each DreamBench product given; kind 'same' or 'other'."""
    samples = find_samples()
    dream = [p for p in products if p.name in DREAMBENCH]
    if samples is None or len(dream) < 2:
        return []
    sets = []
    for i, product in enumerate(dream):
        photos = sorted(str(f) for f in (samples / product.name).glob("*.jpg") if f.name != "00.jpg")[:same]
        cands = [("same", p) for p in load_products(photos, size)]
        cands += [("other", dream[(i + k) % len(dream)]) for k in range(1, min(others, len(dream) - 1) + 1)]
        sets.append((product, cands))
    return sets


def run_views(products: list[Product], stages: dict[str, Any], size: int) -> dict:
    """Score every view set with every scorer; AUROC of same-product photos vs other products."""
    from ecomforge.analysis.stats import auroc

    rows, seconds = [], dict.fromkeys(stages, 0.0)
    for product, cands in view_sets(products, size):
        context = ScoringContext((product.reference,), (product.mask,), f"a photo of a {product.name.replace('_', ' ')}")
        batch = [Candidate(c.reference.image, 0, {}, plugin="views", mask=c.mask.data) for _, c in cands]
        scored = {}
        for name, stage in stages.items():
            start = time.perf_counter()
            scored[name] = stage.score(batch, context)
            seconds[name] += time.perf_counter() - start
        for j, (kind, c) in enumerate(cands):
            scores = {name: float(v[j]) for name, v in scored.items()}
            if scores:
                scores["combined"] = float(np.mean(list(scores.values())))
            rows.append({"product": product.name, "candidate": c.source, "kind": kind, "mask": c.mask_method,
                         "scores": scores})
    summary = {}
    for col in [*stages, "combined"] if stages and rows else []:
        same = [r["scores"][col] for r in rows if r["kind"] == "same"]
        other = [r["scores"][col] for r in rows if r["kind"] == "other"]
        summary[col] = {"auroc": auroc(same, other), "mean_same": float(np.mean(same)),
                        "mean_other": float(np.mean(other))}
    return {"summary": summary, "pairs": rows}
