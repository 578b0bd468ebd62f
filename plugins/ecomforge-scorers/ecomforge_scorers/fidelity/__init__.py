"""The fidelity benchmark: do scorers rank real re-shoots and clean composites above damaged ones?"""
from __future__ import annotations

from ecomforge.analysis.stats import auroc

from .harness import DEFAULT_SCORERS, run_fidelity

__all__ = ["DEFAULT_SCORERS", "auroc", "run_fidelity"]
