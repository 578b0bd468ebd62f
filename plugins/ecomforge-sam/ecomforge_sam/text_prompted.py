"""The ``sam-clip`` masker: SAM proposes regions, CLIP picks the one that matches a text."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from ecomforge.errors import NothingFound
from ecomforge.pathspec import ModelRef
from ecomforge.stages import Masker
from ecomforge.types import Mask, Reference

from .checkpoints import ProductText, SamMaskerBase, SamModelConfig, reference_name
from .embeddings import LRU
from .proposals import (
    AutoSettings,
    automatic_proposals,
    masked_crop,
    overlaps,
    square_crop,
    touches,
    union_box,
    windows,
)

TEXTS = LRU(max_items=256)
"""(CLIP model id, text) -> unit text embedding: each prompt is encoded once per process."""

CROP_EMBEDDINGS = LRU(max_items=8)
"""(CLIP model id, proposals key) -> crop embeddings: proposals do not change with the text."""


def load_clip_model(model: str, device: str) -> Any:
    """The shared CLIP embedder of ecomforge-scorers (one loader for the whole project)."""
    from ecomforge.clip import load_clip

    return load_clip(model, device=device)


def text_embedding(clip: Any, text: str) -> np.ndarray:
    """The unit embedding (D,) of one text, computed once per model and text."""
    return TEXTS.get((clip.model_id, text), lambda: np.asarray(clip.encode_texts([text]), np.float32)[0])


def image_embeddings(clip: Any, crops: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    """Unit embeddings (N, D) of image crops, encoded ``batch_size`` at a time."""
    return np.asarray(clip.encode_images(list(crops), batch_size=batch_size), np.float32)


def cached_image_embeddings(clip: Any, key: tuple, make_crops: Callable[[], Sequence[np.ndarray]],
                            batch_size: int) -> np.ndarray:
    """Crop embeddings reused across texts: building and encoding the crops happen once per key."""
    return CROP_EMBEDDINGS.get((clip.model_id, *key), lambda: image_embeddings(clip, make_crops(), batch_size))


def scores(embeddings: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Cosine similarity of each (unit) embedding with the (unit) text embedding."""
    if len(embeddings) == 0:
        return np.zeros(0, np.float32)
    return (embeddings @ text).astype(np.float32)


@dataclass
class Ranked:
    """A scored region: its boolean mask and CLIP's cosine similarity with the text."""

    mask: np.ndarray
    score: float


class SamClipMasker(SamMaskerBase, Masker):
    """Finds the product named by a text: SAM's masks (or CLIP-picked boxes) scored by CLIP."""

    name = "sam-clip"
    accepts = {"text": "text"}

    class Config(SamModelConfig):
        text: ProductText = Field(..., description="What the product is, e.g. 'a t-shirt' (CLIP compares regions to it).")
        clip_model: ModelRef = Field("ViT-B-32/laion2b_s34b_b79k",
                                description="open_clip model: ARCH/TAG, a folder with open_clip_config.json, "
                                            "or ARCH//weights.safetensors.")
        mode: Literal["auto", "boxes"] = Field(
            "auto", description="auto: SAM's automatic masks scored by CLIP; boxes: CLIP scores a grid of "
                                "windows, then one SAM box prompt (cheaper).")
        min_score: float = Field(0.2, ge=-1.0, le=1.0,
                                 description="Smallest CLIP cosine similarity that counts as the product; below "
                                             "it the masker reports that nothing was found.")
        top_k: int = Field(5, ge=1, le=100, description="How many best-scoring regions are considered for merging.")
        merge: bool = Field(True, description="Join regions that touch the best one and score within merge_margin "
                                              "of it, when the union scores as well (products SAM splits in parts).")
        merge_margin: float = Field(0.03, ge=0.0, le=1.0, description="CLIP score margin for merging regions.")
        points_per_side: int = Field(16, ge=1, le=64, description="auto mode: SAM's point grid is N×N.")
        points_per_batch: int = Field(64, ge=1, le=4096, description="auto mode: points decoded per batch.")
        pred_iou_thresh: float = Field(0.8, ge=0.0, le=1.0,
                                       description="auto mode: drop SAM masks whose predicted IoU is below this.")
        stability_score_thresh: float = Field(0.9, ge=0.0, le=1.0,
                                              description="auto mode: drop SAM masks less stable than this.")
        crop_n_layers: int = Field(0, ge=0, le=3, description="auto mode: extra zoomed-in crop layers (slower).")
        max_proposals: int = Field(64, ge=1, le=1000, description="auto mode: most SAM masks scored by CLIP.")
        min_area: float = Field(0.005, ge=0.0, le=1.0, description="Ignore regions smaller than this image fraction.")
        max_area: float = Field(0.95, ge=0.0, le=1.0, description="Ignore regions larger than this image fraction.")
        window_scales: tuple[float, ...] = Field(
            (1.0, 0.75, 0.5, 0.35), min_length=1,
            description="boxes mode: window sides as fractions of the image's shorter side.")
        window_stride: float = Field(0.5, gt=0.0, le=1.0, description="boxes mode: window step as a fraction of its side.")
        crop_padding: float = Field(0.1, ge=0.0, le=1.0, description="Context around a region's box when cropping "
                                                                     "it for CLIP (fraction of the box).")
        crop_fill: int = Field(128, ge=0, le=255, description="Grey level that replaces pixels outside a region.")
        batch_size: int = Field(32, ge=1, le=1024, description="Crops per CLIP forward pass.")

        @field_validator("window_scales")
        @classmethod
        def _scales_in_range(cls, scales: tuple[float, ...]) -> tuple[float, ...]:
            bad = [s for s in scales if not 0.05 <= s <= 1.0]
            if bad:
                raise ValueError(f"window scales must be between 0.05 and 1, got {bad[0]:g}")
            return scales

    def check(self) -> None:
        """The SAM checkpoint and the CLIP weights must be there: fail before any work, naming the key."""
        from ecomforge.clip import check_clip

        super().check()
        check_clip(self.config.clip_model, "mask.config.clip_model")

    def setup(self) -> None:
        """Load SAM and CLIP once per process (shared through the model cache)."""
        self.session = self.load_session()
        self.clip = load_clip_model(self.config.clip_model, self.device)

    def identity(self) -> dict[str, str]:
        """SAM and CLIP model ids with weight hashes where known."""
        if not self._ready:
            return {"sam": self.config.model, "clip": self.config.clip_model}
        return {"sam": self.session.sam.model_id, "clip": self.clip.model_id}

    def mask(self, reference: Reference) -> Mask:
        """The region that best matches the text, merged with its matching neighbours, refined."""
        self.ensure_setup()
        cfg = self.config
        where = reference_name(reference)
        text = text_embedding(self.clip, cfg.text)
        ranked = self._auto(reference, text) if cfg.mode == "auto" else self._boxes(reference, text)
        if not ranked:
            hint = ("lower pred_iou_thresh / stability_score_thresh, or use mode: boxes" if cfg.mode == "auto"
                    else "widen min_area / max_area, or use mode: auto")
            raise NothingFound(f"{where}: SAM proposed no region between min_area {cfg.min_area:g} and max_area "
                               f"{cfg.max_area:g} ({hint})")
        best = ranked[0]
        if best.score < cfg.min_score:
            raise NothingFound(f"{where}: nothing matches '{cfg.text}' (best CLIP score {best.score:.3f} < "
                               f"min_score {cfg.min_score:g})")
        chosen, parts = self._merge(reference, ranked[:cfg.top_k], text)
        label = f"{cfg.text} ({cfg.mode}, {parts} part{'s' if parts > 1 else ''}, clip {chosen.score:.3f})"
        return self.finish_mask(chosen.mask, score=chosen.score, label=label, where=where)

    # --- proposals -----------------------------------------------------------------------------
    def _auto(self, reference: Reference, text: np.ndarray) -> list[Ranked]:
        """SAM's automatic masks, each scored on a masked crop; best first."""
        cfg = self.config
        settings = AutoSettings(cfg.points_per_side, cfg.points_per_batch, cfg.pred_iou_thresh,
                                cfg.stability_score_thresh, cfg.crop_n_layers, 0.7)
        proposals = automatic_proposals(self.session, reference.image, reference.sha256, settings,
                                        min_area=cfg.min_area, max_area=cfg.max_area, limit=cfg.max_proposals)
        if not proposals:
            return []
        # Crop embeddings depend on the proposals, not the text: every later prompt reuses them.
        key = ("auto", self.session.sam.model_id, reference.sha256, settings, cfg.min_area, cfg.max_area,
               cfg.max_proposals, cfg.crop_padding, cfg.crop_fill)
        embeddings = cached_image_embeddings(
            self.clip, key, lambda: [self._crop(reference, p.mask) for p in proposals], cfg.batch_size)
        sims = scores(embeddings, text)
        order = np.argsort(-sims, kind="stable")
        return [Ranked(proposals[i].mask, float(sims[i])) for i in order]

    def _boxes(self, reference: Reference, text: np.ndarray) -> list[Ranked]:
        """CLIP picks the best windows; one SAM box prompt segments inside them; masks scored by CLIP."""
        cfg = self.config
        width, height = reference.size
        boxes = windows(width, height, cfg.window_scales, cfg.window_stride)
        key = ("windows", reference.sha256, reference.image.shape, tuple(boxes), cfg.crop_fill)
        embeddings = cached_image_embeddings(
            self.clip, key, lambda: [square_crop(reference.image, b, cfg.crop_fill) for b in boxes], cfg.batch_size)
        sims = scores(embeddings, text)
        top = int(np.argmax(sims))
        # Windows that score nearly as well and overlap the best one widen the box to the whole product.
        near = [b for b, s in zip(boxes, sims) if s >= sims[top] - cfg.merge_margin and overlaps(b, boxes[top])]
        x0, y0, x1, y1 = union_box(near)
        box = np.asarray([max(0, x0), max(0, y0), min(width, x1), min(height, y1)], np.float32)
        session = self.session
        with session.lock:
            session.set_reference(reference.image, reference.sha256)
            masks, _ = session.predict(box=box, multimask=True)
        masks = [m for m in masks if cfg.min_area <= m.mean() <= cfg.max_area]
        if not masks:
            return []
        crop_sims = scores(image_embeddings(self.clip, [self._crop(reference, m) for m in masks],
                                                  cfg.batch_size), text)
        order = np.argsort(-crop_sims, kind="stable")
        return [Ranked(masks[i], float(crop_sims[i])) for i in order]

    # --- merging -------------------------------------------------------------------------------
    def _merge(self, reference: Reference, ranked: list[Ranked], text: np.ndarray) -> tuple[Ranked, int]:
        """The best region joined with touching near-best regions, kept only if the union scores as well."""
        cfg = self.config
        best = ranked[0]
        if not cfg.merge or len(ranked) == 1:
            return best, 1
        union, parts = best.mask.copy(), 1
        for other in ranked[1:]:
            if other.score >= best.score - cfg.merge_margin and touches(union, other.mask):
                if not np.logical_and(other.mask, ~union).any():
                    continue  # a part of what is already chosen adds nothing
                union |= other.mask
                parts += 1
        if parts == 1:
            return best, 1
        union_score = float(scores(image_embeddings(self.clip, [self._crop(reference, union)], 1), text)[0])
        if union_score >= max(best.score - cfg.merge_margin, cfg.min_score):
            return Ranked(union, union_score), parts
        return best, 1

    def _crop(self, reference: Reference, mask: np.ndarray) -> np.ndarray:
        return masked_crop(reference.image, mask, padding=self.config.crop_padding, fill=self.config.crop_fill)
