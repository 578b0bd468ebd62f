"""sd-inpaint overhead, seed batching and model caching, on the tiny model and a full-size SD-1.5 UNet.

    .venv/bin/python bench/bench_diffusers.py [--skip-full] [--seeds 4] [--full-seeds 2] [--size 256]

(a) the sd-inpaint generator vs a bare diffusers pipeline call with the same parameters (overhead %),
(b) N seeds in one batched generator call vs N one-seed calls,
(c) the first call (loads the model from disk) vs the second (model cache hit),
(d) background detail at output resolution: the sharpness (variance of the Laplacian) of the
    background relative to the product's, for a background generated at the model's resolution and
    upscaled, vs the same refined at the output size (refine_side). 1.0 = as detailed as the photo.

The full-size model is SD-1.5-inpainting's architecture (860 M-param UNet, full VAE, CLIP-L text
encoder) with random weights, saved to a temp folder as safetensors: it computes exactly what the
real model computes, so timings hold, but images are noise. Only ratios within one run mean
anything, and they are taken from CPU time (the machine may be shared); wall times are kept too. Results: printed, and written to bench/results/diffusers.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent

SD15_UNET = {
    "sample_size": 64, "in_channels": 9, "out_channels": 4, "layers_per_block": 2,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 768, "attention_head_dim": 8,
    "norm_num_groups": 32,
}
SD15_VAE = {
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "latent_channels": 4,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "sample_size": 512, "norm_num_groups": 32,
}


def build_full_size(path: Path) -> Path:
    """Save an SD-1.5-inpainting-architecture pipeline with random weights (no download)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from ecomforge.testing.tiny_diffusers import _write_tokenizer

    if (path / "model_index.json").exists():
        return path
    _write_tokenizer(path / "_tok")
    tokenizer = CLIPTokenizer.from_pretrained(str(path / "_tok"))
    torch.manual_seed(0)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                        num_hidden_layers=12, vocab_size=49408, max_position_embeddings=77,
                                        hidden_act="quick_gelu", projection_dim=768,
                                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    pipe = StableDiffusionInpaintPipeline(
        vae=AutoencoderKL(**SD15_VAE), text_encoder=text, tokenizer=tokenizer,
        unet=UNet2DConditionModel(**SD15_UNET),
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                clip_sample=False, set_alpha_to_one=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(path), safe_serialization=True)
    return path


def _timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call. CPU time (all threads of this process) is what other
    processes on a shared machine disturb least, so the ratios below are computed from it."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def bench_model(label: str, model: Path, *, size: int, steps: int, seeds: int, reps: int) -> dict:
    """The three comparisons on one model."""
    import torch
    from PIL import Image

    from ecomforge.models import MODEL_CACHE
    from ecomforge.testing import make_reference
    from ecomforge.types import GenerationRequest, Mask
    from ecomforge_diffusers.generators import SdInpaintGenerator

    torch.set_num_threads(os.cpu_count() or 1)
    MODEL_CACHE.clear()
    ref, mask = make_reference(size, size)
    mask = Mask(mask.data, dilate=2, feather=4)
    cfg = {"model": str(model), "steps": steps, "max_side": size, "scheduler": "DDIM", "guidance_scale": 7.0}
    gen = SdInpaintGenerator(cfg, device="cpu")
    prompt = "a product photo on a wooden table"

    def request(s):
        return GenerationRequest(ref, mask, prompt, "blurry", gen.config, tuple(s))

    all_seeds = list(range(1, seeds + 1))
    first = _timed(lambda: gen.generate(request(all_seeds[:1])))
    second = _timed(lambda: gen.generate(request(all_seeds[:1])))

    pipe = gen._pipeline(gen.config).pipe
    from diffusers import DDIMScheduler

    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    background = Image.fromarray(255 - mask.data)

    def bare():
        with torch.no_grad():
            pipe(prompt=prompt, negative_prompt="blurry", image=Image.fromarray(ref.image), mask_image=background,
                 height=size, width=size, num_inference_steps=steps, guidance_scale=7.0, strength=1.0,
                 num_images_per_prompt=seeds, output_type="np",
                 generator=[torch.Generator().manual_seed(s) for s in all_seeds])

    def batched():
        gen.generate(request(all_seeds))

    def one_by_one():
        for s in all_seeds:
            gen.generate(request([s]))

    if reps > 1:  # warm both paths up (allocator, kernels) before timing
        bare()
        batched()
    times: dict[str, list[tuple[float, float]]] = {"bare": [], "ours": [], "seq": []}
    for _ in range(reps):  # interleaved, so load from other processes hits all three alike
        for name, fn in (("bare", bare), ("ours", batched), ("seq", one_by_one)):
            times[name].append(_timed(fn))
    wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    return {
        "model": label, "size": size, "steps": steps, "seeds": seeds, "reps": reps,
        "bare_pipeline_cpu_s": cpu["bare"], "generator_cpu_s": cpu["ours"],
        "overhead_pct": 100 * (cpu["ours"] - cpu["bare"]) / cpu["bare"],
        "sequential_cpu_s": cpu["seq"], "batch_speedup": cpu["seq"] / cpu["ours"],
        "first_call_cpu_s": first[1], "cached_call_cpu_s": second[1], "load_cpu_s": first[1] - second[1],
        "first_call_wall_s": first[0], "cached_call_wall_s": second[0],
        "wall_s": wall, "load_average_1min": os.getloadavg()[0],
    }

def _sharpness(image, where) -> float:
    """Variance of the Laplacian of the grey image over ``where`` (higher = more fine detail)."""
    import cv2
    import numpy as np

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F)
    return float(lap[where].var())


def bench_sharpness(model: Path, *, out_side: int = 384, model_side: int = 96, steps: int = 4) -> dict:
    """Background/product sharpness ratio without and with the refine pass at the output size."""
    import numpy as np
    from skimage import data

    from ecomforge.imaging.masks import dilate, erode
    from ecomforge.models import MODEL_CACHE
    from ecomforge.testing import make_reference
    from ecomforge.types import GenerationRequest, Mask, Reference
    from ecomforge_diffusers.generators import SdInpaintGenerator

    MODEL_CACHE.clear()
    _, mask = make_reference(out_side, out_side)
    # a real photograph's texture inside the product, so the product has a photo's detail
    photo = np.ascontiguousarray(data.astronaut()[:out_side, :out_side])
    ref = Reference(photo, "astronaut", "0" * 64, name="astronaut")
    m = Mask(mask.data, dilate=0, feather=2)
    rows = {}
    for label, extra in (("upscaled", {}), ("refined", {"refine_side": out_side}),
                         ("refined-tiled", {"refine_side": out_side, "refine_tile": out_side // 2})):
        gen = SdInpaintGenerator({"model": str(model), "steps": steps, "max_side": model_side, "scheduler": "DDIM",
                                  **extra}, device="cpu")
        cand = gen.generate(GenerationRequest(ref, m, "a product on a table", "", gen.config, (1,)))[0]
        product = erode(mask.data, 6) > 0
        background = dilate(mask.data, 6) == 0
        ratio = _sharpness(cand.image, background) / _sharpness(cand.image, product)
        rows[label] = round(ratio, 4)
    return {"out_side": out_side, "model_side": model_side, "background_over_product_sharpness": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-full", action="store_true", help="Only the tiny model.")
    parser.add_argument("--seeds", type=int, default=4, help="Seeds per batch on the tiny model.")
    parser.add_argument("--full-seeds", type=int, default=2, help="Seeds per batch on the full-size model.")
    parser.add_argument("--size", type=int, default=256, help="Image side for the full-size model.")
    parser.add_argument("--full-dir", default=None, help="Keep the full-size random model here (reused).")
    parser.add_argument("--sharpness-only", action="store_true", help="Only (d), on the tiny model.")
    args = parser.parse_args()
    from ecomforge.testing.tiny_diffusers import build_tiny_pipeline

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_pipeline(Path(tmp) / "tiny", kind="inpaint")
        sharp = bench_sharpness(tiny)
        print(f"background/product sharpness at {sharp['out_side']} px (model at {sharp['model_side']} px): "
              f"{sharp['background_over_product_sharpness']}")
        if args.sharpness_only:
            out = ROOT / "bench" / "results" / "diffusers-sharpness.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(sharp, indent=2))
            print(f"wrote {out}")
            return
        rows.append(bench_model("tiny (random)", tiny, size=128, steps=4, seeds=args.seeds, reps=3))
        if not args.skip_full:
            t0 = time.perf_counter()
            full = build_full_size(Path(args.full_dir) if args.full_dir else Path(tmp) / "full")
            print(f"full-size random model built and saved in {time.perf_counter() - t0:.1f} s")
            rows.append(bench_model("SD-1.5-inpaint size (random)", full, size=args.size, steps=2,
                                    seeds=args.full_seeds, reps=1))
    cols = ["model", "size", "steps", "seeds", "bare_pipeline_cpu_s", "generator_cpu_s", "overhead_pct",
            "sequential_cpu_s", "batch_speedup", "first_call_cpu_s", "cached_call_cpu_s", "load_average_1min"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols))
    out = ROOT / "bench" / "results" / "diffusers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "sharpness": sharp, "cpu_count": os.cpu_count()}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
