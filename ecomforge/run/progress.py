"""Progress display as lifecycle-hook plugins: rich bars on a terminal, plain log lines otherwise."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ..hookspecs import hookimpl
from .context import RunContext

if TYPE_CHECKING:
    from rich.progress import TaskID

log = logging.getLogger("ecomforge")
_STEPS = 5  # acquire, mask, generate, score, filter


class PlainProgress:
    """One log line per step start/end (for logs and CI)."""

    def __init__(self, echo=None) -> None:
        self.echo = echo or (lambda msg: log.info(msg))
        self._t: dict[tuple[str, str], float] = {}

    @hookimpl
    def on_run_start(self, run: RunContext) -> None:
        """Say where the run goes."""
        self.echo(f"{'resuming' if run.resumed else 'run'} {run.run_id} -> {run.dir}")

    @hookimpl
    def on_step_start(self, run: RunContext, step: str, product: str, total: int) -> None:
        """Remember when the step started."""
        self._t[(step, product)] = time.perf_counter()

    @hookimpl
    def on_step_end(self, run: RunContext, step: str, product: str, seconds: float) -> None:
        """Log the step's duration: the time measured inside the step, else the wall time since its start.

        A product's score and filter steps run in a helper thread; their hook calls reach observers as they
        come while the run waits for that product, else with the next generation result, so a step's start
        and end may come close together: its own measured ``seconds`` is the true figure.
        """
        wall = time.perf_counter() - self._t.pop((step, product), time.perf_counter())
        self.echo(f"[{product}] {step} done in {(seconds if seconds > 0 else wall):.2f}s")

    @hookimpl
    def on_run_end(self, run: RunContext, summary: dict[str, Any]) -> None:
        """Log the totals."""
        self.echo(f"done: {summary['total_candidates']} candidates, {summary['total_kept']} kept, "
                  f"{summary['seconds']:.1f}s -> {run.dir}")


class RichProgress:
    """An overall bar and a per-step bar with ETA, drawn by rich on a terminal."""

    def __init__(self, console=None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 console=console or Console(stderr=True), transient=False)
        self.overall: TaskID | None = None
        self.step_task: TaskID | None = None

    @hookimpl
    def on_run_start(self, run: RunContext) -> None:
        """Start the overall bar: five steps per product."""
        self.progress.start()
        self.overall = self.progress.add_task(f"run {run.recipe.name}", total=_STEPS * len(run.products))

    @hookimpl
    def on_step_start(self, run: RunContext, step: str, product: str, total: int) -> None:
        """A bar for this step."""
        if self.step_task is not None:
            self.progress.remove_task(self.step_task)
        self.step_task = self.progress.add_task(f"  {product}: {step}", total=max(total, 1))

    @hookimpl
    def on_step_advance(self, run: RunContext, step: str, product: str, advance: int) -> None:
        """Move the step bar."""
        if self.step_task is not None:
            self.progress.advance(self.step_task, advance)

    @hookimpl
    def on_step_end(self, run: RunContext, step: str, product: str, seconds: float) -> None:
        """Fill the step bar and move the overall one."""
        if self.step_task is not None:
            task = self.progress.tasks[-1]
            self.progress.update(self.step_task, completed=task.total)
        if self.overall is not None:  # None only before on_run_start, which the runner always calls first
            self.progress.advance(self.overall, 1)

    @hookimpl
    def on_run_end(self, run: RunContext, summary: dict[str, Any]) -> None:
        """Stop drawing."""
        self.progress.stop()

    @hookimpl
    def on_run_error(self, run: RunContext, error: BaseException) -> None:
        """Stop drawing, leaving the bars as they were."""
        self.progress.stop()
