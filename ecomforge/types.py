"""The values that flow between stages: references, masks, candidates and their scores."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Reference:
    """One reference photo of a product: RGB pixels, optional alpha, where it came from."""

    image: np.ndarray  # H×W×3 uint8, RGB
    source: str  # path or URL as given
    sha256: str  # of the original file bytes
    alpha: np.ndarray | None = None  # H×W uint8, kept as a hint for maskers
    product: str = "product"
    name: str = ""  # short file-safe stem, unique within the product

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True, eq=False)
class Mask:
    """The product region of one reference: uint8 H×W, 0 or 255 (255 = product)."""

    data: np.ndarray
    score: float = 1.0  # the masker's confidence in [0,1]
    label: str = ""
    feather: int = 0  # px: width of the soft edge used when the product is pasted back
    dilate: int = 0  # px: how far the paste-back region reaches beyond the product

    @property
    def area(self) -> float:
        """Fraction of pixels inside the product."""
        return float(np.count_nonzero(self.data)) / max(1, self.data.size)


@dataclass(eq=False)
class Candidate:
    """One generated image with everything needed to reproduce it."""

    image: np.ndarray  # H×W×3 uint8 RGB
    seed: int
    params: dict[str, Any]  # the exact parameters the generator used (JSON-serialisable)
    plugin: str = ""
    models: dict[str, str] = field(default_factory=dict)  # role -> model id (and weight hash)
    mask: np.ndarray | None = None  # product region in this image's coordinates, uint8 {0,255}
    failed: str | None = None  # why the candidate is unusable (NaN output, ...), else None
    info: dict[str, Any] = field(default_factory=dict)  # notes from the generator (retries, ...)


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a generator needs for one parameter point: a list of seeds to batch."""

    reference: Reference
    mask: Mask
    prompt: str
    negative_prompt: str
    config: Any  # the generator's validated Config for this sweep point
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class ScoringContext:
    """What scorers compare candidates against: the product's references, masks and the prompt."""

    references: tuple[Reference, ...]
    masks: tuple[Mask, ...]
    prompt: str = ""


class Score(float):
    """One scorer's verdict on one candidate: a float in [0,1] that can also say why it is low.

    A float subclass, so code that treats scores as numbers (comparisons, means, JSON) keeps working.
    """

    reason: str  # a few words a user can act on ("background is flat grey"); empty when fine

    def __new__(cls, value: float, reason: str = "") -> "Score":
        obj = super().__new__(cls, value)
        obj.reason = reason
        return obj

    @property
    def value(self) -> float:
        """The plain float."""
        return float(self)

    def __repr__(self) -> str:
        return f"Score({float(self)!r}, {self.reason!r})"


@dataclass
class Scored:
    """A candidate with its id, per-scorer scores and weighted total."""

    id: str
    candidate: Candidate
    scores: dict[str, float]
    total: float
    reasons: dict[str, str] = field(default_factory=dict)  # scorer key -> why its score is low


@dataclass(frozen=True)
class Decision:
    """A filter's verdict on one candidate."""

    kept: bool
    reason: str
