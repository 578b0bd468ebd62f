"""LoRAs and IP-Adapters applied for one generate call and unloaded after it, so the cached pipeline stays pristine."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ecomforge.errors import InputError

from .loading import file_hash


@contextmanager
def applied_loras(pipe: Any, loras: Sequence[Any]) -> Iterator[dict[str, str]]:
    """Load each LoRA as its own adapter with its scale; yield their fingerprints; unload on exit."""
    if not loras:
        yield {}
        return
    names, scales, ids = [], [], {}
    try:
        for i, spec in enumerate(loras):
            key = f"generate.config.loras[{i}].path"
            path = Path(spec.path).expanduser()
            if not path.exists():
                raise InputError(f"{key}: {path} does not exist")
            name = f"ecomforge_{i}"
            try:
                # diffusers converts kohya (lora_unet_*) keys itself
                pipe.load_lora_weights(str(path), adapter_name=name)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise InputError(f"{key}: {path} is not a LoRA for this model "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from exc
            names.append(name)
            scales.append(spec.scale)
            if path.is_file():
                ids[f"lora:{path.name}"] = f"a1111-hash:{file_hash(path)}"
        pipe.set_adapters(names, adapter_weights=scales)
        yield ids
    finally:
        if names:
            pipe.unload_lora_weights()


@contextmanager
def applied_ip_adapter(pipe: Any, path: str | None, scale: float) -> Iterator[dict[str, str]]:
    """Load an IP-Adapter (weights file + ``image_encoder/`` beside it) for one call; unload on exit."""
    if not path:
        yield {}
        return
    key = "generate.config.ip_adapter"
    weights = Path(path).expanduser()
    if not weights.is_file():
        raise InputError(f"{key}: {weights} does not exist")
    if not (weights.parent / "image_encoder" / "config.json").exists():
        raise InputError(f"{key}: no image_encoder/ folder beside {weights} (the CLIP image encoder it needs)")
    try:
        pipe.load_ip_adapter(str(weights.parent), subfolder="", weight_name=weights.name,
                             image_encoder_folder="image_encoder", local_files_only=True)
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        raise InputError(f"{key}: {weights} is not an IP-Adapter for this model "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from exc
    try:
        pipe.set_ip_adapter_scale(scale)
        yield {f"ip_adapter:{weights.name}": f"a1111-hash:{file_hash(weights)}"}
    finally:
        pipe.unload_ip_adapter()
