"""Score benign variants and distortions of real product photos and measure how well each scorer separates them."""
from __future__ import annotations

import json
import time
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecomforge.analysis.stats import auroc
from ecomforge.errors import EcomforgeError, UsageError
from ecomforge.types import Candidate, ScoringContext

from .data import DREAMBENCH, SKIMAGE, Product, load_products
from .transforms import VARIANTS, Variant

DEFAULT_SCORERS = ("color", "keypoints", "clip-image", "dino", "lpips")
DEFAULT_PRODUCTS = DREAMBENCH + SKIMAGE
MODEL_SCORERS = ("clip-image", "clip-text", "dino")  # scorers whose config takes a `model`


def tiny_models(folder: Path) -> dict[str, str]:
    """Build the tiny RANDOM-weight CLIP and DINOv2 (for exercising the harness, not for figures)."""
    from ecomforge.testing.tiny_clip import build_tiny_open_clip
    from ecomforge.testing.tiny_dino import build_tiny_dinov2

    clip = str(build_tiny_open_clip(folder / "tiny-open-clip"))
    dino = folder / "tiny-dinov2"
    if not (dino / "model.safetensors").is_file():
        build_tiny_dinov2(dino)
    return {"clip-image": clip, "clip-text": clip, "dino": str(dino)}


def make_scorers(names: Sequence[str], models: dict[str, str], device: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Create and set up each scorer through the registry; unavailable ones are returned with the reason."""
    from ecomforge.plugins import get_registry

    registry = get_registry()
    ready, skipped = {}, {}
    for name in names:
        config = {"model": models[name]} if name in models else {}
        try:
            stage = registry.create("scorer", name, config, device=device)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # LPIPS's random-trunk warning is reported in the table instead
                stage.ensure_setup()
            ready[name] = stage
        except EcomforgeError as exc:
            skipped[name] = exc.one_line()
    return ready, skipped


def variants_of(product: Product, seed: int) -> list[tuple[Variant, Candidate]]:
    """Every variant of one product as a Candidate (image + product mask), seeded per product."""
    rng = np.random.default_rng([seed, zlib.crc32(product.name.encode())])
    out = []
    for variant in VARIANTS:
        image, mask = variant.apply(product.reference.image, product.mask.data, rng)
        out.append((variant, Candidate(image, seed, {"transform": variant.name}, plugin="fidelity", mask=mask)))
    return out


def run_fidelity(out_dir: str | Path, scorers: Sequence[str] | None = None, products: Sequence[str] | None = None, *,
                 models: dict[str, str] | None = None, tiny: bool = False, size: int = 256, seed: int = 0,
                 device: str = "cpu", command: str = "", views: bool = False) -> dict:
    """Score every variant of every product with every available scorer; write and return fidelity.json's content.

    ``views`` adds the real-photo test (views.py): other photos of each DreamBench product vs other products.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(scorers or DEFAULT_SCORERS)
    models = dict(models or {})
    random_models = set()
    if tiny:
        for name, path in tiny_models(out / "tiny-models").items():
            if name not in models:
                models[name], _ = path, random_models.add(name)
    unknown = sorted(set(models) - set(MODEL_SCORERS))
    if unknown:
        raise UsageError(f"--model given for {', '.join(unknown)}, which take no model path",
                         hint=f"model scorers: {', '.join(MODEL_SCORERS)}")
    items = load_products(list(products or DEFAULT_PRODUCTS), size)  # bad input fails before any model loads
    stages, skipped = make_scorers(names, models, device)
    rows: list[dict] = []
    seconds = dict.fromkeys(stages, 0.0)
    for product in items:
        pairs = variants_of(product, seed)
        context = ScoringContext((product.reference,), (product.mask,), f"a photo of a {product.name.replace('_', ' ')}")
        cands = [c for _, c in pairs]
        scored = {}
        for name, stage in stages.items():
            start = time.perf_counter()
            scored[name] = stage.score(cands, context)
            seconds[name] += time.perf_counter() - start
        for i, (variant, _) in enumerate(pairs):
            scores = {name: float(values[i]) for name, values in scored.items()}
            if scores:
                scores["combined"] = float(np.mean(list(scores.values())))
            rows.append({"product": product.name, "transform": variant.name, "kind": variant.kind, "scores": scores})
    if items:
        _contact_sheet(items[0], variants_of(items[0], seed), out / "variants.png")
    result = _summarise(rows, stages, skipped, seconds, random_models, items, command, seed, size)
    if views:
        from .views import run_views

        result["views"] = run_views(items, stages, size)
    (out / "fidelity.json").write_text(json.dumps(result, indent=2))
    return result


def _summarise(rows: list[dict], stages: dict, skipped: dict, seconds: dict, random_models: set, items: list[Product],
               command: str, seed: int, size: int) -> dict:
    columns = list(stages) + (["combined"] if stages else [])
    n = max(1, len(rows))  # candidates scored by each scorer
    summary = {}
    for col in columns:
        benign = [r["scores"][col] for r in rows if r["kind"] == "benign"]
        bad = [r["scores"][col] for r in rows if r["kind"] == "distorted"]
        per_product = []
        for p in items:
            pb = [r["scores"][col] for r in rows if r["product"] == p.name and r["kind"] == "benign"]
            pd = [r["scores"][col] for r in rows if r["product"] == p.name and r["kind"] == "distorted"]
            per_product.append(auroc(pb, pd))
        per_transform = {}
        for v in VARIANTS:
            values = [r["scores"][col] for r in rows if r["transform"] == v.name]
            per_transform[v.name] = float(np.mean(values)) if values else None
        entry = {"auroc": auroc(benign, bad), "auroc_per_product_mean": float(np.mean(per_product)),
                 "mean_benign": float(np.mean(benign)), "mean_distorted": float(np.mean(bad)),
                 "per_transform": per_transform}
        if col == "combined":
            entry["members"] = list(stages)
        else:
            identity = stages[col].identity()
            model = ", ".join(f"{v}" for v in identity.values()) or "-"
            entry.update(model=model, random_weights=col in random_models or "random" in model,
                         seconds_per_candidate=seconds[col] / n)
        summary[col] = entry
    return {
        "command": command,
        "seed": seed,
        "image_size": size,
        "products": [{"name": p.name, "source": p.source, "mask": p.mask_method, "mask_area": round(p.mask.area, 4)}
                     for p in items],
        "transforms": {kind: [v.name for v in VARIANTS if v.kind == kind] for kind in ("benign", "distorted")},
        "transform_descriptions": {v.name: v.description for v in VARIANTS},
        "scorers": {k: v for k, v in summary.items() if k != "combined"},
        "combined": summary.get("combined"),
        "skipped": skipped,
        "scores": rows,
    }


def _contact_sheet(product: Product, pairs: list[tuple[Variant, Candidate]], path: Path, cell: int = 160) -> None:
    """The reference and each variant with its product mask outlined, labelled: to look at the benchmark."""
    import cv2

    tiles = [("reference", product.reference.image, product.mask.data)] + [(v.name, c.image, c.mask) for v, c in pairs]
    cols = 7
    sheet = np.full((cell * ((len(tiles) + cols - 1) // cols), cell * cols, 3), 255, np.uint8)
    for i, (label, image, mask) in enumerate(tiles):
        h, w = image.shape[:2]
        s = cell / max(h, w)
        tile = cv2.resize(image, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA).copy()
        small = cv2.resize(mask, (tile.shape[1], tile.shape[0]), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(tile, contours, -1, (0, 255, 0), 1)
        cv2.putText(tile, label, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 2)
        cv2.putText(tile, label, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        y, x = (i // cols) * cell, (i % cols) * cell
        sheet[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
