"""What a candidate records about how it was made: AUTOMATIC1111 infotext fields and what re-creating it needs.

Models and LoRAs are recorded by name and hash, never by local path: ``Model hash`` is
A1111's short hash (the first 10 hex digits of the file's sha256; for a diffusers folder, of
its UNet weights), ``Lora hashes`` the first 12 of the sha256 of a safetensors file's tensor
data (the "addnet" hash A1111 and civitai match LoRAs by).
"""
from __future__ import annotations

import functools
import hashlib
import struct
from pathlib import Path
from typing import Any

from ecomforge.imaging.infotext import public_name
from ecomforge.types import GenerationRequest

from .schedulers import a1111_sampler

__all__ = ["a1111_fields", "lora_name", "model_hash", "lora_hash", "public_name", "reproduce_info"]

DEFAULT_LORA_NAMES = {"pytorch_lora_weights", "lora", "adapter_model"}
"""File names trainers give every LoRA (diffusers, ecomforge train, peft): they say nothing of which LoRA it is."""


def lora_name(path: str) -> str:
    """A LoRA's name for the infotext: its file's name, or its folder's where the file has a trainer's default
    name (every LoRA ``ecomforge train`` makes is ``<output>/pytorch_lora_weights.safetensors``)."""
    name = public_name(path)
    local = Path(path).expanduser()
    if name in DEFAULT_LORA_NAMES and local.is_file() and local.parent.name:
        return public_name(str(local.parent.resolve()))
    if local.is_dir() and (local / "pytorch_lora_weights.safetensors").is_file():
        return public_name(str(local.resolve()))
    return name


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int, skip: int = 0) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(skip)
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_sha256(path: Path, skip: int = 0) -> str:
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns, skip)


def model_hash(model: str) -> str | None:
    """A1111's short model hash of a single file, a folder's UNet weights, or a cached hub repo's UNet."""
    from .loading import resolve_model

    kind, path = resolve_model(model)
    if kind == "file":
        return _file_sha256(path)[:10]
    if kind == "folder":
        weights = sorted((path / "unet").glob("*.safetensors"))
        return _file_sha256(weights[0])[:10] if weights else None
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(model, "unet/diffusion_pytorch_model.safetensors")
    return _file_sha256(Path(hit))[:10] if isinstance(hit, str) else None


def lora_hash(path: Path) -> str:
    """The addnet hash: sha256 of a safetensors file after its JSON header (metadata edits do not change it)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return _file_sha256(path)[:12] if path.is_file() else ""
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
    return _file_sha256(path, skip=8 + size)[:12]


def _lora_file(path: str) -> Path:
    """The weights file of a LoRA path (a folder: its pytorch_lora_weights.safetensors, as the loader picks)."""
    local = Path(path).expanduser()
    if local.is_dir():
        found = [local / "pytorch_lora_weights.safetensors"] + sorted(local.glob("*.safetensors"))
        return next((f for f in found if f.is_file()), local)
    return local


def a1111_fields(cfg: Any, loaded: Any, request: GenerationRequest, seed: int,
                 size: tuple[int, int]) -> dict[str, Any]:
    """{"fields": the infotext fields in A1111's order, "loras": [[name, weight], ...]} for one candidate."""
    sampler, schedule = a1111_sampler(cfg.scheduler)
    loras = [[lora_name(spec.path), spec.scale] for spec in cfg.loras]
    lora_hashes = ", ".join(f"{lora_name(spec.path)}: {lora_hash(_lora_file(spec.path))}" for spec in cfg.loras)
    fields: dict[str, Any] = {
        "Steps": cfg.steps, "Sampler": sampler, "Schedule type": schedule, "CFG scale": cfg.guidance_scale,
        "Seed": seed, "Size": f"{size[0]}x{size[1]}", "Model hash": model_hash(cfg.model),
        "Model": public_name(cfg.model), "Denoising strength": cfg.strength,
        "Mask blur": request.mask.feather if request.mask is not None else None,
        "Lora hashes": lora_hashes or None,
        "IP Adapter": public_name(cfg.ip_adapter) if cfg.ip_adapter else None,
    }
    return {"fields": {k: v for k, v in fields.items() if v is not None}, "loras": loras}


def reproduce_info(pipe: Any, request: GenerationRequest, seeds: list[int], device: str) -> dict[str, Any]:
    """What re-creating the pixels needs beyond the config and seed: mask band, batch, device, dtypes, versions."""
    import diffusers
    import torch
    import transformers

    from . import __version__

    return {
        "mask_dilate": request.mask.dilate if request.mask is not None else 0,
        "mask_feather": request.mask.feather if request.mask is not None else 0,
        "batch_seeds": list(seeds), "device": device,
        "dtype": str(pipe.unet.dtype).removeprefix("torch."), "vae_dtype": str(pipe.vae.dtype).removeprefix("torch."),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "ecomforge-diffusers": __version__},
    }
