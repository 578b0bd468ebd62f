"""What reading and checking a catalogue costs before any work, per product, for small and large catalogues.

    .venv/bin/python bench/bench_catalogue.py [--sizes 100,10000]

Writes a CSV catalogue of N products (title, type and a per-product `generate.config.scale` column),
loads it with a recipe whose prompt and mask settings are templates (`{title}`, `{type}`), and reports
the load time per product and its ratio to the smallest size: a ratio near 1 means checking is linear
in the catalogue's length (every product's templates, overrides and sweep points are validated up
front). Results: printed, and written to bench/results/catalogue.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RECIPE = """
name: bench
inputs: {catalog: catalog.csv, prompt: "{title} on a marble counter", negative_prompt: "blurry {type}"}
mask: {plugin: classic, config: {feather: 2}}
generate:
  plugin: composite
  config: {size: [256, 256], placement: "{stand}"}
  sweep: {background: ["#f4efe6", "#e9eef2"]}
  seeds: [1, 2]
score: [{plugin: color}]
"""


def load_seconds(n: int, folder: Path) -> float:
    """Seconds to load and check a recipe over an N-product catalogue (best of 3)."""
    from ecomforge.recipe import load_recipe

    rows = ["product,references,title,type,stand,generate.config.scale"]
    rows += [f"p{i},photos/p{i}.jpg,Product {i},type {i % 7},{'bottom' if i % 2 else 'center'},{0.5 + (i % 5) / 10}"
             for i in range(n)]
    (folder / "catalog.csv").write_text("\n".join(rows) + "\n")
    (folder / "recipe.yaml").write_text(RECIPE)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        resolved = load_recipe(folder / "recipe.yaml")
        best = min(best, time.perf_counter() - t0)
        assert len(resolved.products) == n
    return best


def main() -> None:
    """Measure and print per-product load times and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = Path(tmp) / str(n)
            folder.mkdir()
            out[n] = load_seconds(n, folder)
    base = out[sizes[0]] / sizes[0]
    result = {str(n): {"seconds": round(s, 3), "ms_per_product": round(1000 * s / n, 3),
                       "ratio_per_product_to_smallest": round((s / n) / base, 2)} for n, s in out.items()}
    print(json.dumps(result, indent=2))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "catalogue.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
