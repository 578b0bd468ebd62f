"""The ``clipseg`` masker: one CLIPSeg pass (transformers) turns a text into a product heat map."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ecomforge.errors import ModelNotFound, NothingFound
from ecomforge.imaging.refine import RefineConfig
from ecomforge.models import MODEL_CACHE, offline, resolve_device
from ecomforge.pathspec import ModelRef
from ecomforge.stages import Masker
from ecomforge.types import Mask, Reference

from .checkpoints import ProductText, reference_name

DEFAULT_MODEL = "CIDAS/clipseg-rd64-refined"


@dataclass(frozen=True)
class LoadedClipSeg:
    """A CLIPSeg model with its processor, on a device."""

    model: Any
    processor: Any
    model_id: str
    device: str


def load_clipseg(model: str, device: str = "auto") -> LoadedClipSeg:
    """Load (once per process) a CLIPSeg folder or hub id with safetensors weights; never remote code."""
    target = resolve_device(device)
    local = Path(model).expanduser()
    source = str(local.resolve()) if local.is_dir() else model
    if not local.is_dir() and model.startswith(("/", ".", "~")):
        raise ModelNotFound(f"CLIPSeg folder {local} not found",
                            hint=f"save one with save_pretrained, or use a hub id such as {DEFAULT_MODEL}")

    def loader() -> LoadedClipSeg:
        from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

        only_local = local.is_dir() or offline()
        try:
            net = CLIPSegForImageSegmentation.from_pretrained(source, local_files_only=only_local,
                                                              use_safetensors=True)
            processor = CLIPSegProcessor.from_pretrained(source, local_files_only=only_local)
        except (OSError, ValueError) as exc:
            detail = " ".join(str(exc).split())[:160]
            raise ModelNotFound(
                f"CLIPSeg model '{model}' could not be loaded ({detail})",
                hint=f"download it with 'huggingface-cli download {DEFAULT_MODEL}' (or the repo you named), "
                     "or set model: to a folder holding config.json, model.safetensors and the processor files"
            ) from exc
        return LoadedClipSeg(net.eval().to(target), processor, source, target)

    return MODEL_CACHE.get(("clipseg", source, target), loader)


class ClipSegMasker(Masker):
    """Finds the product named by a text with CLIPSeg's heat map: fast, coarser edges than SAM."""

    name = "clipseg"
    accepts = {"text": "text"}

    class Config(RefineConfig):
        text: ProductText = Field(..., description="What the product is, e.g. 'a t-shirt'.")
        model: ModelRef = Field(DEFAULT_MODEL, min_length=1,
                           description="CLIPSeg hub id or a local folder saved with save_pretrained.")
        threshold: float = Field(0.4, gt=0.0, lt=1.0,
                                 description="Heat-map probability at or above which a pixel is product.")
        min_score: float = Field(0.3, ge=0.0, le=1.0,
                                 description="Smallest peak probability that counts as the product; below it "
                                             "the masker reports that nothing was found.")

    def setup(self) -> None:
        """Load CLIPSeg once per process."""
        self.net = load_clipseg(self.config.model, self.device)

    def identity(self) -> dict[str, str]:
        """The CLIPSeg model id."""
        return {"clipseg": self.net.model_id if self._ready else self.config.model}

    def heat_map(self, reference: Reference) -> np.ndarray:
        """Product probability per reference pixel (float32 H×W in [0, 1])."""
        import cv2
        import torch

        self.ensure_setup()
        net = self.net
        inputs = net.processor(text=[self.config.text], images=[reference.image], return_tensors="pt",
                               padding=True).to(net.device)
        with torch.inference_mode():
            logits = net.model(**inputs).logits
        low = torch.sigmoid(logits.float()).reshape(-1, *logits.shape[-2:])[0].cpu().numpy()
        width, height = reference.size
        # The processor squashes the image to a square; stretching the map back undoes that.
        return np.clip(cv2.resize(low, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)

    def mask(self, reference: Reference) -> Mask:
        """Threshold the heat map, check its peak against ``min_score``, refine."""
        cfg = self.config
        where = reference_name(reference)
        probs = self.heat_map(reference)
        best = float(probs.max())
        if best < cfg.min_score:
            raise NothingFound(f"{where}: nothing matches '{cfg.text}' (best CLIPSeg probability {best:.3f} < "
                               f"min_score {cfg.min_score:g})")
        data = cfg.apply(np.where(probs >= cfg.threshold, 255, 0).astype(np.uint8))
        if not data.any():
            raise NothingFound(f"{where}: no pixel of '{cfg.text}' reaches threshold {cfg.threshold:g} after "
                               f"clean-up (peak probability {best:.3f})")
        score = float(probs[data > 0].mean())
        return cfg.finish(data, score=score, label=f"{cfg.text} (clipseg, peak {best:.3f})")
