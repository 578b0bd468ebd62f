"""Loading the base model's parts for training, adding LoRA adapters, and estimating memory."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecomforge.errors import InputError, ModelNotFound
from ecomforge.models import models_dir, offline

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
# SD-1.x / 2.x pipelines only: SDXL has two text encoders and other conditioning
SD_PIPELINES = {"StableDiffusionPipeline", "StableDiffusionInpaintPipeline", "StableDiffusionImg2ImgPipeline"}


@dataclass
class Parts:
    """The frozen base model, the UNet carrying the LoRA, and what the training step needs to know."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    noise_scheduler: Any
    folder: Path
    pipeline_class: str
    inpaint: bool


def resolve_base_model(model: str) -> Path:
    """The local diffusers folder of ``base_model`` (a folder, ~/.cache/ecomforge/models/ID, or the HF cache)."""
    path = Path(model).expanduser()
    key = "base_model"
    if path.is_file():
        raise InputError(f"{key}: {path} is a single file; training needs a diffusers folder "
                         "(convert it with diffusers' convert_original_stable_diffusion_to_diffusers.py)")
    if path.is_dir():
        return path
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise InputError(f"{key}: model path {model} does not exist")
    if (models_dir() / model / "model_index.json").exists():
        return models_dir() / model
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception as exc:  # not in the cache: download unless offline
        if offline():
            raise ModelNotFound(f"{key}: model '{model}' is not downloaded and downloads are off (HF_HUB_OFFLINE)",
                                hint=f"run `ecomforge models pull {model}` while online") from exc
    try:
        return Path(snapshot_download(model, allow_patterns=["*.json", "*.txt", "*.safetensors"],
                                      ignore_patterns=["*.fp16.safetensors", "*non_ema*", "*.ckpt"]))
    except Exception as exc:  # network or unknown repo: one line naming the id
        raise ModelNotFound(f"{key}: cannot download '{model}' ({type(exc).__name__})") from exc


def check_diffusion_folder(folder: Path) -> str:
    """The pipeline class of a Stable Diffusion folder, or InputError saying why it is not one."""
    index = folder / "model_index.json"
    if not index.is_file():
        raise InputError(f"base_model: {folder} has no model_index.json (not a diffusion model folder)")
    try:
        cls = json.loads(index.read_text())["_class_name"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"base_model: {index} is not a diffusers model index") from exc
    if cls not in SD_PIPELINES:
        raise InputError(f"base_model: {folder} holds a {cls}; training supports SD-1.x/2.x pipelines "
                         f"({', '.join(sorted(SD_PIPELINES))})")
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        if not (folder / part).is_dir():
            raise InputError(f"base_model: {folder} has no {part}/ folder")
    return cls


def preflight(model: str, variant: str) -> tuple[Path, bool]:
    """Check the base model without loading weights: (its folder, whether it is an inpainting model)."""
    folder = resolve_base_model(model)
    check_diffusion_folder(folder)
    try:
        in_ch = json.loads((folder / "unet" / "config.json").read_text())["in_channels"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"base_model: {folder / 'unet' / 'config.json'} is missing or not a UNet config") from exc
    if in_ch not in (4, 9):
        raise InputError(f"base_model: {folder} has a UNet with {in_ch} input channels (expected 4 or 9)")
    inpaint = in_ch == 9
    if variant == "inpaint" and not inpaint:
        raise InputError(f"variant: inpaint needs an inpainting base model (9-channel UNet); {folder} has 4 channels")
    if variant == "txt2img" and inpaint:
        raise InputError(f"variant: txt2img needs a text-to-image base model; {folder} is an inpainting model")
    return folder, inpaint


def load_parts(model: str, *, device: str, weight_dtype: Any, variant: str) -> Parts:
    """Load the UNet, VAE, text encoder, tokenizer and DDPM noise scheduler, frozen, on ``device``."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder, inpaint = preflight(model, variant)
    cls = check_diffusion_folder(folder)
    try:
        unet = UNet2DConditionModel.from_pretrained(str(folder / "unet"), torch_dtype=weight_dtype)
        vae = AutoencoderKL.from_pretrained(str(folder / "vae"), torch_dtype=weight_dtype)
        text_encoder = CLIPTextModel.from_pretrained(str(folder / "text_encoder"), dtype=weight_dtype)
        tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
        noise_scheduler = DDPMScheduler.from_pretrained(str(folder / "scheduler"))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"base_model: cannot load {folder} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from exc
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
        module.eval()
    for module in (unet, vae, text_encoder):
        module.to(device)
    return Parts(unet, vae, text_encoder, tokenizer, noise_scheduler, folder, cls, inpaint)


def add_lora(parts: Parts, *, rank: int, alpha: float | None, text_encoder: bool, seed: int) -> list[Any]:
    """Add LoRA adapters (float32, seeded init) and return the trainable parameters.

    The inpainting variant also adapts ``conv_in``, which reads the mask and masked-image channels:
    the LoRA then only fits a 9-channel UNet, so loading it into a text-to-image pipeline fails
    loudly instead of silently applying half a LoRA.
    """
    import torch
    from peft import LoraConfig

    targets = UNET_TARGETS + (["conv_in"] if parts.inpaint else [])
    torch.manual_seed(seed)  # peft draws the A matrices from the global RNG
    parts.unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian",
                                      target_modules=targets))
    if text_encoder:
        parts.text_encoder.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian",
                                                  target_modules=TEXT_TARGETS))
    params = []
    for module in (parts.unet, parts.text_encoder):
        for p in module.parameters():
            if p.requires_grad:
                p.data = p.data.float()  # trainable weights stay float32 under mixed precision
                params.append(p)
    return params


def lora_state(parts: Parts) -> dict[str, Any]:
    """The LoRA weights in diffusers key layout (``unet.*`` / ``text_encoder.*``), as saved to disk."""
    from peft.utils import get_peft_model_state_dict

    state = {f"unet.{k}": v for k, v in _diffusers_keys(get_peft_model_state_dict(parts.unet)).items()}
    if getattr(parts.text_encoder, "peft_config", None):
        text = _diffusers_keys(get_peft_model_state_dict(parts.text_encoder))
        state.update({f"text_encoder.{k}": v for k, v in text.items()})
    return state


def _diffusers_keys(peft_state: dict[str, Any]) -> dict[str, Any]:
    """``convert_state_dict_to_diffusers``, plus the keys it leaves in PEFT form (``conv_in.lora_A``).

    One file must not mix the two layouts: diffusers takes a file holding any ``lora_A`` key for a
    PEFT file and then silently skips every ``lora.down`` key, i.e. all attention LoRAs.
    """
    from diffusers.utils import convert_state_dict_to_diffusers

    out = {}
    for key, value in convert_state_dict_to_diffusers(peft_state).items():
        out[key.replace(".lora_A.", ".lora.down.").replace(".lora_B.", ".lora.up.")] = value
    return out


def lora_named_params(parts: Parts) -> dict[str, Any]:
    """Every trainable LoRA parameter by a stable name (for checkpoints and exact resume)."""
    named = {}
    for prefix, module in (("unet", parts.unet), ("text_encoder", parts.text_encoder)):
        for name, p in module.named_parameters():
            if p.requires_grad:
                named[f"{prefix}.{name}"] = p
    return named


def count(module: Any, trainable: bool = False) -> int:
    """Parameter count (all, or only trainable)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def estimate_memory(parts: Parts, *, batch: int, resolution: int, weight_bytes: int, checkpointing: bool,
                    eight_bit: bool) -> dict[str, float]:
    """A rough peak-memory estimate in GiB: frozen weights, LoRA + gradients + Adam, activations."""
    gib = 1024 ** 3
    frozen = sum(count(m) for m in (parts.unet, parts.vae, parts.text_encoder)) * weight_bytes
    trainable = sum(count(m, True) for m in (parts.unet, parts.text_encoder))
    optim = trainable * (4 + 4 + (2 if eight_bit else 8))  # weight + grad + Adam moments
    # Activations kept for backward scale with latent pixels × UNet width. The constants were fitted on
    # the SD-1.5 UNet at 256 px, float32, CPU (bench/bench_train.py: ~760 MiB, ~460 MiB with
    # checkpointing); attention kernels on GPU differ, so this stays a rough figure.
    latent_px = (resolution // 8) ** 2
    width = sum(parts.unet.config.block_out_channels)
    acts = batch * latent_px * width * weight_bytes * 55.0 * (0.6 if checkpointing else 1.0)
    return {"weights_gib": frozen / gib, "trainable_params_m": trainable / 1e6, "optimizer_gib": optim / gib,
            "activations_gib": acts / gib, "total_gib": (frozen + optim + acts) / gib}
