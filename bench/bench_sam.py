"""SAM masking speed: k text prompts on one reference with reuse vs recomputation; auto vs boxes mode.

    .venv/bin/python bench/bench_sam.py [--k 3] [--points-per-side 4] [--size 320] [--models tiny,vit_b]
    .venv/bin/python bench/bench_sam.py --models tiny --points-per-side 8 --strategies reuse --tag _pps8

Models have random weights in their genuine formats, loaded through the user path: the tiny SAM
(4.8 M params) with the tiny CLIP, and a full-size ViT-B SAM (``build_sam_vit_b()`` architecture,
91 M params) with a full-size ViT-B-32 open_clip model. Random weights compute exactly as much as
the real ones, so the times are valid; the masks are not (they are written only to check plumbing).
All SAM variants share the same prompt encoder and mask decoder, so the automatic generator's
per-point cost is the same on the tiny model as on vit_b/l/h: only the image encoder differs.

For each model and mode (``auto``: SAM's automatic masks scored by CLIP; ``boxes``: CLIP-scored
windows then one SAM box prompt), the k prompts on one reference are timed, each prompt apart:
  reuse      the plugin as shipped: SAM embedding, proposals and crop embeddings cached;
  embed-only only the SAM image embedding is reused (proposals recomputed per prompt);
  recompute  every cache cleared before each prompt (what a naive per-prompt pipeline does).
The full-size model times only ``reuse`` (to stay within a few minutes on 2 CPU cores): its first
prompt is a cold one, so recomputing per prompt costs k times that. Ratios are within one run.
Caveat: random-weight SAM masks are speckled, which inflates SAM's own run-length encoding in the
automatic generator; with real weights ``auto`` is cheaper than here (``boxes`` is unaffected).
Results: printed, and written to bench/results/sam<TAG>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["a backpack", "a bag", "a red bag", "a product photo", "a rucksack"]


def reference(size: int):
    """A real photo (DreamBooth backpack, CC-BY 4.0) at ``size`` px on its long side."""
    import hashlib

    from PIL import Image

    from ecomforge.types import Reference

    path = ROOT / "samples/dreambench/backpack/00.jpg"
    image = Image.open(path).convert("RGB")
    image.thumbnail((size, size))
    pixels = np.asarray(image).copy()
    return Reference(pixels, str(path), hashlib.sha256(pixels.tobytes()).hexdigest(), name="backpack00")


def build_models(name: str, folder: Path) -> tuple[str, str]:
    """Write SAM and CLIP random-weight models in their genuine formats; return (sam path, clip folder)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from ecomforge.testing.tiny_clip import build_tiny_open_clip
    from ecomforge.testing.tiny_sam import build_tiny_sam

    if name == "tiny":
        return str(build_tiny_sam(folder / "sam")), str(build_tiny_open_clip(folder / "clip"))
    from segment_anything import build_sam_vit_b

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in build_sam_vit_b().state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    sam_path = folder / "sam_vit_b_random.safetensors"
    save_file(state, str(sam_path))
    clip = build_tiny_open_clip(folder / "clip-vit-b-32", model_cfg=open_clip.get_model_config("ViT-B-32"))
    return str(sam_path), str(clip)


def clear_caches(keep_embeddings: bool = False) -> None:
    """Forget cached proposals, crop and text embeddings (and the SAM embeddings unless kept)."""
    from ecomforge_sam.embeddings import EMBEDDINGS
    from ecomforge_sam.proposals import PROPOSALS
    from ecomforge_sam.text_prompted import CROP_EMBEDDINGS
    from ecomforge_sam.text_prompted import TEXTS as TEXT_CACHE

    for cache in (PROPOSALS, CROP_EMBEDDINGS, TEXT_CACHE):
        cache.clear()
    if not keep_embeddings:
        EMBEDDINGS.clear()


def time_prompts(config: dict, ref, texts: list[str], strategy: str) -> tuple[list[float], list]:
    """Seconds for each text's mask of ``ref`` under a cache strategy, and the masks."""
    from ecomforge_sam.text_prompted import SamClipMasker

    maskers = [SamClipMasker({**config, "text": t}, device="cpu") for t in texts]
    for m in maskers:
        m.ensure_setup()  # model loading is not part of the per-reference time
    clear_caches()
    times, masks = [], []
    for m in maskers:
        if strategy == "recompute":
            clear_caches()
        elif strategy == "embed-only":
            clear_caches(keep_embeddings=True)
        t0 = time.perf_counter()
        masks.append(m.mask(ref))
        times.append(time.perf_counter() - t0)
    return times, masks


def save_overlay(ref, mask, path: Path) -> None:
    """The reference with the mask tinted, to look at."""
    from PIL import Image

    out = ref.image.astype(np.float32)
    inside = mask.data > 0
    out[inside] = 0.5 * out[inside] + 0.5 * np.array([255, 0, 80])
    Image.fromarray(out.astype(np.uint8)).save(path)


def main() -> None:
    """Run the benchmark and print a table of times and ratios."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=3, help="text prompts per reference")
    ap.add_argument("--points-per-side", type=int, default=4)
    ap.add_argument("--size", type=int, default=320, help="reference long side in px")
    ap.add_argument("--models", default="tiny,vit_b")
    ap.add_argument("--tag", default="", help="suffix of the results file (bench/results/sam<TAG>.json)")
    ap.add_argument("--strategies", default="reuse,embed-only,recompute",
                    help="which cache strategies to time on the tiny model (the full-size one always "
                         "times only reuse; its recompute total is k x its measured first prompt)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from ecomforge.models import MODEL_CACHE

    ref = reference(args.size)
    texts = TEXTS[:args.k]
    results: dict[str, dict] = {}
    looks = Path(tempfile.gettempdir()) / "ecomforge-bench-sam"  # overlays to look at, not results to keep
    looks.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            results[name] = _model_row(name, Path(tmp) / name, args, ref, texts, looks)
            MODEL_CACHE.clear()
            clear_caches()
    info = {"k": args.k, "points_per_side": args.points_per_side, "reference": f"{ref.size[0]}x{ref.size[1]}",
            "torch_threads": torch.get_num_threads(), "results": results}
    _save(info, results, args.tag)
    print(f"\nk={args.k} prompts on one {info['reference']} reference, points_per_side={args.points_per_side}, "
          f"CPU threads={info['torch_threads']}")
    for name, row in results.items():
        ratios = ", ".join(f"{k} {v:.1f}x" for k, v in row.items() if ":" in k or "(" in k)
        print(f"  {name:6s} {ratios}")


def _model_row(name: str, folder: Path, args: argparse.Namespace, ref, texts: list[str], looks: Path) -> dict:
    """Times and ratios of one model size: both modes, each cache strategy asked for."""
    t0 = time.perf_counter()
    sam_path, clip_path = build_models(name, folder)
    print(f"[{name}] built random-weight models in {time.perf_counter() - t0:.1f}s", flush=True)
    base = {"model": sam_path, "clip_model": clip_path, "min_score": -1.0, "min_area": 0.01,
            "points_per_side": args.points_per_side, "points_per_batch": 64,
            # random weights never pass SAM's quality bars; keep every proposal so the work is real
            "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    strategies = args.strategies.split(",") if name == "tiny" else ["reuse"]
    row: dict[str, float] = {}
    for mode in ("auto", "boxes"):
        for strategy in strategies:
            times, masks = time_prompts({**base, "mode": mode}, ref, texts, strategy)
            row[f"{mode}/{strategy}"] = sum(times)
            print(f"[{name}] {mode:5s} {strategy:10s} {sum(times):7.2f}s for {len(texts)} prompts "
                  f"({', '.join(f'{t:.2f}' for t in times)})", flush=True)
            if strategy == "reuse":
                # A cold prompt is what every prompt costs without reuse: the recompute total
                # follows from the measured first prompt when the recompute runs are skipped.
                row[f"{mode}/first prompt"] = times[0]
                row[f"{mode}/later prompt"] = sum(times[1:]) / max(1, len(times) - 1)
        save_overlay(ref, masks[0], looks / f"sam{args.tag}_{name}_{mode}.png")
        _mode_ratios(row, mode, len(texts))
    row["auto/boxes (first prompt)"] = row["auto/first prompt"] / row["boxes/first prompt"]
    row["auto/boxes (k prompts, reuse)"] = row["auto/reuse"] / row["boxes/reuse"]
    return row


def _mode_ratios(row: dict[str, float], mode: str, k: int) -> None:
    """Add one mode's ratios to its timed row: recompute/reuse, first/later prompt, embed-only/reuse."""
    recompute = row.get(f"{mode}/recompute", k * row[f"{mode}/first prompt"])
    row[f"{mode}: recompute/reuse"] = recompute / row[f"{mode}/reuse"]
    row[f"{mode}: first/later prompt"] = row[f"{mode}/first prompt"] / row[f"{mode}/later prompt"]
    if f"{mode}/embed-only" in row:
        row[f"{mode}: embed-only/reuse"] = row[f"{mode}/embed-only"] / row[f"{mode}/reuse"]


def _save(info: dict, results: dict, tag: str) -> None:
    """Write bench/results/sam<TAG>.json, keeping other models' rows from an earlier run with the same settings."""
    out_dir = ROOT / "bench/results"
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = out_dir / f"sam{tag}.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        if all(old.get(k) == info[k] for k in ("k", "points_per_side", "reference")):
            info["results"] = {**old.get("results", {}), **results}
    previous.write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
