"""GPU throughput of sd-inpaint on a full-size SD-1.5 architecture (random weights): images/s and the
fraction of the FLOP floor, per batch size and fast-path setting.

    .venv/bin/python bench/bench_gpu.py                       # CUDA: 512², 30 steps, CFG, batches 1 and 8
    .venv/bin/python bench/bench_gpu.py --batches 1 8 16 --compile regional --peak-tflops 989
    .venv/bin/python bench/bench_gpu.py --tiny --device cpu   # the code path on CPU, tiny model, 64 px

The FLOP floor: an image costs steps × (UNet forward at batch 2, for classifier-free guidance)
+ one VAE decode, counted once with torch's FlopCounterMode on the real modules (about 53 TFLOP
for SD-1.5 at 512², 30 steps); the floor is that work at the GPU's dense bf16 peak (790 TFLOP/s
for an H100-class part by default; pass --peak-tflops for another). Random weights compute
exactly what trained ones do, so the timings hold; the images are noise. Results: printed, and
written to bench/results/gpu.json.
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
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def image_flops(pipe, size: int, steps: int, guidance: bool) -> float:
    """FLOPs of one image: ``steps`` UNet forwards (batch 2 with guidance) plus one VAE decode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    unet, vae = pipe.unet, pipe.vae
    lat = size // 8
    batch = 2 if guidance else 1
    dev, dt = unet.device, unet.dtype
    sample = torch.zeros(batch, unet.config.in_channels, lat, lat, device=dev, dtype=dt)
    text = torch.zeros(batch, 77, unet.config.cross_attention_dim, device=dev, dtype=dt)
    with torch.no_grad(), FlopCounterMode(display=False) as unet_count:
        unet(sample, torch.tensor([500], device=dev), encoder_hidden_states=text)
    latents = torch.zeros(1, 4, lat, lat, device=vae.device, dtype=vae.dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as vae_count:
        vae.decode(latents)
    return steps * unet_count.get_total_flops() + vae_count.get_total_flops()


def run_one(gen, ref, mask, batch: int, reps: int) -> float:
    """Median seconds of a ``batch``-seed generate call (after one warm-up call)."""
    import statistics

    import torch

    from ecomforge.types import GenerationRequest

    def call(seeds):
        gen.generate(GenerationRequest(ref, mask, "a product photo on a table", "blurry", gen.config, seeds))
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    call(tuple(range(batch)))  # warm-up: allocator, kernels, compilation
    times = []
    for r in range(reps):
        t0 = time.perf_counter()
        call(tuple(range(1000 * (r + 1), 1000 * (r + 1) + batch)))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    parser.add_argument("--compile", default="off", choices=["off", "regional", "full"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="Dense bf16 peak of the GPU.")
    parser.add_argument("--tiny", action="store_true", help="The tiny model instead (checks the code path).")
    parser.add_argument("--full-dir", default=None, help="Keep the full-size random model here (reused).")
    args = parser.parse_args()
    if args.tiny and args.size == 512:
        args.size, args.steps = 64, 2

    import torch

    from ecomforge.testing import make_reference
    from ecomforge.types import Mask
    from ecomforge_diffusers.generators import SdInpaintGenerator

    from bench_diffusers import build_full_size

    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            from ecomforge.testing.tiny_diffusers import build_tiny_pipeline

            model = build_tiny_pipeline(Path(tmp) / "tiny", kind="inpaint")
        else:
            model = build_full_size(Path(args.full_dir) if args.full_dir else Path(tmp) / "full")
        gen = SdInpaintGenerator({"model": str(model), "steps": args.steps, "max_side": args.size,
                                  "scheduler": "DDIM", "guidance_scale": 7.0, "dtype": args.dtype,
                                  "compile": args.compile}, device=args.device)
        ref, m = make_reference(args.size, args.size)
        mask = Mask(m.data, dilate=2, feather=4)
        gen.ensure_setup()
        loaded = gen._pipeline(gen.config)
        flops = image_flops(loaded.pipe, args.size, args.steps, guidance=True)
        rows = []
        for batch in args.batches:
            seconds = run_one(gen, ref, mask, batch, args.reps)
            ips = batch / seconds
            rows.append({"batch": batch, "seconds": round(seconds, 4), "images_per_s": round(ips, 4),
                         "achieved_tflops": round(ips * flops / 1e12, 3),
                         "fraction_of_floor": round(ips * flops / (args.peak_tflops * 1e12), 4)})
            print(f"batch {batch:>3}: {seconds:.3f} s  {ips:.3f} img/s  "
                  f"{ips * flops / 1e12:.1f} TFLOP/s  {100 * rows[-1]['fraction_of_floor']:.1f} % of the floor")
    result = {
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device,
        "model": "tiny (random)" if args.tiny else "SD-1.5-inpaint size (random)", "size": args.size,
        "steps": args.steps, "dtype": str(loaded.pipe.unet.dtype), "vae_dtype": str(loaded.pipe.vae.dtype),
        "compile": args.compile, "speed": loaded.speed, "tflop_per_image": round(flops / 1e12, 4),
        "peak_tflops": args.peak_tflops, "rows": rows,
    }
    print(f"{result['tflop_per_image']} TFLOP per image ({args.size}², {args.steps} steps, CFG)")
    out = ROOT / "bench" / "results" / ("gpu-tiny.json" if args.tiny else "gpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
