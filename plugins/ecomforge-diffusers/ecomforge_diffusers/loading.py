"""Finding and loading diffusers pipelines: hub id, local folder or single file, once per process."""
from __future__ import annotations

import functools
import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecomforge.errors import InputError, ModelNotFound
from ecomforge.models import MODEL_CACHE, hub_off, models_dir, offline

from .families import (
    MOVED,
    Family,
    check_task,
    default_base,
    family_of_file,
    family_of_folder,
    family_of_hub,
    safetensors_header,
)
from .fastpath import FastPath, apply, torch_dtype


@dataclass
class Loaded:
    """A cached pipeline, the lock that serialises calls on it, and what identifies its weights."""

    pipe: Any
    model: str
    weights: str
    family: str = "sd"
    speed: dict[str, Any] = field(default_factory=dict)  # what the fast path did (fastpath.apply)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.endswith((".safetensors", ".ckpt", ".bin", ".pt")) \
        or "\\" in model or model.count("/") > 1


def resolve_model(model: str, key: str = "generate.config.model") -> tuple[str, Path | None]:
    """Where the weights are: ('folder'|'file'|'hub', local path or None). Fails fast when offline and absent."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").exists():
            raise InputError(f"{key}: {path} is a folder without model_index.json (not a diffusers pipeline)")
        return "folder", path
    if path.is_file():
        if path.suffix != ".safetensors":
            raise InputError(f"{key}: {path} is not a .safetensors file; pickle checkpoints are not loaded "
                             "(convert it to safetensors first)")
        return "file", path
    if _looks_like_path(model):
        raise InputError(f"{key}: model path {model} does not exist")
    pulled = models_dir() / model
    if (pulled / "model_index.json").exists():
        return "folder", pulled
    if model in MOVED and not _in_hf_cache(model):
        raise ModelNotFound(f"{key}: '{model}' was deleted from the hub", hint=f"use '{MOVED[model]}'")
    why = hub_off()
    if why and not _in_hf_cache(model):
        raise ModelNotFound(
            f"{key}: model '{model}' is not downloaded and {why}",
            hint=f"run `ecomforge models pull {model}` while online, or put a diffusers folder at {pulled}")
    return "hub", None


def _in_hf_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id, "model_index.json")
    return isinstance(hit, str)


def file_hash(path: Path) -> str:
    """AUTOMATIC1111's short model hash: sha256 of 64 KiB at offset 1 MiB (cheap for multi-GB files)."""
    with open(path, "rb") as fh:
        fh.seek(0x100000)
        chunk = fh.read(0x10000)
        if not chunk:  # files under 1 MiB (tiny test models): hash the whole file
            fh.seek(0)
            chunk = fh.read()
    return hashlib.sha256(chunk).hexdigest()[:10]


def weights_id(kind: str, path: Path | None) -> str:
    """A cheap weight fingerprint for the manifest (see README: not a full-file sha256)."""
    if kind == "file" and path is not None:
        return f"a1111-hash:{file_hash(path)}"
    if kind == "folder" and path is not None:
        unet = sorted((path / "unet").glob("*.safetensors"))
        index = hashlib.sha256((path / "model_index.json").read_bytes()).hexdigest()[:10]
        return f"model_index:{index}" + (f",unet:{file_hash(unet[0])}" if unet else "")
    return "hub"


@functools.lru_cache(maxsize=128)  # every job asks; a hub repo's model_index.json is fetched once per process
def model_family(kind: str, path: Path | None, model: str, base: str | None) -> tuple[Family, str | None]:
    """(family, resolved base config) of a model: read from the model itself, never from the plugin."""
    if kind == "folder":
        return family_of_folder(path), None
    if kind == "hub":
        return family_of_hub(model, bool(hub_off())), None
    family, sd2 = family_of_file(path)
    base = base or default_base(family, sd2, path)
    bkind, bpath = resolve_model(base, "generate.config.base_config")
    if bkind == "folder" and bpath is not None:  # its UNet config must fit the file's UNet (a hub base: at load)
        unet = bpath / "unet" / "config.json"
        wanted = int(json.loads(unet.read_text()).get("in_channels", 4)) if unet.is_file() else None
        got = int(safetensors_header(path)["model.diffusion_model.input_blocks.0.0.weight"]["shape"][1])
        if wanted is not None and wanted != got:
            raise InputError(f"generate.config.base_config: {base} is a config for another model (conv_in has "
                             f"{wanted} input channels, the checkpoint {got})",
                             hint=f"use the diffusers folder of {'an inpainting' if got == 9 else 'a text-to-image'} "
                                  "model of its family")
    return family, (str(bpath) if bpath is not None else base)


def _mismatch(exc: ValueError, base: str | None, path: Path | None) -> InputError | None:
    """diffusers' "Cannot load because X expected shape A, but got B" for a single file whose base_config does
    not fit it, as the recipe key and the two shapes (its advice about loader flags does not apply here)."""
    import re

    found = re.search(r"Cannot load\s.*?because (\S+) expected shape (.+?), but got (.+?)\.(?:\s|$)", str(exc))
    if found is None or path is None:
        return None
    name, wanted, got = found.group(1), found.group(2), found.group(3)
    return InputError(f"generate.config.base_config: {base} is a config for another model ({name} has shape "
                      f"{wanted.removeprefix('torch.Size')} there, {got.removeprefix('torch.Size')} in {path.name})")


def _dtype_kwarg() -> str:
    """Newer diffusers read ``dtype`` and warn on ``torch_dtype``; use whichever this version reads."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


_DEFAULT_FAST_PATH = FastPath()  # the defaults; frozen, so one shared instance is safe as a default argument


def load_pipeline(task: str, model: str, base_config: str | None, device: str, dtype_name: str,
                  fast: FastPath = _DEFAULT_FAST_PATH) -> Loaded:
    """The pipeline for ``model`` from the process-wide cache (loaded on first use), its class the model's own."""
    kind, path = resolve_model(model)
    dtype = torch_dtype(dtype_name, device)
    family, base = model_family(kind, path, model, base_config)
    check_task(family, task, model)
    key = ("diffusers", task, str(path or model), base, device, str(dtype), fast)

    def loader() -> Loaded:
        cls = family.pipeline_class(task)
        common: dict[str, Any] = {_dtype_kwarg(): dtype}
        if family.name == "sd":  # SD-1.5-class pipelines carry a safety checker; ecomforge scores instead
            common.update(safety_checker=None, requires_safety_checker=False)
        try:
            if kind == "file":
                pipe = cls.from_single_file(str(path), config=base, local_files_only=bool(hub_off()), **common)
            else:
                source = str(path) if path is not None else model
                pipe = cls.from_pretrained(source, use_safetensors=True, local_files_only=bool(hub_off()), **common)
        except ValueError as exc:
            mismatch = _mismatch(exc, base, path) if kind == "file" else None
            if mismatch is None:
                raise
            raise mismatch from exc
        except (OSError, EnvironmentError) as exc:
            raise ModelNotFound(f"generate.config.model: could not load '{model}': {str(exc).splitlines()[0]}",
                                hint=f"run `ecomforge models pull {model}`" if kind == "hub" else None) from exc
        check_task(Family(family.name, int(pipe.unet.config.in_channels) == 9), task, model)
        pipe.set_progress_bar_config(disable=True)
        pipe.to(device)
        speed = apply(pipe, fast, device, dtype, offline())
        return Loaded(pipe, model, weights_id(kind, path), family=family.name, speed=speed)

    return MODEL_CACHE.get(key, loader)
