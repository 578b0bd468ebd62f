"""Every scorer class this plugin registers, in one place for the registration hook."""
from __future__ import annotations

from .clip_scorers import ClipImageScorer, ClipTextScorer
from .dino import DinoScorer
from .lpips_scorer import LpipsScorer

__all__ = ["ClipImageScorer", "ClipTextScorer", "DinoScorer", "LpipsScorer"]
