"""The shared machinery of embedding scorers: product crops, cached reference embeddings, calibration."""
from __future__ import annotations

import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import Field, model_validator

from ecomforge.stages import Scorer, StageConfig
from ecomforge.types import Candidate, Score, ScoringContext

from .regions import NEUTRAL_GREY, array_hash, calibrate, product_crop

COSINE_DECIMALS = 5
"""Cosines are rounded to this many decimals, so float noise between a batched and a single
forward pass cannot rank an image above its own identical copy."""

LOW = 0.5
"""A learned scorer explains a score below this, as the offline scorers do."""

FAILED = "the candidate failed to generate"


def cosine_score(value: float, low: float, high: float, what: str) -> Score:
    """The calibrated score of a cosine, with why it is low: the cosine and the calibration's two ends."""
    score = calibrate(value, low, high)
    reason = f"{what} (cosine {value:.2f}; {low:.2f} scores 0, {high:.2f} scores 1)" if score < LOW else ""
    return Score(score, reason)


class Embedder(Protocol):
    """What an embedding scorer needs from a model: an id and a batched image encoder."""

    model_id: str

    def encode_images(self, images: Sequence[np.ndarray], batch_size: int | None = None) -> np.ndarray:
        """(N, D) float32, rows of unit length."""


class EmbeddingCache:
    """Process-wide, bounded store of embeddings keyed by (what, pixels hash, mask hash, model, ...)."""

    def __init__(self, max_items: int = 4096) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: Sequence[tuple], compute: Callable[[list[int]], np.ndarray]) -> np.ndarray:
        """Rows for ``keys``; the missing ones come from one ``compute(indices)`` call (a batch)."""
        with self._lock:
            found = {i: self._items[k] for i, k in enumerate(keys) if k in self._items}
            for i in found:
                self._items.move_to_end(keys[i])
            self.hits += len(found)
        missing = [i for i in range(len(keys)) if i not in found]
        if missing:
            fresh = compute(missing)
            with self._lock:
                self.misses += len(missing)
                for row, i in zip(fresh, missing):
                    found[i] = np.array(row, np.float32)
                    self._items[keys[i]] = found[i]
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
        return np.stack([found[i] for i in range(len(keys))]) if keys else np.zeros((0, 0), np.float32)

    def clear(self) -> None:
        """Forget every embedding and reset the counters."""
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)


EMBEDDINGS = EmbeddingCache()
"""The process-wide cache of reference (and prompt) embeddings shared by every scorer instance."""


class EmbeddingConfig(StageConfig):
    """Options shared by the cosine-similarity scorers."""

    reduce: Literal["max", "mean"] = Field(
        "max", description="How to combine the similarities to several references: best match or average.")
    low: float = Field(0.5, ge=-1.0, le=1.0, description="Cosine that maps to score 0 (unrelated images).")
    high: float = Field(1.0, ge=-1.0, le=1.0, description="Cosine that maps to score 1 (the same product).")
    margin: float = Field(0.08, ge=0.0, le=1.0,
                          description="Context kept around the product's bounding box, as a fraction of its long side.")
    fill: int = Field(NEUTRAL_GREY, ge=0, le=255,
                      description="Grey level that replaces pixels outside the product mask.")
    use_masks: bool = Field(True, description="Compare product regions (masks); false compares whole images.")
    batch_size: int = Field(16, ge=1, le=1024, description="Images per forward pass.")

    @model_validator(mode="after")
    def _low_below_high(self) -> EmbeddingConfig:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class EmbeddingScorer(Scorer):
    """Scores = calibrated cosine between each candidate's product crop and the references' crops."""

    Config = EmbeddingConfig
    embedder: Any = None

    def __init__(self, config: Any = None, *, device: str = "auto", path: str = "config") -> None:
        super().__init__(config, device=device, path=path)
        self.key_path = path  # the recipe key of this config ("score.0.config" when the runner passes it)

    @abstractmethod
    def load_embedder(self) -> Embedder:
        """Load (through MODEL_CACHE) the model that embeds product crops."""

    def setup(self) -> None:
        """Load the embedding model once."""
        self.embedder = self.load_embedder()

    def identity(self) -> dict[str, str]:
        """The embedding model's id."""
        self.ensure_setup()
        return {self.name: self.embedder.model_id}

    def crop(self, image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """The product crop this scorer embeds."""
        cfg = self.config
        return product_crop(image, mask if cfg.use_masks else None, margin=cfg.margin, fill=cfg.fill)

    def reference_embeddings(self, context: ScoringContext) -> np.ndarray:
        """(R, D) embeddings of the references' product crops, from the cache where possible."""
        cfg = self.config
        masks = [m.data if m is not None else None for m in context.masks]
        masks += [None] * (len(context.references) - len(masks))
        keys = [("image", array_hash(ref.image), array_hash(mask) if cfg.use_masks else "none",
                 self.embedder.model_id, cfg.margin, cfg.fill)
                for ref, mask in zip(context.references, masks)]

        def compute(indices: list[int]) -> np.ndarray:
            crops = [self.crop(context.references[i].image, masks[i]) for i in indices]
            return self.embedder.encode_images(crops, cfg.batch_size)

        return EMBEDDINGS.get_many(keys, compute)

    def candidate_embeddings(self, candidates: Sequence[Candidate]) -> np.ndarray:
        """(N, D) embeddings of the candidates' product crops, in batches of ``batch_size``."""
        crops = [self.crop(c.image, c.mask) for c in candidates]
        return self.embedder.encode_images(crops, self.config.batch_size)

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[Score]:
        """Calibrated cosine to the references (max or mean); failed candidates score 0. A low score says
        how far the product is from the references, in the model's own cosine."""
        self.ensure_setup()
        if not context.references:
            raise ValueError(f"{self.name}: the scoring context has no references")
        live = [i for i, c in enumerate(candidates) if c.failed is None]
        scores = [Score(0.0, FAILED)] * len(candidates)
        if not live:
            return scores
        refs = self.reference_embeddings(context)
        cands = self.candidate_embeddings([candidates[i] for i in live])
        cos = np.round(cands @ refs.T, COSINE_DECIMALS)
        combined = cos.max(axis=1) if self.config.reduce == "max" else cos.mean(axis=1)
        which = "closest reference" if self.config.reduce == "max" else "references on average"
        what = f"the product looks unlike the {which} to {self.embedder.model_id}"
        for i, value in zip(live, combined):
            scores[i] = cosine_score(float(value), self.config.low, self.config.high, what)
        return scores
