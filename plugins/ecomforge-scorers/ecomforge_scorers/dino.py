"""DINOv2 subject fidelity: cosine of CLS embeddings of product crops (DreamBooth's DINO metric)."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ecomforge.errors import ModelNotFound
from ecomforge.models import MODEL_CACHE, check_device, hub_off, models_dir, resolve_device
from ecomforge.pathspec import ModelRef
from ecomforge.run import cancel

from .embedding import EmbeddingConfig, EmbeddingScorer
from .regions import as_rgb

DEFAULT_DINO = "facebook/dinov2-small"


class DinoEmbedder:
    """A transformers DINOv2 model and its image processor: L2-normalised CLS embeddings."""

    def __init__(self, model_id: str, model: Any, processor: Any, device: str, batch_size: int = 16) -> None:
        self.model_id = model_id
        self.model = model
        self.processor = processor
        self.device = device
        self.batch_size = batch_size
        self.image_batches = 0
        self.images_encoded = 0
        self._lock = threading.Lock()

    def encode_images(self, images: Sequence[np.ndarray], batch_size: int | None = None) -> np.ndarray:
        """Embed RGB uint8 images in batches; returns (N, D) float32 unit rows (the final-norm CLS token)."""
        import torch

        step = max(1, int(batch_size or self.batch_size))
        out = []
        for start in range(0, len(images), step):
            cancel.check()  # a scoring pass over many candidates stops between batches
            chunk = [as_rgb(im) for im in images[start:start + step]]
            pixels = self.processor(images=chunk, return_tensors="pt")["pixel_values"].to(self.device)
            with self._lock, torch.inference_mode():
                cls = self.model(pixel_values=pixels).last_hidden_state[:, 0].float()
                self.image_batches += 1
                self.images_encoded += len(chunk)
            feats = cls.cpu().numpy()
            out.append(feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12))
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def resolve_dino(model: str) -> str:
    """A local folder for ``model`` if one exists (the path itself, or under models_dir()/dino), else the hub id."""
    from ecomforge.clip import looks_like_path

    path = Path(model).expanduser()
    if path.exists():
        if not (path.is_dir() and (path / "config.json").is_file()):
            raise ModelNotFound(f"DINOv2 model {path} is not a transformers folder (no config.json)",
                                hint="save one with model.save_pretrained(folder) and processor.save_pretrained(folder)")
        return str(path.resolve())
    if looks_like_path(model):  # a mistyped local folder: no hub repo is named like this
        raise ModelNotFound(f"no such folder: {path}",
                            hint="a DINOv2 model is a transformers folder (config.json, model.safetensors, "
                                 "preprocessor_config.json) or a hub id such as facebook/dinov2-small")
    local = models_dir() / "dino" / model.replace("/", "--")
    return str(local) if (local / "config.json").is_file() else model


def check_dino(model: str, key: str = "model") -> str:
    """Fail before any work when ``model``'s weights are neither on disk nor downloadable (nothing is loaded)."""
    try:
        source = resolve_dino(model)
        if not Path(source).is_dir() and hub_off():
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(source, "config.json"), str):
                raise _missing(source)
    except ModelNotFound as exc:
        raise ModelNotFound(f"{key}: {exc.message}", hint=exc.hint) from exc
    return source


def _missing(source: str) -> ModelNotFound:
    where = models_dir() / "dino" / source.replace("/", "--")
    return ModelNotFound(f"{'offline: ' if hub_off() else ''}DINOv2 weights for '{source}' are not on disk",
                         hint=f"huggingface-cli download {source} (HF cache), or save it to {where}")


def load_dino(model: str, device: str = "auto") -> DinoEmbedder:
    """The process-wide DinoEmbedder for a local folder or hub id (loaded once through MODEL_CACHE)."""
    source = resolve_dino(model)
    dev = resolve_device(device)
    return MODEL_CACHE.get(("dinov2", source, dev), lambda: _load(source, dev))


def _load(source: str, device: str) -> DinoEmbedder:
    from transformers import AutoImageProcessor, AutoModel

    is_local = Path(source).is_dir()
    try:
        # local_files_only when offline (or the hub is out of reach) turns a network wait into an immediate,
        # explainable failure.
        kwargs = {"local_files_only": is_local or bool(hub_off()), "trust_remote_code": False}
        model = AutoModel.from_pretrained(source, **kwargs)
        processor = AutoImageProcessor.from_pretrained(source, **kwargs)
    except Exception as exc:
        cause = " ".join(f"{type(exc).__name__}: {exc}".split())[:120]
        if is_local:
            raise ModelNotFound(f"cannot load DINOv2 folder {source} ({cause})",
                                hint="it needs config.json, model.safetensors and preprocessor_config.json") from exc
        raise _missing(source) from exc
    return DinoEmbedder(source, model.eval().to(device), processor, device)


class DinoScorer(EmbeddingScorer):
    """DINO: cosine between DINOv2 CLS embeddings of the candidate's and the references' product crops.

    DINO features are trained to separate individual images, so unlike CLIP they punish a
    different object of the same class (DreamBooth's subject-fidelity metric: 0.774 between real
    photos of one subject with DINO ViT-S/16). Crops as for clip-image. Calibration:
    ``clip((cos - low) / (high - low), 0, 1)`` with ``low=0.2, high=1.0``: DINOv2 CLS cosines
    of unrelated photos are typically 0–0.2 and 1.0 for identical pixels.
    """

    name = "dino"

    class Config(EmbeddingConfig):
        model: ModelRef = Field(DEFAULT_DINO, description="DINOv2 hub id or local transformers folder "
                                                     "(config.json, model.safetensors, preprocessor_config.json).")
        low: float = Field(0.2, ge=-1.0, le=1.0, description="Cosine that maps to score 0 (unrelated images).")
        high: float = Field(1.0, ge=-1.0, le=1.0, description="Cosine that maps to score 1 (the same product).")

    def check(self) -> None:
        """The DINOv2 weights must be on disk or downloadable: fail before any work, naming the key."""
        check_device(self.device)
        check_dino(self.config.model, f"{self.key_path}.model")

    def load_embedder(self) -> DinoEmbedder:
        """The DINOv2 model, shared through MODEL_CACHE."""
        return load_dino(self.config.model, self.device)
