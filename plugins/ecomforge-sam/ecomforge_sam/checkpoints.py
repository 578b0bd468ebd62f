"""Find, inspect and load SAM checkpoints safely (weights_only pickles or safetensors); the shared masker config."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, Field

from ecomforge.errors import InputError, ModelNotFound, NothingFound
from ecomforge.imaging.refine import RefineConfig
from ecomforge.models import MODEL_CACHE, check_device, models_dir, resolve_device
from ecomforge.pathspec import ModelRef
from ecomforge.types import Mask

OFFICIAL = {
    "vit_b": "sam_vit_b_01ec64.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_h": "sam_vit_h_4b8939.pth",
}
"""Meta's released checkpoint file names, per model type."""

DOWNLOAD_URL = "https://dl.fbaipublicfiles.com/segment_anything/"


@dataclass(frozen=True)
class Architecture:
    """The image-encoder hyper-parameters that distinguish SAM variants (the rest is shared)."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]

    def kwargs(self) -> dict[str, Any]:
        """Arguments for ``segment_anything.build_sam._build_sam``."""
        return {"encoder_embed_dim": self.embed_dim, "encoder_depth": self.depth,
                "encoder_num_heads": self.num_heads, "encoder_global_attn_indexes": list(self.global_attn_indexes)}


ARCHITECTURES = {
    "vit_b": Architecture(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": Architecture(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": Architecture(1280, 32, 16, (7, 15, 23, 31)),
    "tiny": Architecture(32, 2, 2, (1,)),  # ecomforge.testing.tiny_sam
}


@dataclass(frozen=True)
class LoadedSam:
    """A SAM model on its device, with what the manifest needs to name it."""

    model: Any  # segment_anything.modeling.Sam
    model_type: str
    path: Path
    sha256: str
    device: str

    @property
    def model_id(self) -> str:
        """Short, stable name: type, file name and weight hash prefix."""
        return f"sam-{self.model_type}:{self.path.name}@{self.sha256[:12]}"


def resolve_checkpoint(model: str) -> Path:
    """A model type (vit_b/vit_l/vit_h, from the local cache) or a checkpoint path -> an existing file."""
    if model in OFFICIAL:
        folder = models_dir() / "sam"
        official = folder / OFFICIAL[model]
        for candidate in (official, official.with_suffix(".safetensors")):
            if candidate.is_file():
                return candidate
        raise ModelNotFound(
            f"SAM {model} weights not found at {official}",
            hint=f"download {DOWNLOAD_URL}{OFFICIAL[model]} into {folder}, or set model: to a checkpoint path")
    path = Path(model).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for name in (*OFFICIAL.values(), "sam_vit_tiny.pth"):
            for candidate in (path / name, (path / name).with_suffix(".safetensors")):
                if candidate.is_file():
                    return candidate
        raise ModelNotFound(f"{path}: no SAM checkpoint in this folder",
                            hint=f"expected one of {', '.join(OFFICIAL.values())}")
    raise ModelNotFound(f"SAM checkpoint {path} not found",
                        hint=f"use vit_b, vit_l or vit_h with weights from {DOWNLOAD_URL} in "
                             f"{models_dir() / 'sam'}, or a path to a .pth/.safetensors file")


def read_state_dict(path: Path) -> dict:
    """Tensors of a SAM checkpoint: safetensors, or a pickle read with ``weights_only=True``."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to decode a user's file is bad input
        detail = " ".join(str(exc).split())[:160]
        raise InputError(f"{path}: not a readable SAM checkpoint ({type(exc).__name__}: {detail})") from exc
    # Some fine-tuning scripts wrap the weights; Meta's files are the bare state dict.
    for wrapper in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or "image_encoder.pos_embed" not in state:
        raise InputError(f"{path}: not a SAM checkpoint (no image_encoder.pos_embed tensor)")
    return state


def infer_architecture(state: dict) -> Architecture:
    """Read the encoder's width, depth, heads and global-attention blocks off the tensor shapes."""
    embed_dim = int(state["image_encoder.pos_embed"].shape[-1])
    blocks = sorted({int(k.split(".")[2]) for k in state if k.startswith("image_encoder.blocks.")})
    depth = len(blocks)
    rel = state.get("image_encoder.blocks.0.attn.rel_pos_h")
    head_dim = int(rel.shape[1]) if rel is not None else embed_dim
    # Windowed blocks see 14x14 tokens (27 relative positions); global ones the whole 64x64 grid.
    window_positions = 2 * 14 - 1
    global_blocks = tuple(b for b in blocks
                          if int(state[f"image_encoder.blocks.{b}.attn.rel_pos_h"].shape[0]) != window_positions)
    return Architecture(embed_dim, depth, max(1, embed_dim // head_dim), global_blocks)


def model_type_of(arch: Architecture) -> str:
    """The known name of an architecture (vit_b, vit_l, vit_h, tiny) or 'custom'."""
    for name, known in ARCHITECTURES.items():
        if known == arch:
            return name
    return "custom"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints are up to 2.5 GB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_sam(state: dict, arch: Architecture, path: Path) -> Any:
    """SAM's own architecture with ``state`` loaded strictly; mismatches name the file."""
    import torch
    from segment_anything.build_sam import _build_sam

    # Building on the meta device skips the random initialisation (seconds for vit_h);
    # assign=True then adopts the checkpoint's tensors as the parameters.
    with torch.device("meta"):
        sam = _build_sam(**arch.kwargs())
    try:
        sam.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise InputError(f"{path}: weights do not fit SAM's architecture ({first[0].strip()[:160]})") from exc
    # pixel_mean/pixel_std are non-persistent buffers: not in the checkpoint, so set them here.
    sam.register_buffer("pixel_mean", torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1), False)
    sam.register_buffer("pixel_std", torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1), False)
    return sam.float().eval()


def load_sam(model: str, *, model_type: str = "auto", device: str = "auto") -> LoadedSam:
    """Load (once per process) a SAM checkpoint onto a device; ``model_type`` checks or overrides inference."""
    path = resolve_checkpoint(model).resolve()
    target = resolve_device(device)
    stat = path.stat()
    key = ("sam", str(path), stat.st_size, stat.st_mtime_ns, model_type, target)

    def loader() -> LoadedSam:
        state = read_state_dict(path)
        arch = infer_architecture(state)
        found = model_type_of(arch)
        if model_type != "auto" and model_type != found:
            if found != "custom":
                raise InputError(f"{path}: this is a SAM {found} checkpoint but model_type is {model_type}")
            arch = ARCHITECTURES[model_type]  # an unusual layout: trust the user's type, let shapes decide
            found = model_type
        sam = build_sam(state, arch, path).to(target)
        return LoadedSam(sam, found, path, file_sha256(path), target)

    return MODEL_CACHE.get(key, loader)


ModelType = Literal["auto", "vit_b", "vit_l", "vit_h", "tiny"]


class SamModelConfig(RefineConfig):
    """A SAM checkpoint plus the clean-up every masker shares (holes, components, dilate, feather)."""

    model: ModelRef = Field("vit_b", min_length=1,
                       description="vit_b, vit_l or vit_h (weights in the model cache's sam/ folder), or a "
                                   "path to a SAM checkpoint (.pth or .safetensors) or a folder holding one.")
    model_type: ModelType = Field("auto", description="SAM variant of the checkpoint; 'auto' reads it off the "
                                                      "weight shapes.")


class SamMaskerBase:
    """The setup and result handling shared by the ``sam`` and ``sam-clip`` maskers."""

    config: Any
    device: str

    def check(self) -> None:
        """The SAM checkpoint must exist (and the device be there): fail before any work, saying what to download."""
        check_device(self.device)
        resolve_checkpoint(self.config.model)

    def load_session(self) -> Any:
        """Load the SAM checkpoint (cached process-wide) and its embedding-reusing predictor."""
        from .embeddings import session_for

        return session_for(load_sam(self.config.model, model_type=self.config.model_type, device=self.device))

    def finish_mask(self, raw: np.ndarray, *, score: float, label: str, where: str) -> Mask:
        """Refine a raw boolean mask with the shared chain and wrap it with paste-back geometry."""
        data = self.config.apply(np.where(raw, 255, 0).astype(np.uint8))
        if not data.any():
            raise NothingFound(f"{where}: the mask is empty after clean-up ({label}, score {score:.3f})")
        return self.config.finish(data, score=float(np.clip(score, 0.0, 1.0)), label=label)


def _non_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("text is empty: name the product, e.g. 'a t-shirt'")
    return text.strip()


# A text prompt naming the product, stripped; blank text is rejected when the recipe is validated.
ProductText = Annotated[str, AfterValidator(_non_blank)]


def reference_name(reference: Any) -> str:
    """How errors name a reference: its source path, else its name."""
    return reference.source or reference.name or "reference"
