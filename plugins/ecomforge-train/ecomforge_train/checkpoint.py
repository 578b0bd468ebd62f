"""Resumable checkpoints (LoRA weights, optimizer, RNG states, step) and the final diffusers-format LoRA."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ecomforge.errors import InputError, UsageError

LORA_FILE = "pytorch_lora_weights.safetensors"
CHECKPOINTS = "checkpoints"


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first (a checkpoint is finished once its state.pt exists)."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if (p / "state.pt").is_file() and (p / "lora.safetensors").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def save_checkpoint(output_dir: Path, step: int, named_params: dict[str, Any], optimizer: Any, gen: Any,
                    fingerprint: dict[str, Any], *, scaler: Any = None, keep: int = 2) -> Path:
    """Write ``checkpoints/step-N/`` atomically (temp folder, then rename) and prune old ones."""
    import torch
    from safetensors.torch import save_file

    root = Path(output_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".step-{step:06d}.", dir=root))
    save_file({k: v.detach().float().cpu().contiguous() for k, v in named_params.items()}, str(tmp / "lora.safetensors"))
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "rng": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "scaler": scaler.state_dict() if scaler is not None else {},
        "fingerprint": json.dumps(fingerprint, sort_keys=True),
    }
    torch.save(state, str(tmp / "state.pt"))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: Path, named_params: dict[str, Any], optimizer: Any, gen: Any,
                    fingerprint: dict[str, Any], *, scaler: Any = None) -> int:
    """Restore LoRA weights, optimizer, RNG states (and loss scaler) from a checkpoint; returns its step."""
    import torch
    from safetensors.torch import load_file

    try:
        weights = load_file(str(folder / "lora.safetensors"))
        state = torch.load(str(folder / "state.pt"), map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: name it
        raise InputError(f"{folder}: unreadable checkpoint ({type(exc).__name__})") from exc
    saved = json.loads(state["fingerprint"])
    changed = [k for k in fingerprint if saved.get(k) != fingerprint[k]]
    if changed:
        raise UsageError(f"--resume: {folder} was trained with different {', '.join(changed)} "
                         f"({', '.join(f'{k}={saved.get(k)!r}' for k in changed)})",
                         hint="train into a new output folder or restore the recipe")
    missing = set(named_params) - set(weights)
    if missing:
        raise InputError(f"{folder}: checkpoint lacks {len(missing)} LoRA weights (e.g. {sorted(missing)[0]})")
    with torch.no_grad():
        for name, p in named_params.items():
            p.copy_(weights[name].to(p.device, p.dtype))
    optimizer.load_state_dict(state["optimizer"])
    gen.set_state(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    return int(state["step"])


def save_lora(output_dir: Path, lora_state: dict[str, Any], info: dict[str, Any], *,
              unet_meta: dict[str, Any] | None = None, text_meta: dict[str, Any] | None = None) -> Path:
    """Write ``pytorch_lora_weights.safetensors`` (diffusers keys) with ``save_lora_weights`` plus train_info.json."""
    from diffusers import StableDiffusionPipeline

    unet = {k[len("unet."):]: v.detach().float().cpu().contiguous() for k, v in lora_state.items() if k.startswith("unet.")}
    text = {k[len("text_encoder."):]: v.detach().float().cpu().contiguous()
            for k, v in lora_state.items() if k.startswith("text_encoder.")}
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(str(output_dir), unet_lora_layers=unet,
                                              text_encoder_lora_layers=text or None, safe_serialization=True,
                                              # rank and alpha travel with the weights: alpha != rank loads right
                                              unet_lora_adapter_metadata=unet_meta,
                                              text_encoder_lora_adapter_metadata=text_meta if text else None)
    (output_dir / "train_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return output_dir / LORA_FILE
