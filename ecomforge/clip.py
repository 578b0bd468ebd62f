"""Load an open_clip model once per process and embed images and texts with it (shared by every plugin that needs CLIP).


open_clip and torch are imported on first use, never when ``ecomforge`` is imported.
A model is named the way open_clip users name it:

- ``ViT-B-32/laion2b_s34b_b79k``: an open_clip architecture and pretrained tag (weights come from
  the Hugging Face cache; offline and absent, ``ModelNotFound`` says what to download);
- ``ViT-B-32//path/to/weights.safetensors``: an architecture and a local checkpoint file;
- a folder holding ``open_clip_config.json`` + weights (the hf-hub layout), or ``local-dir:<folder>``;
- a weights file with ``open_clip_config.json`` beside it;
- ``hf-hub:org/repo``.

An ``ARCH/TAG`` model is also looked for as a folder ``<models_dir>/open_clip/ARCH-TAG`` first,
which is where a manual download can go on an offline machine.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelNotFound
from .models import MODEL_CACHE, hub_off, models_dir, offline, resolve_device
from .run import cancel

CONFIG_NAME = "open_clip_config.json"


@dataclass(frozen=True)
class ClipSource:
    """How to build one open_clip model: the name open_clip gets, a checkpoint file, a tokenizer name."""

    model_id: str  # stable id for caches and manifests
    create_name: str  # first argument of open_clip.create_model_and_transforms
    checkpoint: str | None = None  # a weights file loaded after creation (None: open_clip finds them)
    pretrained: str | None = None  # an open_clip pretrained tag
    hub_repo: str = ""  # where the tag's weights live on the hub, for error messages


def resolve_clip(model: str) -> ClipSource:
    """Turn a user's model string into a ClipSource, or raise ModelNotFound naming what is missing."""
    import open_clip

    text = model.strip()
    if text.startswith(("local-dir:", "hf-hub:")):
        if text.startswith("local-dir:"):
            return _from_folder(Path(text[len("local-dir:"):]).expanduser(), model)
        return ClipSource(text, text)
    local = _local_source(Path(text).expanduser(), text, model)
    if local is not None:
        return local
    arch, _, tag = text.partition("/")
    if arch not in open_clip.list_models():
        raise ModelNotFound(f"CLIP model '{model}' is neither a local path nor an open_clip architecture",
                            hint="use e.g. 'ViT-B-32/laion2b_s34b_b79k' or a folder with open_clip_config.json")
    if not tag:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)[:4])
        raise ModelNotFound(f"CLIP model '{model}' names no pretrained weights", hint=f"add a tag: {arch}/<tag>, e.g. {tags}")
    if Path(tag).expanduser().is_file():
        weights = Path(tag).expanduser().resolve()
        return ClipSource(f"{arch}/{weights}", arch, checkpoint=str(weights))
    if tag.startswith(("/", "~", ".")):
        raise ModelNotFound(f"CLIP model '{model}': no such file: {Path(tag).expanduser()}")
    cached = models_dir() / "open_clip" / f"{arch}-{tag}"
    if (cached / CONFIG_NAME).is_file():
        return _from_folder(cached, model)
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise ModelNotFound(f"CLIP model '{model}': '{tag}' is not a pretrained tag or file of {arch}", hint=f"known tags: {tags}")
    return ClipSource(f"{arch}/{tag}", arch, pretrained=tag, hub_repo=cfg.get("hf_hub", "").rstrip("/"))


def _local_source(path: Path, text: str, model: str) -> ClipSource | None:
    """The ClipSource of a local folder or weights file; None when ``text`` is not a local path."""
    if path.is_dir():
        return _from_folder(path, model)
    if path.is_file():
        config = path.parent / CONFIG_NAME
        if not config.is_file():
            raise ModelNotFound(f"CLIP weights file {path} has no {CONFIG_NAME} beside it",
                                hint="use 'ARCH//path/to/file' (e.g. 'ViT-B-32//weights.safetensors') to name its architecture")
        return ClipSource(str(path.resolve()), f"local-dir:{path.parent.resolve()}", checkpoint=str(path.resolve()))
    if looks_like_path(text):  # a typo in a local path, not a hub name to download
        raise ModelNotFound(f"no such folder or file: {path}",
                            hint="a CLIP model is a folder with open_clip_config.json, a weights file beside "
                                 "one, or an open_clip 'ARCH/TAG'")
    return None


def looks_like_path(model: str) -> bool:
    """True for what can only be meant as a local path (never a hub id or an open_clip name)."""
    return model.startswith(("/", "~", ".")) or "\\" in model or (model.count("/") > 1 and "//" not in model)


# the weight files an open_clip hub repo holds, newest layout first
_HUB_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def check_clip(model: str, key: str = "model") -> ClipSource:
    """Fail before any work when ``model``'s weights are missing (cheap: nothing is loaded).

    A local folder or file must hold what a load needs; an ``ARCH/TAG`` must be in ``models_dir()``, in
    the Hugging Face cache, or downloadable now. The error names ``key``, the recipe key that chose it.
    """
    try:
        source = resolve_clip(model)
        if source.pretrained and source.hub_repo:
            from huggingface_hub import try_to_load_from_cache

            cached = any(isinstance(try_to_load_from_cache(source.hub_repo, f), str) for f in _HUB_WEIGHTS)
            if not cached and hub_off():
                raise _not_found(source, FileNotFoundError(source.hub_repo))
    except ModelNotFound as exc:
        raise ModelNotFound(f"{key}: {exc.message}", hint=exc.hint) from exc
    return source


def _from_folder(folder: Path, model: str) -> ClipSource:
    if not (folder / CONFIG_NAME).is_file():
        raise ModelNotFound(f"CLIP folder {folder} has no {CONFIG_NAME}",
                            hint="an open_clip folder holds open_clip_config.json and open_clip_model.safetensors")
    weights = [p for ext in ("*.safetensors", "*.bin", "*.pth", "*.pt") for p in folder.glob(ext)]
    if not weights:  # open_clip would silently build a random model here
        raise ModelNotFound(f"CLIP folder {folder} holds {CONFIG_NAME} but no weights file",
                            hint="add open_clip_model.safetensors (or open_clip_pytorch_model.bin)")
    resolved = folder.resolve()
    return ClipSource(str(resolved), f"local-dir:{resolved}")


class ClipEmbedder:
    """An open_clip model with its preprocessing and tokenizer: L2-normalised float32 embeddings."""

    def __init__(self, source: ClipSource, model: Any, preprocess: Any, tokenizer: Any, device: str,
                 batch_size: int = 16) -> None:
        self.source = source
        self.model_id = source.model_id
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        # Counters let tests and benchmarks see how much encoder work was actually done.
        self.image_batches = 0
        self.images_encoded = 0
        self.text_batches = 0
        self._lock = threading.Lock()  # one forward pass at a time: counters and torch threads stay sane

    @property
    def image_size(self) -> int:
        """The square input size of the vision tower, in pixels."""
        size = self.model.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    def encode_images(self, images: Sequence[np.ndarray], batch_size: int | None = None) -> np.ndarray:
        """Embed RGB uint8 H×W×3 images in batches; returns (N, D) float32, rows of unit length."""
        import torch
        from PIL import Image

        step = max(1, int(batch_size or self.batch_size))
        out: list[np.ndarray] = []
        for start in range(0, len(images), step):
            cancel.check()  # a scoring pass over many candidates stops between batches
            chunk = images[start:start + step]
            pixels = torch.stack([self.preprocess(Image.fromarray(_rgb(im))) for im in chunk]).to(self.device)
            with self._lock, torch.inference_mode():
                feats = self.model.encode_image(pixels).float()
                self.image_batches += 1
                self.images_encoded += len(chunk)
            out.append(_normalise(feats.cpu().numpy()))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Embed texts in batches; returns (N, D) float32, rows of unit length."""
        import torch

        step = max(1, int(batch_size or self.batch_size))
        out: list[np.ndarray] = []
        for start in range(0, len(texts), step):
            tokens = self.tokenizer(list(texts[start:start + step])).to(self.device)
            with self._lock, torch.inference_mode():
                feats = self.model.encode_text(tokens).float()
                self.text_batches += 1
            out.append(_normalise(feats.cpu().numpy()))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    @property
    def dim(self) -> int:
        """Embedding width."""
        return int(self.model.text_projection.shape[1]) if getattr(self.model, "text_projection", None) is not None \
            else int(self.model.visual.output_dim)


def load_clip(model: str, device: str = "auto") -> ClipEmbedder:
    """The process-wide ClipEmbedder for ``model`` on ``device`` (loaded once, through MODEL_CACHE)."""
    source = resolve_clip(model)
    dev = resolve_device(device)
    return MODEL_CACHE.get(("open_clip", source.model_id, dev), lambda: _load(source, dev))


def _quiet_random_init(record: logging.LogRecord) -> bool:
    # Building the model before loading an explicit checkpoint makes open_clip warn that the model
    # is "initialized randomly"; the checkpoint is loaded right after, so the warning would mislead.
    return "initialized randomly" not in record.getMessage()


def _load(source: ClipSource, device: str) -> ClipEmbedder:
    import open_clip

    root = logging.getLogger()
    root.addFilter(_quiet_random_init)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            source.create_name, pretrained=source.pretrained, load_weights=source.checkpoint is None, device="cpu")
        if source.checkpoint is not None:
            open_clip.load_checkpoint(model, source.checkpoint, weights_only=True)
    except Exception as exc:
        raise _not_found(source, exc) from exc
    finally:
        root.removeFilter(_quiet_random_init)
    model.eval().to(device)
    tokenizer = open_clip.get_tokenizer(source.create_name)
    return ClipEmbedder(source, model, preprocess, tokenizer, device)


def _not_found(source: ClipSource, exc: Exception) -> ModelNotFound:
    cause = " ".join(f"{type(exc).__name__}: {exc}".split())[:120]
    if source.pretrained:
        arch = source.create_name
        where = models_dir() / "open_clip" / f"{arch}-{source.pretrained}"
        mode = "offline: " if offline() else ""
        return ModelNotFound(
            f"{mode}CLIP weights for '{source.model_id}' are not on disk",
            hint=f"download hf.co/{source.hub_repo} (huggingface-cli download {source.hub_repo}) into the HF cache, "
                 f"or put open_clip_config.json + open_clip_model.safetensors in {where}")
    return ModelNotFound(f"cannot load CLIP model '{source.model_id}' ({cause})",
                         hint="check the folder holds open_clip_config.json and matching weights")


def _rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3].astype(np.uint8, copy=False))


def _normalise(feats: np.ndarray) -> np.ndarray:
    feats = feats.astype(np.float32, copy=False)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return feats / np.maximum(norms, 1e-12)
