"""A simulated GPU cluster: the whole ``ecomforge run`` on Ray, stages that sleep for real GPU times.

    .venv/bin/python bench/bench_cluster.py [--gpus 1,2,4,8,16] [--per-gpu 12] [--ablation 8]

A local Ray cluster declares N logical GPUs (``ray.init(num_gpus=N)``). The stages (bench/simstages.py)
sleep as long as the real models take on one GPU: a SAM-class mask 0.15 s per reference, SD-1.5 at
512² 0.25 s per image, two CLIP/DINO-class scorers 0.005 s per candidate each; a sleep holds its
GPU's lock, so actors sharing a GPU take turns. The catalogue has many products with few jobs each:
1 reference, 2 sweep points x 2 seeds in batches of 2 = 2 jobs and 4 images per product, i.e.
1.19 GPU-seconds per product. Everything else is the real run: the pipeline, the Ray executor and
its actor pools, the threshold filter, PNGs and the manifest written by the driver.

Reported per N: the ideal time (total GPU-seconds / N), the wall time of the run (actor start-up
included), and the steady state: the time between the 10th and the 90th percentile of products
finished, against the GPU-seconds of those products / N. Results: bench/results/cluster.json.
Simulated: no GPU is used; only the ratios mean anything (the machine may be shared).
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
os.environ["ECOMFORGE_SIM_TRACE"] = "1"  # the stages log their busy intervals (inherited by the Ray workers)
ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from ecomforge import hookimpl

import simstages

REFS, POINTS, SEEDS, BATCH, SCORERS = 1, 2, 2, 2, 2
PER_PRODUCT = (REFS * simstages.MASK_S + REFS * POINTS * SEEDS * simstages.IMAGE_S
               + SCORERS * REFS * POINTS * SEEDS * simstages.SCORE_S)
RECIPE = """
name: sim-cluster
inputs:
  products: {products}
  prompt: a product photo
acquire: {{plugin: sim}}
mask: {{plugin: sim}}
generate: {{plugin: sim, sweep: {{level: [60, 180]}}, seeds: [1, 2], batch_size: 2}}
score: [{{plugin: sim, name: clip}}, {{plugin: sim, name: dino}}]
filter: {{plugin: threshold, config: {{dedupe: false}}}}
output: {{report: false}}
"""


class Clock:
    """Notes when each product is written (on_product_done)."""

    def __init__(self) -> None:
        self.done: list[float] = []

    @hookimpl
    def on_product_done(self, run, product, records):
        """The product's records are in the manifest."""
        self.done.append(time.perf_counter())


def run_once(tmp: Path, gpus: int, products: int, remote: bool, in_flight: int = 0) -> dict:
    """One run of ``products`` products on a fresh local cluster of ``gpus`` logical GPUs."""
    import ray

    from ecomforge.recipe import load_recipe
    from ecomforge.run.runner import run_recipe
    from ecomforge.testing import temporary_plugins

    names = {f"p{i:05d}": [f"sim:{i + 1}"] for i in range(products)}
    recipe = tmp / f"sim-{gpus}-{int(remote)}.yaml"
    recipe.write_text(RECIPE.format(products=json.dumps(names)))
    stages = "[mask, score]" if remote else "[]"
    extra = f"max_in_flight: {in_flight * gpus}, " if in_flight else ""
    cfg = (f"{{plugins: [simstages], remote_stages: {stages}, {extra}"
           f"runtime_env: {{env_vars: {{PYTHONPATH: '{ROOT}', HF_HUB_OFFLINE: '1', ECOMFORGE_SIM_TRACE: '1'}}}}}}")
    for old in simstages.LOCKS.glob("trace-*.txt"):
        old.unlink()
    # each GPU bundle reserves 1.75 CPU slots (a generation actor, three 0.25 stage actors): 2 per GPU, spare 8
    ray.init(num_cpus=2 * gpus + 8, num_gpus=gpus, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    clock = Clock()
    try:
        with temporary_plugins(simstages):
            t0, begin = time.perf_counter(), time.time()
            result = run_recipe(load_recipe(recipe, ["execute.plugin=ray", f"execute.config={cfg}"]),
                                out=tmp / "runs", observers=[clock], device="cpu")
            wall = time.perf_counter() - t0
            end = time.time()
    finally:
        ray.shutdown()
    failed = result.summary.get("failed_products", [])
    if failed or result.summary["total_candidates"] != products * REFS * POINTS * SEEDS:
        print(f"{len(failed)} product(s) failed, e.g. {failed[:2]}", flush=True)
    ideal = products * PER_PRODUCT / gpus
    busy = _utilisation(gpus, end)
    if busy.get("steady_s"):
        busy["all_started_s"] = round(end - busy["steady_s"] - begin, 2)  # after the run began
    return {"gpus": gpus, "products": products, "remote_mask_score": remote, "ideal_s": round(ideal, 2),
            "wall_s": round(wall, 2), "wall_of_ideal": round(ideal / wall, 3),
            "first_product_s": round(min(clock.done) - t0, 2), "failed_products": len(failed), **busy}


def _utilisation(gpus: int, end: float) -> dict:
    """Steady state: from the moment every actor has begun work (each GPU has run a mask, a generation
    and a score) to the run's end, the share of GPU time spent in stage work, i.e. the ideal time
    (GPU-seconds / N) of the work done in that window against the window."""
    spans: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for trace in simstages.LOCKS.glob("trace-*.txt"):
        for line in trace.read_text().splitlines():
            gpu, kind, a, b = line.split()
            spans.setdefault((gpu, kind), []).append((float(a), float(b)))
    on_gpus = {k: s for k, s in spans.items() if not k[0].startswith("none-")}
    used = {g for g, _ in on_gpus}
    if len(used) < gpus:
        return {"steady_of_ideal": None, "gpus_used": len(used)}
    start = max(min(a for a, _ in s) for s in on_gpus.values())  # the last actor to begin work
    busy = sum(max(0.0, min(b, end) - max(a, start)) for s in on_gpus.values() for a, b in s)
    window = end - start
    return {"steady_s": round(window, 2), "steady_busy_gpu_s": round(busy, 2),
            "steady_of_ideal": round(busy / (gpus * window), 3), "gpus_used": len(used)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", default="1,2,4,8,16", help="Cluster sizes (logical GPUs), comma-separated.")
    parser.add_argument("--per-gpu", type=int, default=12, help="Products per GPU in each catalogue.")
    parser.add_argument("--ablation", type=int, default=8,
                        help="Also run this N with masking and scoring in the driver (0: skip).")
    parser.add_argument("--in-flight", type=int, default=0,
                        help="Jobs in flight per generation actor (execute.config.max_in_flight / N); 0: default.")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        plan = [(int(n), True) for n in args.gpus.split(",")] + ([(args.ablation, False)] if args.ablation else [])
        for gpus, remote in plan:
            row = run_once(Path(tmp), gpus, args.per_gpu * gpus, remote, args.in_flight)
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = {"simulated": True, "per_product_gpu_s": PER_PRODUCT, "cpu_count": os.cpu_count(),
           "load_average": os.getloadavg(), "command": sys.argv, "rows": rows}
    path = ROOT / "results" / "cluster.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print("\nN GPUs | products | ideal s | wall s | ideal/wall | first product s | steady of ideal | mask+score on")
    for r in rows:
        steady = f"{r['steady_of_ideal']:.0%}" if r.get("steady_of_ideal") is not None else "n/a"
        print(f"{r['gpus']:6} | {r['products']:8} | {r['ideal_s']:7.1f} | {r['wall_s']:6.1f} | "
              f"{r['wall_of_ideal']:10.0%} | {r['first_product_s']:15.1f} | {steady:>15} | "
              f"{'workers' if r['remote_mask_score'] else 'driver'}")
    print(f"wrote {path} (simulated cluster)")


if __name__ == "__main__":
    main()
