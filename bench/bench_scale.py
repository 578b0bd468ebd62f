"""Throughput: an ecomforge run vs the naive per-request loop, and the local vs the Ray executor.

    .venv/bin/python bench/bench_scale.py [--size 128] [--steps 2] [--seeds 4] [--points 2] [--full-dir DIR]
                                          [--skip-full] [--skip-ray] [--threads 1]

(a) Full-size model (SD-1.5-inpainting architecture: 860 M-param UNet, full VAE, CLIP-L text encoder,
    random weights, saved once as safetensors): ``ecomforge run`` with the local executor (model loaded
    once, seeds batched, masks and PNGs written) vs the prototype's loop (for every image: load the
    pipeline from disk, generate one image). Same candidates (points x seeds), same size and steps.
    The naive loop runs twice: "cold" evicts the model files from the page cache before every load
    (posix_fadvise DONTNEED: each load really reads the disk, as on a box whose RAM does not keep the
    model), "warm" lets the page cache serve them. ecomforge's single load is cold.
(b) Tiny model: the local executor vs the Ray executor with 2 actors on this machine (Ray's overhead:
    cluster start, actor start, model load per actor, object transfer).

Only ratios within one run mean anything: the machine may be shared. Results are printed and written
to bench/results/scale.json.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

RECIPE = """
name: bench-scale
inputs:
  products: {products}
  prompt: a product photo on a wooden table
  negative_prompt: blurry
mask: {{plugin: classic, config: {{feather: 2}}}}
generate:
  plugin: sd-inpaint
  config: {{model: "{model}", steps: {steps}, max_side: {size}, scheduler: DDIM}}
  sweep: {{guidance_scale: {points}}}
  seeds: {seeds}
  batch_size: {batch}
filter: {{plugin: threshold, config: {{dedupe: false}}}}  # no scorers: every candidate kept
"""
GUIDANCE = [5.0, 7.5, 9.0, 11.0]


def _write_recipe(folder: Path, model: Path, *, size: int, steps: int, seeds: int, points: int, batch: int,
                  products: int = 1) -> Path:
    """A catalogue of ``products`` products, each with its own reference photo."""
    from ecomforge.imaging.io import save_png
    from ecomforge.testing import sample_image

    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for i in range(products):
        save_png(folder / f"ref{i}.png", sample_image(size, size, i)[0])
        names[f"product{i}"] = [f"ref{i}.png"]
    path = folder / "bench.yaml"
    path.write_text(RECIPE.format(model=model, steps=steps, size=size, points=GUIDANCE[:points],
                                  seeds=list(range(1, seeds + 1)), batch=batch, products=json.dumps(names)))
    return path


def _ecomforge_run(recipe: Path, out: Path, overrides: list[str] = ()) -> dict:
    """One ``ecomforge run`` in this process from a cold model cache: wall seconds and stage seconds."""
    from ecomforge.models import MODEL_CACHE
    from ecomforge.recipe import load_recipe
    from ecomforge.run.runner import run_recipe

    MODEL_CACHE.clear()
    gc.collect()
    t0 = time.perf_counter()
    result = run_recipe(load_recipe(recipe, list(overrides)), out=out, device="cpu")
    wall = time.perf_counter() - t0
    return {"seconds": wall, "candidates": result.summary["total_candidates"],
            "stage_seconds": result.summary["stage_seconds"], "run_dir": str(result.run_dir)}


def evict_from_page_cache(folder: Path) -> None:
    """Drop a model's files from the OS page cache (no root needed), so the next load really reads the disk."""
    for path in Path(folder).rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _naive_loop(model: Path, run_dir: Path, *, size: int, steps: int, seeds: int, points: int, cold: bool) -> dict:
    """The prototype's pattern: for every image, load the pipeline from disk and make one image."""
    import numpy as np
    from PIL import Image

    n, load = 0, 0.0
    t0 = time.perf_counter()
    for ref_png in sorted((run_dir / "references").rglob("*.png")):  # the references and masks the run used
        mask_png = run_dir / "masks" / ref_png.relative_to(run_dir / "references")
        image = Image.open(ref_png).convert("RGB").resize((size, size))
        mask = np.asarray(Image.open(mask_png).convert("L").resize((size, size), Image.NEAREST))
        background = Image.fromarray(255 - mask)  # repaint everything but the product
        n, load = _naive_product(model, image, background, n, load, size=size, steps=steps, seeds=seeds,
                                 points=points, cold=cold)
    return {"seconds": time.perf_counter() - t0, "candidates": n, "load_s": load}


def _naive_product(model: Path, image, background, n: int, load: float, *, size: int, steps: int, seeds: int,
                   points: int, cold: bool) -> tuple[int, float]:
    """The prototype's loop over one product's sweep points and seeds."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline

    for guidance in GUIDANCE[:points]:
        for seed in range(1, seeds + 1):
            if cold:
                evict_from_page_cache(model)
            t1 = time.perf_counter()
            pipe = StableDiffusionInpaintPipeline.from_pretrained(str(model), safety_checker=None,
                                                                  requires_safety_checker=False)
            load += time.perf_counter() - t1
            pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
            pipe.set_progress_bar_config(disable=True)
            with torch.no_grad():
                pipe(prompt="a product photo on a wooden table", negative_prompt="blurry", image=image,
                     mask_image=background, height=size, width=size, num_inference_steps=steps,
                     guidance_scale=guidance, strength=1.0, output_type="np",
                     generator=torch.Generator().manual_seed(seed))
            n += 1
            del pipe
            gc.collect()
    return n, load


def bench_full(tmp: Path, full_dir: Path | None, *, size: int, steps: int, seeds: int, points: int,
               products: int = 1) -> dict:
    """(a) ecomforge (local executor) vs the naive loop on the full-size model."""
    from bench_diffusers import build_full_size

    t0 = time.perf_counter()
    model = build_full_size(full_dir or tmp / "full")
    print(f"full-size random model ready in {time.perf_counter() - t0:.1f} s: {model}", flush=True)
    recipe = _write_recipe(tmp / "full-recipe", model, size=size, steps=steps, seeds=seeds, points=points, batch=seeds,
                           products=products)
    evict_from_page_cache(model)  # ecomforge's one load reads the disk too
    ours = _ecomforge_run(recipe, tmp / "runs-full")
    print(f"ecomforge: {ours['candidates']} candidates in {ours['seconds']:.1f} s", flush=True)
    row = {"model": "SD-1.5-inpaint size (random)", "products": products, "size": size, "steps": steps, "seeds": seeds,
           "points": points, "candidates": ours["candidates"], "ecomforge_s": ours["seconds"],
           "ecomforge_stage_s": ours["stage_seconds"],
           "ecomforge_img_per_min": 60 * ours["candidates"] / ours["seconds"]}
    for label, cold in (("cold", True), ("warm", False)):
        naive = _naive_loop(model, Path(ours["run_dir"]), size=size, steps=steps, seeds=seeds, points=points, cold=cold)
        print(f"naive loop ({label} page cache): {naive['candidates']} images in {naive['seconds']:.1f} s "
              f"({naive['load_s']:.1f} s loading)", flush=True)
        row.update({f"naive_{label}_s": naive["seconds"], f"naive_{label}_load_s": naive["load_s"],
                    f"speedup_{label}": naive["seconds"] / ours["seconds"],
                    f"naive_{label}_img_per_min": 60 * naive["candidates"] / naive["seconds"]})
    return row


def bench_ray(tmp: Path, *, threads: int, seeds: int = 8, points: int = 2) -> dict:
    """(b) local vs Ray executor (1 actor: overhead; 2 actors: scale-out) on the tiny model, one machine."""
    import ray

    from ecomforge.testing.tiny_diffusers import build_tiny_pipeline

    model = build_tiny_pipeline(tmp / "tiny", kind="inpaint")
    recipe = _write_recipe(tmp / "tiny-recipe", model, size=128, steps=4, seeds=seeds, points=points, batch=2)
    local = _ecomforge_run(recipe, tmp / "runs-local")
    print(f"tiny, local executor: {local['seconds']:.1f} s", flush=True)
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    ray_init = time.perf_counter() - t0
    runs = {}
    try:
        for workers in (1, 2):
            # each actor gets the driver's thread count, so 1 actor has exactly the local run's compute
            cfg = (f"{{num_workers: {workers}, num_cpus_per_worker: 1, "
                   f"runtime_env: {{env_vars: {{HF_HUB_OFFLINE: '1', OMP_NUM_THREADS: '{threads}'}}}}}}")
            sets = ["execute.plugin=ray", f"execute.config={cfg}"]
            runs[workers] = _ecomforge_run(recipe, tmp / f"runs-ray{workers}", sets)
            print(f"tiny, ray executor, {workers} actor(s): {runs[workers]['seconds']:.1f} s", flush=True)
    finally:
        ray.shutdown()
    same = _same_images(Path(local["run_dir"]), Path(runs[1]["run_dir"]))
    return {"model": "tiny (random)", "size": 128, "steps": 4, "jobs": seeds * points // 2,
            "candidates": local["candidates"], "local_s": local["seconds"], "ray1_s": runs[1]["seconds"],
            "ray2_s": runs[2]["seconds"], "ray_init_s": ray_init, "ray1_over_local": runs[1]["seconds"] / local["seconds"],
            "local_over_ray2": local["seconds"] / runs[2]["seconds"], "same_pixels_local_ray": same,
            "local_stage_s": local["stage_seconds"], "ray1_stage_s": runs[1]["stage_seconds"],
            "ray2_stage_s": runs[2]["stage_seconds"]}


def _same_images(a: Path, b: Path) -> bool:
    """True when both run folders hold the same candidate ids with identical pixels."""
    import numpy as np
    from PIL import Image

    names = sorted(p.name for p in (a / "candidates").glob("*.png"))
    if names != sorted(p.name for p in (b / "candidates").glob("*.png")):
        return False
    return all(np.array_equal(np.asarray(Image.open(a / "candidates" / n)), np.asarray(Image.open(b / "candidates" / n)))
               for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="Image side for the full-size model.")
    parser.add_argument("--steps", type=int, default=2, help="Denoising steps for the full-size model.")
    parser.add_argument("--seeds", type=int, default=4, help="Seeds per sweep point (one batch in ecomforge).")
    parser.add_argument("--points", type=int, default=2, choices=range(1, 5), help="Sweep points (guidance).")
    parser.add_argument("--full-dir", type=Path, default=None, help="Keep the full-size random model here (reused).")
    parser.add_argument("--products", type=int, default=1, help="Products in the catalogue of (a), one photo each.")
    parser.add_argument("--skip-full", action="store_true", help="Skip (a), the full-size comparison.")
    parser.add_argument("--skip-ray", action="store_true", help="Skip (b), local vs Ray.")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: on a shared, oversubscribed box more threads run slower).")
    args = parser.parse_args()

    import diffusers  # noqa: F401 - imported before timing, so neither side pays for it
    import torch

    import ecomforge_diffusers.generators  # noqa: F401


    torch.set_num_threads(args.threads)
    results: dict = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "command": sys.argv,
                     "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_full:
            results["full"] = bench_full(Path(tmp), args.full_dir, size=args.size, steps=args.steps,
                                         seeds=args.seeds, points=args.points, products=args.products)
        if not args.skip_ray:
            results["ray"] = bench_ray(Path(tmp), threads=args.threads)
    _print(results)
    out = ROOT / "results" / "scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def _print(results: dict) -> None:
    if "full" in results:
        f = results["full"]
        print(f"\n(a) {f['model']}, {f.get('products', 1)} product(s), {f['size']}x{f['size']}, {f['steps']} steps, "
              f"{f['points']} points x {f['seeds']} seeds = {f['candidates']} images")
        print("method                                   | seconds | of it loading | images/min | ecomforge speedup")
        for label in ("cold", "warm"):
            print(f"naive loop, reload per image ({label} cache) | {f[f'naive_{label}_s']:7.1f} | "
                  f"{f[f'naive_{label}_load_s']:13.1f} | {f[f'naive_{label}_img_per_min']:10.2f} | "
                  f"{f[f'speedup_{label}']:.2f}x")
        print(f"ecomforge run, local executor (cold)     | {f['ecomforge_s']:7.1f} | {'once':>13} | "
              f"{f['ecomforge_img_per_min']:10.2f} |")
        print("ecomforge stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in f["ecomforge_stage_s"].items()))
    if "ray" in results:
        r = results["ray"]
        print(f"\n(b) {r['model']}, {r['candidates']} images in {r['jobs']} jobs (ray.init {r['ray_init_s']:.1f} s "
              f"not counted; actor start and model load per actor counted)")
        print("executor                 | seconds")
        print(f"local                    | {r['local_s']:7.1f}")
        print(f"ray, 1 actor             | {r['ray1_s']:7.1f}   (ray/local {r['ray1_over_local']:.2f}x: overhead)")
        print(f"ray, 2 actors            | {r['ray2_s']:7.1f}   (local/ray {r['local_over_ray2']:.2f}x: scale-out)")
        print(f"same ids and pixels, local vs ray: {r['same_pixels_local_ray']}")


if __name__ == "__main__":
    main()
