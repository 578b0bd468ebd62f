"""The fidelity benchmark: do scorers rank benign variants of a product above damaged ones?"""
from __future__ import annotations

from .harness import DEFAULT_PRODUCTS, DEFAULT_SCORERS, auroc, run_fidelity

__all__ = ["DEFAULT_PRODUCTS", "DEFAULT_SCORERS", "auroc", "run_fidelity"]
