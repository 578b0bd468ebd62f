"""LoRA training speed and peak memory: the tiny test pipeline and a full-size SD-1.5 UNet (random weights).

Each configuration runs in its own subprocess so that ru_maxrss (the process's peak RSS) belongs to it.
Tiny rows use one CPU thread, full-size rows torch's default. CPU rows always; CUDA rows (torch.cuda.max_memory_allocated, fp16 autocast) only when CUDA is available.

    .venv/bin/python bench/bench_train.py                 # everything (about 5 min on 2 busy cores)
    .venv/bin/python bench/bench_train.py --only tiny     # just the tiny pipeline rows

The full-size rows time the UNet step (forward, backward, AdamW on the LoRA): the VAE encode and the text
encoder run without gradients and are left out there; the tiny rows run the whole training step.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SD15_UNET = dict(sample_size=64, in_channels=9, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)


def rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tiny(device: str, checkpointing: bool, steps: int, resolution: int) -> dict:
    """The real training step (VAE, text encoder, UNet + LoRA) on the tiny inpainting pipeline."""
    import numpy as np
    import torch

    from ecomforge.testing.tiny_diffusers import build_tiny_pipeline
    from ecomforge_train.config import TrainConfig
    from ecomforge_train.data import Example, sample_batch, to_tensors
    from ecomforge_train.engine import LoraEngine

    torch.set_num_threads(1)  # a tiny model only oversubscribes more threads (see ENVIRONMENT.md: shared cores)
    base = build_tiny_pipeline(Path(tempfile.gettempdir()) / "ecomforge-bench-train-tiny", kind="inpaint")
    cfg = TrainConfig(base_model=str(base), instance_prompt="a photo of sks cup", steps=steps, resolution=resolution,
                      rank=8, gradient_checkpointing=checkpointing, validation={"num_images": 0})
    engine = LoraEngine(cfg, device=device)
    engine.add_lora()
    est = engine.memory_estimate()
    rng = np.random.default_rng(0)
    items = to_tensors([Example(rng.integers(0, 255, (resolution, resolution, 3), np.uint8), "a photo of sks cup")],
                       resolution)
    before = rss_mib()

    def one() -> None:
        batch = sample_batch(items, 1, resolution, engine.gen, flip=True, crop_scale=0.8, inpaint=True,
                             product_mask_prob=0.5)
        engine.step(batch)

    return _time(one, steps, device, before, est)


def full_unet(device: str, checkpointing: bool, steps: int, resolution: int) -> dict:
    """One LoRA step of an SD-1.5-sized 9-channel UNet (860 M params, random init) at ``resolution``."""
    import torch
    import torch.nn.functional as F
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig

    from ecomforge_train.model import UNET_TARGETS, Parts, estimate_memory

    torch.manual_seed(0)
    dtype = torch.float16 if device == "cuda" else torch.float32
    unet = UNet2DConditionModel(**SD15_UNET).to(device, dtype)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=8, lora_alpha=8, init_lora_weights="gaussian", target_modules=UNET_TARGETS + ["conv_in"]))
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    if checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    opt = torch.optim.AdamW(params, lr=1e-4)
    empty = torch.nn.Linear(1, 1)
    est = estimate_memory(Parts(unet, empty, empty, None, None, Path("."), "", True), batch=1, resolution=resolution,
                          weight_bytes=dtype.itemsize, checkpointing=checkpointing, eight_bit=False)
    side = resolution // 8
    gen = torch.Generator().manual_seed(0)
    before = rss_mib()

    def one() -> None:
        x = torch.randn(1, 9, side, side, generator=gen).to(device, dtype)
        states = torch.randn(1, 77, 768, generator=gen).to(device, dtype)
        noise = torch.randn(1, 4, side, side, generator=gen).to(device)
        t = torch.randint(0, 1000, (1,), generator=gen).to(device)
        with torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
            pred = unet(x, t, states).sample
        F.mse_loss(pred.float(), noise).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return _time(one, steps, device, before, est)


def _time(one, steps: int, device: str, rss_before: float, est: dict) -> dict:
    import torch

    one()  # warm-up step (allocations, kernels) is not timed
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    if device == "cuda":
        torch.cuda.synchronize()
    took = time.perf_counter() - start
    out = {"steps_per_s": steps / took, "s_per_step": took / steps, "peak_rss_mib": rss_mib(),
           "rss_before_steps_mib": rss_before, "estimate_gib": round(est["total_gib"], 3),
           "estimate_activations_gib": round(est["activations_gib"], 3)}
    if device == "cuda":
        out["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


ROWS = [  # (model, device, gradient checkpointing, timed steps, resolution)
    ("tiny", "cpu", False, 10, 128), ("tiny", "cpu", True, 10, 128),
    ("full", "cpu", False, 1, 256), ("full", "cpu", True, 1, 256),
    ("tiny", "cuda", False, 50, 128), ("full", "cuda", False, 10, 512), ("full", "cuda", True, 10, 512),
]


def main() -> None:
    """Run every row in a subprocess and print a table (and JSON lines with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["tiny", "full"])
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="Also print one JSON object per row.")
    args = ap.parse_args()
    if args.one:
        model, device, ckpt, steps, res = json.loads(args.one)
        fn = tiny if model == "tiny" else full_unet
        print(json.dumps(fn(device, ckpt, steps, res)))
        return
    import torch

    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, load average "
          f"{os.getloadavg()[0]:.1f}, CUDA {'yes: ' + torch.cuda.get_device_name() if cuda else 'no'}")
    print(f"{'model':6} {'device':6} {'ckpt':5} {'res':>4} {'steps/s':>8} {'s/step':>7} {'peak RSS MiB':>12} "
          f"{'+during steps':>13} {'CUDA MiB':>9} {'estimate GiB':>12}")
    for row in ROWS:
        model, device, ckpt, steps, res = row
        if (device == "cuda" and not cuda) or (args.only and model != args.only):
            continue
        proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(row)], capture_output=True, text=True)
        if proc.returncode:
            print(f"{model} {device} ckpt={ckpt}: failed: {proc.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        cuda_mib = f"{r['cuda_max_allocated_mib']:.0f}" if "cuda_max_allocated_mib" in r else "-"
        print(f"{model:6} {device:6} {str(ckpt):5} {res:>4} {r['steps_per_s']:>8.3f} {r['s_per_step']:>7.3f} "
              f"{r['peak_rss_mib']:>12.0f} {r['peak_rss_mib'] - r['rss_before_steps_mib']:>13.0f} {cuda_mib:>9} "
              f"{r['estimate_gib']:>12.3f}")
        if args.json:
            print(json.dumps({"model": model, "device": device, "checkpointing": ckpt, "resolution": res, **r}))


if __name__ == "__main__":
    main()
