"""Validation images at checkpoints (scored with the project's scorers), class images, the loss curve."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ecomforge.errors import RecipeError
from ecomforge.imaging.io import atomic_write_bytes, save_png
from ecomforge.types import Candidate, Mask, Reference, ScoringContext

from .config import PluginSpec, TrainConfig
from .data import IMAGE_EXTENSIONS


def build_pipeline(parts: Any, *, lora: bool = True) -> Any:
    """A diffusers pipeline around the training parts (the UNet keeps its LoRA unless ``lora`` is false)."""
    import diffusers

    cls = "StableDiffusionInpaintPipeline" if parts.inpaint else "StableDiffusionPipeline"
    scheduler = diffusers.DDIMScheduler.from_config(parts.noise_scheduler.config)
    pipe = getattr(diffusers, cls)(vae=parts.vae, text_encoder=parts.text_encoder, tokenizer=parts.tokenizer,
                                   unet=parts.unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(parts: Any, prompt: str, *, count: int, size: int, steps: int, guidance: float, seed: int,
             init: np.ndarray | None = None) -> list[np.ndarray]:
    """``count`` images (RGB uint8) from the prompt; an inpainting model repaints the whole ``init`` image."""
    import torch

    pipe = build_pipeline(parts)
    was_training = parts.unet.training
    parts.unet.eval()
    out = []
    try:
        for i in range(count):
            kw: dict[str, Any] = {"prompt": prompt, "num_inference_steps": steps, "guidance_scale": guidance,
                                  "height": size, "width": size, "output_type": "np",
                                  "generator": torch.Generator().manual_seed(seed + i)}
            if parts.inpaint:
                # a full mask: the product has to come from the prompt, which is what the LoRA learnt
                base = init if init is not None else np.full((size, size, 3), 127, np.uint8)
                kw["image"] = Image.fromarray(base).resize((size, size))
                kw["mask_image"] = Image.new("L", (size, size), 255)
            with torch.no_grad():
                image = pipe(**kw).images[0]
            out.append((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
    finally:
        parts.unet.train(was_training)
    return out


def default_scorers(registry: Any) -> list[PluginSpec]:
    """'color' when it is installed (it needs no weights), else nothing."""
    return [PluginSpec(plugin="color")] if "color" in registry.plugins["scorer"] else []


def make_scorers(specs: Sequence[PluginSpec] | None, registry: Any) -> list[tuple[str, Any]]:
    """Instantiate (and validate) the scorers up front, so a bad name fails before training starts."""
    specs = default_scorers(registry) if specs is None else specs
    out = []
    for i, spec in enumerate(specs):
        try:
            scorer = registry.create("scorer", spec.plugin, spec.config, path=f"validation.scorers.{i}.config")
        except RecipeError:
            raise
        except Exception as exc:  # PluginNotFound carries a pip-install / did-you-mean hint
            raise RecipeError(f"validation.scorers.{i}.plugin", f"unknown scorer {spec.plugin!r}",
                              hint=getattr(exc, "hint", None)) from exc
        out.append((spec.plugin, scorer))
    return out


def validate(parts: Any, config: TrainConfig, step: int, output_dir: Path, scorers: list[tuple[str, Any]],
             references: Sequence[Reference], masks: Sequence[Mask]) -> dict[str, Any] | None:
    """Generate, save and score the validation images of one checkpoint; returns the log record."""
    v = config.validation
    if not v.num_images:
        return None
    prompt = v.prompt or config.instance_prompt
    init = references[0].image if references else None
    images = generate(parts, prompt, count=v.num_images, size=config.resolution, steps=v.steps,
                      guidance=v.guidance_scale, seed=config.seed, init=init)
    folder = Path(output_dir) / "validation" / f"step-{step:06d}"
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:02d}.png"
        save_png(path, image, {"parameters": f"{prompt}\nSteps: {v.steps}, Seed: {config.seed + i}, "
                                               f"CFG scale: {v.guidance_scale}, LoRA step: {step}"})
        paths.append(str(path.relative_to(output_dir)))
    scores: dict[str, float] = {}
    if scorers and references:
        cands = [Candidate(image=im, seed=config.seed + i, params={"step": step}, plugin="ecomforge-train")
                 for i, im in enumerate(images)]
        context = ScoringContext(references=tuple(references), masks=tuple(masks), prompt=prompt)
        for name, scorer in scorers:
            scorer.ensure_setup()
            values = scorer.score(cands, context)
            scores[name] = round(float(np.mean(values)), 4)
    return {"images": paths, "scores": scores}


def class_images(parts: Any, config: TrainConfig, folder: Path, echo: Any = None) -> list[Path]:
    """The class images for prior preservation: those in ``folder``, topped up by the base model."""
    folder.mkdir(parents=True, exist_ok=True)
    have = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    missing = config.num_class_images - len(have)
    if missing > 0:
        if echo:
            echo(f"generating {missing} class images with the base model into {folder}")
        images = generate(parts, config.class_prompt or "", count=missing, size=config.resolution,
                          steps=config.validation.steps, guidance=config.validation.guidance_scale,
                          seed=config.seed + 10_000 + len(have))
        for i, image in enumerate(images):
            save_png(folder / f"class-{len(have) + i:05d}.png", image, {"parameters": config.class_prompt or ""})
        have = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    return have[: config.num_class_images]


def plot_loss(log_path: Path, out_png: Path, *, size: tuple[int, int] = (720, 360)) -> Path | None:
    """Draw the loss per step and its moving average as a PNG (PIL only, no matplotlib)."""
    points = []
    for line in Path(log_path).read_text(encoding="utf-8").splitlines():
        rec = json.loads(line) if line.strip() else {}
        if "loss" in rec:
            points.append((rec["step"], rec["loss"]))
    if not points:
        return None
    w, h = size
    left, right, top, bottom = 60, 20, 20, 40
    steps = np.array([p[0] for p in points], float)
    losses = np.array([p[1] for p in points], float)
    k = max(1, len(losses) // 20)
    smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
    lo, hi = float(losses.min()), float(losses.max())
    hi = hi if hi > lo else lo + 1e-6
    s0, s1 = float(steps.min()), float(max(steps.max(), steps.min() + 1))

    def xy(s: float, v: float) -> tuple[float, float]:
        return (left + (s - s0) / (s1 - s0) * (w - left - right), top + (hi - v) / (hi - lo) * (h - top - bottom))

    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([left, top, w - right, h - bottom], outline=(160, 160, 160))
    draw.line([xy(s, v) for s, v in zip(steps, losses)], fill=(150, 180, 230), width=1)
    if len(smooth) > 1:
        draw.line([xy(s, v) for s, v in zip(steps[k - 1:], smooth)], fill=(20, 60, 160), width=2)
    draw.text((4, top), f"{hi:.4f}", fill="black")
    draw.text((4, h - bottom - 10), f"{lo:.4f}", fill="black")
    draw.text((left, h - bottom + 8), f"step {int(s0)}", fill="black")
    draw.text((w - right - 80, h - bottom + 8), f"step {int(s1)}", fill="black")
    draw.text((left + 10, h - 18), f"training loss (light) and its {k}-step mean (dark)", fill="black")
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(out_png, buf.getvalue())
    return out_png
