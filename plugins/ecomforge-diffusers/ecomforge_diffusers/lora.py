"""LoRAs and IP-Adapters applied for one generate call and unloaded after it, so the cached pipeline stays pristine."""
from __future__ import annotations

import logging
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecomforge.errors import InputError

from .families import safetensors_header
from .loading import file_hash

PICKLES_REFUSED = "pickle checkpoints are not loaded (convert it to safetensors first)"


@dataclass(frozen=True)
class LoraFile:
    """A LoRA's safetensors file and what its header says, read without loading any weights."""

    path: Path
    text_encoder: bool  # it holds text-encoder weights (diffusers' text_encoder.*, kohya's lora_te*)
    in_channels: int | None  # the UNet input channels its conv_in LoRA was trained for (None: it has none)


def lora_file(value: str, key: str) -> LoraFile:
    """The safetensors file a ``loras[i].path`` names (a file, or a folder holding one), its header checked.

    Pickles (.bin, .pt, .ckpt) are refused as models are: loading one runs code from the file.
    """
    path = Path(value).expanduser()
    if path.is_dir():
        found = sorted(path.glob("*.safetensors"))
        if (path / "pytorch_lora_weights.safetensors").is_file():
            found = [path / "pytorch_lora_weights.safetensors"]
        if not found:
            raise InputError(f"{key}: {path} holds no .safetensors LoRA file; {PICKLES_REFUSED}")
        if len(found) > 1:
            raise InputError(f"{key}: {path} holds {len(found)} .safetensors files ({found[0].name}, ...); "
                             "name the LoRA file itself")
        path = found[0]
    elif not path.is_file():
        raise InputError(f"{key}: {path} does not exist")
    elif path.suffix != ".safetensors":
        raise InputError(f"{key}: {path} is not a .safetensors file; {PICKLES_REFUSED}")
    try:
        header = safetensors_header(path)
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + size + end > path.stat().st_size:
            raise InputError(f"{path}: truncated: {path.stat().st_size} of {8 + size + end} bytes")
    except (InputError, KeyError, TypeError, ValueError, IndexError) as exc:
        why = exc.message.split(": ", 1)[-1] if isinstance(exc, InputError) else "a tensor without data_offsets"
        if why.startswith("not a .safetensors file ("):
            why = why[len("not a .safetensors file ("):-1]
        raise InputError(f"{key}: {path} is not a readable safetensors file ({why})") from exc
    names = [k for k in header if k != "__metadata__"]
    conv = next((int(v["shape"][1]) for k, v in header.items()
                 if "conv_in" in k and any(d in k for d in ("lora_down", "lora.down", "lora_A"))
                 and len(v.get("shape", [])) == 4), None)
    return LoraFile(path, any(k.startswith(("text_encoder", "lora_te")) for k in names), conv)


def check_lora_channels(lora: LoraFile, key: str, model_channels: int | None, generator: str) -> None:
    """A LoRA that trained conv_in fits only a UNet with as many input channels: say so before loading."""
    if model_channels is None or lora.in_channels is None or lora.in_channels == model_channels:
        return
    kind = "an inpainting model (9 input channels)" if lora.in_channels == 9 else \
        f"a {lora.in_channels}-channel model"
    runs = "a 9-channel inpainting model" if model_channels == 9 else f"a {model_channels}-channel model"
    raise InputError(f"{key}: {lora.path} is a LoRA for {kind}; {generator} runs {runs}")


def check_loras(loras: Sequence[Any], model_channels: int | None, generator: str) -> list[LoraFile]:
    """Every configured LoRA exists, is a readable safetensors file and fits the model (no weights load)."""
    out = []
    for i, spec in enumerate(loras):
        key = f"generate.config.loras[{i}].path"
        out.append(lora_file(spec.path, key))
        check_lora_channels(out[-1], key, model_channels, generator)
    return out


class _Drop(logging.Filter):
    """Drops diffusers' log lines that a LoRA load raises or explains in its own words."""

    def __init__(self, *texts: str) -> None:
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(t in record.getMessage() for t in self.texts)


@contextmanager
def _quiet_lora_load(text_encoder: bool) -> Iterator[None]:
    """Without the text-encoder notice when the LoRA has no text-encoder keys (there is nothing to find),
    and without diffusers' logged copy of a load error this module raises itself."""
    texts = ["was unsuccessful with the following error"]
    if not text_encoder:
        texts.append("No LoRA keys associated to")
    drop = _Drop(*texts)
    loggers = [logging.getLogger(n) for n in ("diffusers.loaders.lora_base", "diffusers.loaders.peft",
                                               "diffusers.loaders.lora_pipeline")]
    for log in loggers:
        log.addFilter(drop)
    try:
        yield
    finally:
        for log in loggers:
            log.removeFilter(drop)


def _first_line(exc: BaseException) -> str:
    """The line of a load error that says what does not fit (a size mismatch), else its first line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
    detail = next((ln for ln in lines if "size mismatch" in ln), lines[0])
    return detail[:200]


@contextmanager
def applied_loras(pipe: Any, loras: Sequence[Any], generator: str = "the generator") -> Iterator[dict[str, str]]:
    """Load each LoRA as its own adapter with its scale; yield their fingerprints; unload on exit."""
    if not loras:
        yield {}
        return
    names, scales, ids = [], [], {}
    try:
        for i, spec in enumerate(loras):
            key = f"generate.config.loras[{i}].path"
            lora = lora_file(spec.path, key)
            check_lora_channels(lora, key, int(pipe.unet.config.in_channels), generator)
            path = lora.path
            name = f"ecomforge_{i}"
            try:
                with _quiet_lora_load(lora.text_encoder):  # diffusers converts kohya (lora_unet_*) keys itself
                    pipe.load_lora_weights(str(path), adapter_name=name)
            except OSError as exc:
                raise InputError(f"{key}: {path} is not a readable safetensors file "
                                 f"({type(exc).__name__}: {_first_line(exc)})") from exc
            except (ValueError, KeyError, RuntimeError) as exc:
                raise InputError(f"{key}: {path} is not a LoRA for this model "
                                 f"({type(exc).__name__}: {_first_line(exc)})") from exc
            names.append(name)
            scales.append(spec.scale)
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
