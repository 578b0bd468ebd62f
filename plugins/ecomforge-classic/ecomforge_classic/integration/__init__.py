"""Integration scorers: does the product sit well in its new scene? (offline, OpenCV/numpy, no weights).

Paste-back makes the product's own pixels identical to the reference, so these judge what is
around them: regrown product matter (``expansion``), halos and seams along the paste-back edge
(``seams``), a second copy of the product (``duplicates``), a degenerate background (``scene``)
and the framing (``framing``). Each returns a ``Score`` in [0,1] with a reason when it is low.
"""
from __future__ import annotations

from .duplicates import DuplicatesScorer
from .expansion import ExpansionScorer
from .framing import FramingScorer
from .scene import SceneScorer
from .seams import SeamsScorer

SCORERS = (ExpansionScorer, SeamsScorer, DuplicatesScorer, SceneScorer, FramingScorer)

__all__ = ["SCORERS", "DuplicatesScorer", "ExpansionScorer", "FramingScorer", "SceneScorer", "SeamsScorer"]
