"""CLIP-I (image–image) and CLIP-T (image–prompt) scores, as in the DreamBooth paper's evaluation."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from ecomforge.clip import ClipEmbedder, check_clip, load_clip
from ecomforge.errors import InputError
from ecomforge.models import check_device
from ecomforge.pathspec import ModelRef
from ecomforge.types import Candidate, Score, ScoringContext

from .embedding import COSINE_DECIMALS, EMBEDDINGS, FAILED, EmbeddingConfig, EmbeddingScorer, cosine_score
from .regions import product_crop

DEFAULT_CLIP = "ViT-B-32/laion2b_s34b_b79k"


class ClipImageScorer(EmbeddingScorer):
    """CLIP-I: cosine between CLIP image embeddings of the candidate's and the references' product crops.

    Each product is cut to its mask's bounding box (plus ``margin``), pixels outside the mask set
    to grey, padded square. Calibration: ``score = clip((cos - low) / (high - low), 0, 1)`` with
    ``low=0.5, high=1.0`` by default: CLIP ViT-B/32 gives cosines around 0.4–0.6 for unrelated
    photos and about 0.85–0.9 for two real photos of one object (DreamBooth reports CLIP-I 0.885
    between real images of a subject), and 1.0 for identical pixels.
    """

    name = "clip-image"

    class Config(EmbeddingConfig):
        model: ModelRef = Field(DEFAULT_CLIP, description="open_clip 'ARCH/TAG', a folder with open_clip_config.json, "
                                                     "or a weights file (see docs/scorers.md).")

    def check(self) -> None:
        """The CLIP weights must be on disk or downloadable: fail before any work, naming the key."""
        check_device(self.device)
        check_clip(self.config.model, f"{self.key_path}.model")

    def load_embedder(self) -> ClipEmbedder:
        """The open_clip model, shared through MODEL_CACHE."""
        return load_clip(self.config.model, self.device)


class ClipTextScorer(EmbeddingScorer):
    """CLIP-T: cosine between the CLIP embeddings of the whole candidate and the prompt.

    The whole candidate is padded square with grey (so the model sees all of the scene, not a
    centre crop). Calibration: ``clip((cos - low) / (high - low), 0, 1)`` with ``low=0.15,
    high=0.35``: CLIP ViT-B/32 image–text cosines sit near 0.1–0.15 for an unrelated caption and
    about 0.3–0.35 for a good one (DreamBooth reports CLIP-T 0.305 on Stable Diffusion).
    """

    name = "clip-text"

    class Config(EmbeddingConfig):
        model: ModelRef = Field(DEFAULT_CLIP, description="open_clip 'ARCH/TAG', a folder with open_clip_config.json, "
                                                     "or a weights file (see docs/scorers.md).")
        prompt: str | None = Field(None, description="Text to compare with instead of the recipe's prompt.")
        low: float = Field(0.15, ge=-1.0, le=1.0, description="Cosine that maps to score 0 (unrelated caption).")
        high: float = Field(0.35, ge=-1.0, le=1.0, description="Cosine that maps to score 1 (a fitting caption).")

    def check(self) -> None:
        """The CLIP weights must be on disk or downloadable: fail before any work, naming the key."""
        check_device(self.device)
        check_clip(self.config.model, f"{self.key_path}.model")

    def load_embedder(self) -> ClipEmbedder:
        """The open_clip model, shared through MODEL_CACHE."""
        return load_clip(self.config.model, self.device)

    def text_embedding(self, prompt: str) -> np.ndarray:
        """(1, D) embedding of the prompt, cached per (prompt, model)."""
        key = ("text", prompt, self.embedder.model_id)
        return EMBEDDINGS.get_many([key], lambda _: self.embedder.encode_texts([prompt]))

    def score(self, candidates: Sequence[Candidate], context: ScoringContext) -> list[Score]:
        """Calibrated image–prompt cosine per candidate; failed candidates score 0. A low score says the image
        does not match the prompt, with the cosine."""
        self.ensure_setup()
        prompt = (self.config.prompt or context.prompt or "").strip()
        if not prompt:
            raise InputError("clip-text needs a prompt: inputs.prompt is empty (or set the scorer's config.prompt)")
        text = self.text_embedding(prompt)
        live = [i for i, c in enumerate(candidates) if c.failed is None]
        scores = [Score(0.0, FAILED)] * len(candidates)
        if not live:
            return scores
        images = [product_crop(candidates[i].image, None, margin=0.0, fill=self.config.fill) for i in live]
        cos = np.round(self.embedder.encode_images(images, self.config.batch_size) @ text[0], COSINE_DECIMALS)
        for i, value in zip(live, cos):
            scores[i] = cosine_score(float(value), self.config.low, self.config.high,
                                     "the image matches the prompt poorly")
        return scores
