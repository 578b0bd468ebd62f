"""Framework overhead on the quickstart, and CLI start-up time.

    .venv/bin/python bench/bench_core.py [--runs 3]

Overhead = wall time of the whole run − time inside stage methods − time writing the run folder
(reported separately as I/O). Start-up = wall time of `ecomforge --help` in a fresh process.
Results: printed, and written to bench/results/core.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quickstart_once(out: Path) -> dict[str, float]:
    """Run the quickstart in this process; split its wall time into stages, I/O and the rest."""
    from ecomforge.recipe import load_recipe
    from ecomforge.run.runner import run_recipe

    t0 = time.perf_counter()
    result = run_recipe(load_recipe(ROOT / "recipes/quickstart.yaml"), out=out)
    wall = time.perf_counter() - t0
    stages = result.summary["stage_seconds"]
    io = stages.get("io", 0.0)
    inside = sum(v for k, v in stages.items() if k != "io")
    return {"wall": wall, "stages": inside, "io": io, "overhead": wall - inside - io,
            "candidates": result.summary["total_candidates"]}


def help_startup() -> float:
    """Seconds for `ecomforge --help` in a new process."""
    exe = Path(sys.executable).parent / "ecomforge"
    t0 = time.perf_counter()
    subprocess.run([str(exe), "--help"], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    """Run the benchmark and print a table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import os

    os.chdir(ROOT)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        quickstart_once(Path(tmp) / "warm")  # imports and first-use costs out of the figures
        for i in range(args.runs):
            runs.append(quickstart_once(Path(tmp) / f"r{i}"))
    starts = [help_startup() for _ in range(5)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "stages", "io", "overhead")}
    result = {"quickstart_runs": runs, "median": med, "overhead_fraction": med["overhead"] / med["wall"],
              "io_fraction": med["io"] / med["wall"], "help_seconds": starts,
              "help_median": statistics.median(starts)}
    print(f"quickstart ({runs[0]['candidates']} candidates), median of {args.runs} runs:")
    print(f"  wall {med['wall']:.3f}s = stages {med['stages']:.3f}s + run-folder I/O {med['io']:.3f}s "
          f"+ framework {med['overhead']:.3f}s")
    print(f"  framework overhead: {result['overhead_fraction']:.1%} of wall (target < 5%); "
          f"I/O {result['io_fraction']:.1%}")
    print(f"ecomforge --help: median {result['help_median']:.3f}s over 5 (target < 0.5s)")
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "core.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
