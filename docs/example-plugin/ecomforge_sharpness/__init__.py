"""An example ecomforge plugin: the ``sharpness`` scorer.

Hooks only register classes; the behaviour lives in the class. Heavy imports (here cv2) happen
inside methods, so ``ecomforge --help`` stays fast however many plugins are installed.
"""
from __future__ import annotations

from ecomforge import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_scorers(register):
    """Register the sharpness scorer."""
    from .scorer import SharpnessScorer

    register(SharpnessScorer)
