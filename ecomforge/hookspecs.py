"""Every ecomforge hook, typed, grouped by lifecycle. Hooks only register things or observe a run."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import click

    from .run.context import RunContext
    from .types import Mask, Reference

hookspec = pluggy.HookspecMarker("ecomforge")
hookimpl = pluggy.HookimplMarker("ecomforge")

Register = Callable[[type], None]


# --- registration: each hook is handed ``register(cls)`` for one stage kind -------------------

@hookspec
def register_acquirers(register: Register) -> None:
    """Register ``Acquirer`` subclasses (where reference photos come from)."""


@hookspec
def register_maskers(register: Register) -> None:
    """Register ``Masker`` subclasses (how the product region is found)."""


@hookspec
def register_generators(register: Register) -> None:
    """Register ``Generator`` subclasses (how new images are made)."""


@hookspec
def register_scorers(register: Register) -> None:
    """Register ``Scorer`` subclasses (how faithful a candidate is to the product)."""


@hookspec
def register_filters(register: Register) -> None:
    """Register ``Filter`` subclasses (which scored candidates are kept)."""


@hookspec
def register_executors(register: Register) -> None:
    """Register ``Executor`` subclasses (where generation jobs run)."""


@hookspec
def register_trainers(register: Register) -> None:
    """Register ``Trainer`` subclasses (fine-tuning on the references)."""


@hookspec
def register_commands(cli: "click.Group") -> None:
    """Add click commands to the ``ecomforge`` CLI."""


# --- run lifecycle: progress, logging, the run store and metrics hang off these ----------------
# Each run calls these through its own scope (ecomforge.run.hooks.RunHooks): the installed plugins plus
# that run's store and observers, never another run's. An implementation that raises becomes a
# HookError naming its plugin and the hook: fatal for a plugin with ``hook_errors = "raise"`` (the run
# store), a logged warning (``summary["hook_warnings"]``) for any other, and never a stage's failure.

@hookspec
def on_run_start(run: "RunContext") -> None:
    """A run begins: the run folder exists and the resolved recipe is known."""


@hookspec
def on_run_end(run: "RunContext", summary: dict[str, Any]) -> None:
    """A run finished; ``summary`` counts candidates, kept ones and timings."""


@hookspec
def on_run_error(run: "RunContext", error: BaseException) -> None:
    """A run stopped on an error (the run folder stays resumable)."""


@hookspec
def on_step_start(run: "RunContext", step: str, product: str, total: int) -> None:
    """A step (acquire, mask, generate, score, filter) begins for a product; ``total`` work units."""


@hookspec
def on_step_advance(run: "RunContext", step: str, product: str, advance: int) -> None:
    """``advance`` more units of the current step are done."""


@hookspec
def on_step_end(run: "RunContext", step: str, product: str, seconds: float) -> None:
    """A step finished for a product, after ``seconds`` inside the stage."""


@hookspec
def on_step_error(run: "RunContext", step: str, product: str, error: BaseException) -> None:
    """A step failed for a product."""


@hookspec
def on_references(run: "RunContext", product: str, references: "list[Reference]") -> None:
    """A product's references were acquired."""


@hookspec
def on_mask(run: "RunContext", product: str, reference: "Reference", mask: "Mask") -> None:
    """A reference's product mask was made."""


@hookspec
def on_candidate(run: "RunContext", record: dict[str, Any], image: Any) -> None:
    """A candidate was generated (``record`` is its manifest entry so far, ``image`` the ``Candidate`` itself)."""


@hookspec
def on_product_done(run: "RunContext", product: str, records: list[dict[str, Any]]) -> None:
    """A product's candidates are scored and filtered; ``records`` are final manifest entries."""
