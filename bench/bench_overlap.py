"""The local executor with and without overlapped I/O (``execute.config.prefetch`` 1 vs 0).

    .venv/bin/python bench/bench_overlap.py [--full-dir DIR] [--skip-full] [--sim-products 6]

(a) Simulated GPU, real CPU work: bench/simstages.py stages that sleep for GPU times (mask 0.15 s
    per reference, SD-1.5 0.25 s per image, two scorers 0.005 s per candidate; one lock: one GPU)
    on 1024x768 references, with the real paste-back inside the generator call and the real
    run folder writes (PNG encoding of every candidate and mask, manifest). Time per candidate
    and the share of the ideal (GPU-seconds) reached, for a catalogue of several products.
(b) The full-size SD-1.5-inpainting architecture (random weights, CPU): sd-inpaint at 256 px,
    1 DDIM step, 2 sweep points x 2 seeds, one seed per call: time per candidate.

Only ratios within one run mean anything (shared machine). Results: bench/results/overlap.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import simstages

SIM = """
name: sim-local
inputs:
  products: {products}
  prompt: a product photo
acquire: {{plugin: sim, config: {{size: 1024}}}}
mask: {{plugin: sim}}
generate: {{plugin: sim, sweep: {{level: [60, 180]}}, seeds: [1, 2], batch_size: 2}}
score: [{{plugin: sim, name: clip}}, {{plugin: sim, name: dino}}]
filter: {{plugin: threshold, config: {{dedupe: false}}}}
output: {{report: false}}
"""
FULL = """
name: full-local
inputs:
  references: [ref.png]
  prompt: a product photo on a wooden table
mask: {{plugin: classic, config: {{feather: 2}}}}
generate:
  plugin: sd-inpaint
  config: {{model: "{model}", steps: 1, max_side: 256, scheduler: DDIM}}
  sweep: {{guidance_scale: [5.0, 7.5]}}
  seeds: [1, 2]
  batch_size: 1
filter: {{plugin: threshold, config: {{dedupe: false}}}}
output: {{report: false}}
"""


def _run(recipe: Path, out: Path, prefetch: int) -> dict:
    from ecomforge.recipe import load_recipe
    from ecomforge.run.runner import run_recipe

    t0 = time.perf_counter()
    result = run_recipe(load_recipe(recipe, ["execute.plugin=local", f"execute.config.prefetch={prefetch}"]),
                        out=out, device="cpu")
    wall = time.perf_counter() - t0
    n = result.summary["total_candidates"]
    return {"prefetch": prefetch, "seconds": round(wall, 3), "candidates": n, "s_per_candidate": round(wall / n, 4),
            "stage_s": result.summary["stage_seconds"], "run_dir": str(result.run_dir)}


def bench_sim(tmp: Path, products: int) -> dict:
    """(a) simulated GPU times, real paste-back and writes, one GPU."""
    from ecomforge.testing import temporary_plugins

    recipe = tmp / "sim.yaml"
    recipe.write_text(SIM.format(products=json.dumps({f"p{i}": [f"sim:{i + 1}"] for i in range(products)})))
    gpu_s = products * (simstages.MASK_S + 4 * simstages.IMAGE_S + 2 * 4 * simstages.SCORE_S)
    rows = []
    with temporary_plugins(simstages):
        _run(recipe, tmp / "warm", 1)  # imports and first-call costs out of the comparison
        for prefetch in (0, 1):
            row = _run(recipe, tmp / f"sim{prefetch}", prefetch)
            row["of_ideal"] = round(gpu_s / row["seconds"], 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    same = _same(Path(rows[0]["run_dir"]), Path(rows[1]["run_dir"]))
    return {"products": products, "gpu_s": round(gpu_s, 3), "rows": rows, "same_ids_and_pixels": same,
            "no_overlap_over_overlap": round(rows[0]["seconds"] / rows[1]["seconds"], 3)}


def bench_full(tmp: Path, full_dir: Path | None) -> dict:
    """(b) full-size SD-1.5 architecture on CPU, 256 px, 1 step."""
    from ecomforge.imaging.io import save_png
    from ecomforge.testing import sample_image

    from bench_diffusers import build_full_size

    model = build_full_size(full_dir or tmp / "full")
    folder = tmp / "full-recipe"
    folder.mkdir()
    save_png(folder / "ref.png", sample_image(256, 256)[0])
    (folder / "bench.yaml").write_text(FULL.format(model=model))
    _run(folder / "bench.yaml", tmp / "full-warm", 1)  # page cache and first-call costs
    rows = [_run(folder / "bench.yaml", tmp / f"full{p}", p) for p in (0, 1)]
    for row in rows:
        print(json.dumps(row), flush=True)
    return {"size": 256, "steps": 1, "rows": rows, "same_ids_and_pixels": _same(Path(rows[0]["run_dir"]),
                                                                                 Path(rows[1]["run_dir"])),
            "no_overlap_over_overlap": round(rows[0]["seconds"] / rows[1]["seconds"], 3)}


def _same(a: Path, b: Path) -> bool:
    import numpy as np
    from PIL import Image

    names = sorted(p.name for p in (a / "candidates").glob("*.png"))
    return names == sorted(p.name for p in (b / "candidates").glob("*.png")) and all(
        np.array_equal(np.asarray(Image.open(a / "candidates" / n)), np.asarray(Image.open(b / "candidates" / n)))
        for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-dir", type=Path, default=None, help="Keep the full-size random model here (reused).")
    parser.add_argument("--skip-full", action="store_true", help="Skip (b), the full-size model.")
    parser.add_argument("--sim-products", type=int, default=6, help="Products in the simulated catalogue.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    results: dict = {"cpu_count": os.cpu_count(), "command": sys.argv, "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        results["sim"] = bench_sim(Path(tmp), args.sim_products)
        if not args.skip_full:
            results["full"] = bench_full(Path(tmp), args.full_dir)
    for key in ("sim", "full"):
        if key in results:
            r = results[key]
            print(f"\n({key}) prefetch | seconds | s/candidate" + (" | of ideal" if key == "sim" else ""))
            for row in r["rows"]:
                extra = f" | {row['of_ideal']:.0%}" if "of_ideal" in row else ""
                print(f"      {row['prefetch']:8} | {row['seconds']:7.2f} | {row['s_per_candidate']:.3f}{extra}")
            print(f"      no overlap / overlap: {r['no_overlap_over_overlap']:.2f}x; same ids and pixels: "
                  f"{r['same_ids_and_pixels']}")
    path = ROOT / "results" / "overlap.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
