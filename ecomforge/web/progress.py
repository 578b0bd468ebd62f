"""A lifecycle-hook observer that records a job's progress and raises ``JobCancelled`` when asked to stop."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..hookspecs import hookimpl

# Rough share of a product's time per step, for the overall fraction and ETA (generation dominates).
WEIGHTS = {"acquire": 1.0, "mask": 2.0, "generate": 20.0, "score": 4.0, "filter": 1.0}


class JobCancelled(BaseException):
    """Raised from a hook to stop a run. A BaseException, so the runner re-raises it instead of wrapping it
    as a stage failure; the run folder stays resumable."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason


class JobObserver:
    """Counts steps and candidates of the run whose folder lies under ``out`` (other runs are ignored)."""

    def __init__(self, out: Path, stop: threading.Event, on_change: Callable[[dict[str, Any], bool], None]) -> None:
        self.out = Path(out).resolve()
        self.stop = stop
        self.stop_reason = "cancelled"
        self.on_change = on_change  # (progress, persist) -> None
        self.run_dir: Path | None = None
        self.t0 = time.time()
        self.state: dict[str, Any] = {"stage": "starting", "product": None, "done": 0, "total": 0,
                                      "fraction": 0.0, "eta_s": None, "elapsed_s": 0.0, "candidates": 0}
        self._weight_done = 0.0
        self._weight_total = 1.0

    def _mine(self, run) -> bool:
        d = Path(run.dir).resolve()
        return d == self.out or self.out in d.parents

    def _check(self) -> None:
        if self.stop.is_set():
            raise JobCancelled(self.stop_reason)

    def _emit(self, persist: bool = False) -> None:
        s = self.state
        step_w = WEIGHTS.get(s["stage"], 0.0) * (s["done"] / s["total"] if s["total"] else 0.0)
        frac = min(1.0, (self._weight_done + step_w) / self._weight_total)
        elapsed = time.time() - self.t0
        s["fraction"] = round(frac, 4)
        s["elapsed_s"] = round(elapsed, 2)
        s["eta_s"] = round(elapsed * (1 - frac) / frac, 1) if frac > 0.02 else None
        self.on_change(dict(s), persist)

    @hookimpl
    def on_run_start(self, run) -> None:
        """Remember the run folder; the overall total is five weighted steps per product."""
        if not self._mine(run):
            return
        self.run_dir = Path(run.dir)
        self.t0 = time.time()
        self._weight_total = sum(WEIGHTS.values()) * max(1, len(run.products))
        self.state["products"] = len(run.products)
        self._emit(persist=True)
        self._check()

    @hookimpl
    def on_step_start(self, run, step: str, product: str, total: int) -> None:
        """A step begins."""
        if not self._mine(run):
            return
        self.state.update(stage=step, product=product, done=0, total=total)
        self._emit()
        self._check()

    @hookimpl
    def on_step_advance(self, run, step: str, product: str, advance: int) -> None:
        """More units of the step are done; stop here if cancelled."""
        if not self._mine(run):
            return
        self.state["done"] += advance
        self._emit()
        self._check()

    @hookimpl
    def on_candidate(self, run, record: dict[str, Any], image: Any) -> None:
        """A candidate was generated; stop here if cancelled."""
        if not self._mine(run):
            return
        self.state["candidates"] += 1
        self._check()

    @hookimpl
    def on_step_end(self, run, step: str, product: str, seconds: float) -> None:
        """A step finished: its weight counts as done."""
        if not self._mine(run):
            return
        self._weight_done += WEIGHTS.get(step, 0.0)
        self.state.update(done=self.state["total"])
        self._emit(persist=step in ("generate", "filter"))

    @hookimpl
    def on_run_end(self, run, summary: dict[str, Any]) -> None:
        """All done."""
        if not self._mine(run):
            return
        self.state.update(stage="finished", fraction=1.0, eta_s=0.0)
        self._weight_done = self._weight_total
        self._emit(persist=True)
