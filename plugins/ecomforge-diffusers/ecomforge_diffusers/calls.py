"""One batched pipeline call: latents out, our own decode (NaN/black checks, fp32 VAE retry), OOM fallbacks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecomforge.run import cancel

from .imageops import failure_reason
from .schedulers import make_scheduler


@dataclass
class CallResult:
    """Float [0,1] H×W×3 images in seed order, a failure reason per image, and notes for Candidate.info."""

    images: list[np.ndarray]
    failed: list[str | None]
    info: dict[str, Any] = field(default_factory=dict)


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _decode(pipe: Any, latents: Any) -> np.ndarray:
    import torch

    vae = getattr(pipe, "ecomforge_preview_vae", None) or pipe.vae
    with torch.no_grad():
        image = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(image.float(), output_type="np",
                                            do_denormalize=[True] * image.shape[0])


def _stop_if_cancelled(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
    """diffusers' per-step callback: raising here stops the denoising loop of a cancelled run mid-call."""
    cancel.check()
    return tensors


def _vae_encode(pipe: Any, pixels: Any) -> Any:
    """Scaled VAE latents of [-1, 1] pixels: the distribution's mode, so no generator is consumed."""
    import torch

    vae = pipe.vae
    with torch.no_grad():
        latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
    return latents * vae.config.scaling_factor


def _call(pipe: Any, cfg: Any, embeds: Any, negative: Any, images: list[np.ndarray], mask: np.ndarray | None,
          seeds: list[int], strength: float, size: tuple[int, int], steps: int,
          image_prompt: np.ndarray | None) -> Any:
    """The pipeline call for one batch of seeds; returns latents.

    We encode the init (and masked) image ourselves, once per distinct image rather than once per
    seed, and with the latent mode instead of a sample: the pipeline would otherwise draw that
    sample from the first seed's generator, so a seed's pixels would depend on its batch.
    """
    import torch
    from PIL import Image

    n = len(seeds)
    distinct = images[:1] if all(i is images[0] for i in images) else images
    pixels = pipe.image_processor.preprocess([Image.fromarray(i) for i in distinct], height=size[1], width=size[0])

    def per_seed(latents: Any) -> Any:
        return latents.repeat(n // latents.shape[0], 1, 1, 1)

    kwargs: dict[str, Any] = {
        "num_inference_steps": steps, "guidance_scale": cfg.guidance_scale, "strength": strength,
        "output_type": "latent",
        # CPU generators give the same starting noise on every device for a given seed
        "generator": [torch.Generator("cpu").manual_seed(s) for s in seeds],
        "callback_on_step_end": _stop_if_cancelled,  # a cancel lands within one step, not one batch
    }
    if isinstance(embeds, str):  # SDXL: the pipeline encodes the text with both its encoders
        kwargs.update(prompt=[embeds] * n, negative_prompt=[negative] * n)
    else:
        kwargs.update(prompt_embeds=embeds.repeat(n, 1, 1), negative_prompt_embeds=negative.repeat(n, 1, 1))
    if image_prompt is not None:  # IP-Adapter: the pipeline repeats its embedding for the batch
        kwargs["ip_adapter_image"] = Image.fromarray(image_prompt)
    # a 9-channel inpainting UNet at strength 1 starts from pure noise and never needs the image latents
    pure_noise = mask is not None and strength >= 1.0 and pipe.unet.config.in_channels != 4
    kwargs["image"] = Image.fromarray(distinct[0]) if pure_noise and len(distinct) == 1 else (
        [Image.fromarray(i) for i in distinct] if pure_noise else per_seed(_vae_encode(pipe, pixels)))
    if mask is not None:
        mask_t = pipe.mask_processor.preprocess(Image.fromarray(mask), height=size[1], width=size[0])
        kwargs.update(mask_image=Image.fromarray(mask), width=size[0], height=size[1],
                      masked_image_latents=per_seed(_vae_encode(pipe, pixels * (mask_t < 0.5))))
    pipe.scheduler = make_scheduler(cfg.scheduler, pipe.scheduler.config)
    with torch.no_grad():
        return pipe(**kwargs).images


def run_pipeline(pipe: Any, cfg: Any, embeds: Any, negative: Any, images: list[np.ndarray],
                 mask: np.ndarray | None, seeds: list[int], *, strength: float, size: tuple[int, int],
                 steps: int | None = None, image_prompt: np.ndarray | None = None) -> CallResult:
    """Generate every seed in one call; on OOM halve the batch, then try VAE tiling + attention slicing."""
    def call(idx: list[int]) -> Any:  # the seeds at these indexes, in one pipeline call
        return _call(pipe, cfg, embeds, negative, [images[i] for i in idx], mask,
                     [seeds[i] for i in idx], strength, size, steps or cfg.steps, image_prompt)

    info: dict[str, Any] = {}
    base_scheduler = pipe.scheduler
    memory = _MemoryFallback(pipe, info)
    try:
        latents = _all_latents(call, len(seeds), memory)
        decoded, failed = [], []
        for i in range(len(seeds)):
            cancel.check()  # a big batch decodes one image after the other
            image, reason = _decode_checked(pipe, cfg, latents[i], size, info)
            decoded.append(image)
            failed.append(reason)
    finally:
        pipe.scheduler = base_scheduler  # the cached pipeline keeps the model's own scheduler
        memory.undo()
    return CallResult(decoded, failed, info)


class _MemoryFallback:
    """What run_pipeline does on out-of-memory: halve the batch, then (once) VAE tiling + attention slicing."""

    def __init__(self, pipe: Any, info: dict[str, Any]) -> None:
        self.pipe, self.info = pipe, info
        self.saving = False  # tiling and slicing are on, to be turned off after the call

    def retry(self, exc: BaseException, idx: list[int], batches: list[list[int]]) -> None:
        """Queue ``idx`` again in a form that needs less memory, or re-raise ``exc`` if nothing is left to try."""
        import torch

        if not _is_oom(exc):
            raise exc
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(idx) > 1:
            half = len(idx) // 2
            batches[:0] = [idx[:half], idx[half:]]
            self.info.setdefault("oom_retries", []).append(f"batch {len(idx)} -> {half}")
            return
        if self.saving:
            raise exc
        self.saving = True
        self.pipe.vae.enable_tiling()
        self.pipe.enable_attention_slicing()
        self.info.setdefault("oom_retries", []).append("vae tiling + attention slicing")
        batches.insert(0, idx)

    def undo(self) -> None:
        """Turn tiling and slicing off again if an out-of-memory retry turned them on."""
        if self.saving:
            self.pipe.vae.disable_tiling()
            self.pipe.disable_attention_slicing()


def _all_latents(call: Any, n: int, memory: _MemoryFallback) -> dict[int, Any]:
    """Latents of all ``n`` seeds by index, from one batched call (smaller ones after an OOM)."""
    import torch

    batches = [list(range(n))]
    latents: dict[int, Any] = {}
    while batches:
        idx = batches.pop(0)
        cancel.check()
        try:
            out = call(idx)
        except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
            memory.retry(exc, idx, batches)
            continue
        for j, i in enumerate(idx):
            latents[i] = out[j:j + 1]
    return latents


def _decode_checked(pipe: Any, cfg: Any, lat: Any, size: tuple[int, int],
                    info: dict[str, Any]) -> tuple[np.ndarray, str | None]:
    """One seed's image and its failure reason (None when good); a failed fp16 decode is retried in fp32."""
    import torch

    if not torch.isfinite(lat).all():
        return np.zeros((size[1], size[0], 3), np.float32), "NaN or inf in the latents (UNet output)"
    image = _decode(pipe, lat)[0]
    reason = failure_reason(image)
    if reason and cfg.fp32_vae_retry and pipe.vae.dtype != torch.float32:
        dtype = pipe.vae.dtype
        pipe.vae.to(torch.float32)
        try:
            image = _decode(pipe, lat.float())[0]
        finally:
            pipe.vae.to(dtype)
        info["vae_fp32_retry"] = True
        reason = failure_reason(image)
    return image, reason
