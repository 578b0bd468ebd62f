"""What the runner's steps pass along: one product's state on its way through them, and a run's result."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..recipe.products import ProductPlan
from ..stages import GenerationJob
from ..types import Candidate, Decision, Mask, Reference


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    records: list[dict[str, Any]]
    summary: dict[str, Any]


@dataclass
class ProductWork:
    """One product on its way through the steps: each step reads what the earlier ones filled in."""

    product: str
    plan: ProductPlan  # references, prompts and per-step configs of this product
    refs: list[Reference] = field(default_factory=list)
    masks: list[Mask] = field(default_factory=list)
    jobs: list[GenerationJob] = field(default_factory=list)
    cands: dict[str, Candidate] = field(default_factory=dict)  # candidate id -> candidate
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # candidate id -> its job, generate seconds
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # candidate id -> scorer key -> value
    reasons: dict[str, dict[str, str]] = field(default_factory=dict)  # candidate id -> scorer key -> why low
    verdict: dict[str, Decision] = field(default_factory=dict)  # candidate id -> the filter's decision
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds inside the stage

    def order(self) -> list[str]:
        """Every candidate id, in job order."""
        return [cid for job in self.jobs for cid in job.ids]

    def ok(self) -> list[str]:
        """Ids of candidates that did not fail, in job order."""
        return [cid for cid in self.order() if not self.cands[cid].failed]
