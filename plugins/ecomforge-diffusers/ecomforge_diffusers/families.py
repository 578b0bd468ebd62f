"""Which model family a checkpoint is, read from the model itself, and the pipeline class for a task.

A diffusers folder or hub repo names its class in ``model_index.json`` (``_class_name``); a
single-file checkpoint is recognised by its keys (SDXL's ``conditioner.embedders``, SD-2's
OpenCLIP ``cond_stage_model.model``) and its UNet's input channels (9 for inpainting models).
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecomforge.errors import InputError

# family -> (inpaint pipeline class, img2img pipeline class)
PIPELINES = {
    "sd": ("StableDiffusionInpaintPipeline", "StableDiffusionImg2ImgPipeline"),
    "sdxl": ("StableDiffusionXLInpaintPipeline", "StableDiffusionXLImg2ImgPipeline"),
}
# model_index.json _class_name -> family; SD 1.x and 2.x share the classes
CLASS_FAMILY = {
    "StableDiffusionPipeline": "sd", "StableDiffusionImg2ImgPipeline": "sd",
    "StableDiffusionInpaintPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl", "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "StableDiffusionXLInpaintPipeline": "sdxl",
}
# the component configs a single file borrows by default: (family, inpainting UNet) -> hub id,
# the ids diffusers' own documentation uses today
DEFAULT_BASE = {
    ("sd", True): "stable-diffusion-v1-5/stable-diffusion-inpainting",
    ("sd", False): "stable-diffusion-v1-5/stable-diffusion-v1-5",
    ("sdxl", True): "diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
    ("sdxl", False): "stabilityai/stable-diffusion-xl-base-1.0",
}

# repos deleted from the hub, and where diffusers' documentation points instead
MOVED = {
    "runwayml/stable-diffusion-inpainting": "stable-diffusion-v1-5/stable-diffusion-inpainting",
    "runwayml/stable-diffusion-v1-5": "stable-diffusion-v1-5/stable-diffusion-v1-5",
}


@dataclass(frozen=True)
class Family:
    """A model's family and whether its UNet is an inpainting one (9 input channels)."""

    name: str
    inpainting: bool | None  # None: not known before loading (hub repo whose UNet config is not fetched)

    def pipeline_class(self, task: str) -> Any:
        """The diffusers pipeline class for ``task`` ('inpaint' or 'img2img') in this family."""
        import diffusers

        inpaint, img2img = PIPELINES[self.name]
        return getattr(diffusers, inpaint if task == "inpaint" else img2img)


def family_from_index(index: dict[str, Any], where: str, key: str = "generate.config.model") -> Family:
    """The family named by a ``model_index.json``; InputError for a pipeline ecomforge does not drive."""
    name = index.get("_class_name", "")
    if name not in CLASS_FAMILY:
        raise InputError(f"{key}: {where} is a {name or 'unnamed'} model; supported: "
                         f"{', '.join(sorted(CLASS_FAMILY))}")
    return Family(CLASS_FAMILY[name], "Inpaint" in name)


def family_of_folder(path: Path, key: str = "generate.config.model") -> Family:
    """The family of a local diffusers folder, its UNet's channels read from unet/config.json."""
    family = family_from_index(json.loads((path / "model_index.json").read_text()), str(path), key)
    unet = path / "unet" / "config.json"
    if unet.exists():
        return Family(family.name, int(json.loads(unet.read_text()).get("in_channels", 4)) == 9)
    return family


def family_of_hub(repo_id: str, local_only: bool, key: str = "generate.config.model") -> Family:
    """The family of a hub repo from its model_index.json (fetched, or read from the HF cache)."""
    from diffusers import DiffusionPipeline

    try:
        index = DiffusionPipeline.load_config(repo_id, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        from ecomforge.errors import ModelNotFound

        raise ModelNotFound(f"{key}: could not read model_index.json of '{repo_id}': {str(exc).splitlines()[0]}",
                            hint=f"run `ecomforge models pull {repo_id}`") from exc
    return family_from_index(dict(index), repo_id, key)


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file (tensor names, dtypes, shapes) without reading any weights."""
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise InputError(f"{path}: too short to be a .safetensors file")
        (size,) = struct.unpack("<Q", raw)
        if size > 100 * 2**20:
            raise InputError(f"{path}: not a .safetensors file (header of {size} bytes)")
        try:
            return json.loads(fh.read(size))
        except ValueError as exc:
            raise InputError(f"{path}: not a .safetensors file (unreadable header)") from exc


def family_of_file(path: Path, key: str = "generate.config.model") -> tuple[Family, bool]:
    """(family, is SD-2) of a single-file checkpoint in the original (ldm) key layout."""
    header = safetensors_header(path)
    keys = [k for k in header if k != "__metadata__"]
    conv_in = header.get("model.diffusion_model.input_blocks.0.0.weight")
    if conv_in is None:
        raise InputError(f"{key}: {path} is not a Stable Diffusion checkpoint (no model.diffusion_model UNet keys)")
    inpainting = int(conv_in["shape"][1]) == 9
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return Family("sdxl", inpainting), False
    return Family("sd", inpainting), any(k.startswith("cond_stage_model.model.") for k in keys)


def default_base(family: Family, sd2: bool, path: Path, key: str = "generate.config.base_config") -> str:
    """The hub repo whose component configs a single file of this family uses."""
    if sd2:  # 512 vs 768, epsilon vs v-prediction: nothing in the file says which, so the user must
        raise InputError(f"{key}: {path.name} is an SD-2 checkpoint; set base_config to the diffusers "
                         "folder or hub id of its SD-2 variant")
    return DEFAULT_BASE[(family.name, bool(family.inpainting))]


def check_task(family: Family, task: str, model: str, key: str = "generate.config.model") -> None:
    """img2img cannot drive a 9-channel inpainting UNet: say so before loading gigabytes."""
    if task == "img2img" and family.inpainting:
        raise InputError(f"{key}: '{model}' is an inpainting model; use it with sd-inpaint, or give sd-img2img "
                         "a text-to-image model")
