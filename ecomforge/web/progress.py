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
        self._open = False  # a step has started and not ended: its share counts by its done/total
        self._step_t0 = self.t0  # when the running (or last) step started
        self._made: set[str] = set()  # ids of the run folder's candidates: on disk at a resume, and written since

    def _mine(self, run) -> bool:
        d = Path(run.dir).resolve()
        return d == self.out or self.out in d.parents

    def _check(self) -> None:
        if self.stop.is_set():
            raise JobCancelled(self.stop_reason)

    def _emit(self, persist: bool = False) -> None:
        s = self.state
        # An ended step's weight is in _weight_done already: counting it again here made a job claim 100 %
        # (and ETA 0) at the end of generation, while scoring still had half the job to do.
        step_w = WEIGHTS.get(s["stage"], 0.0) * (s["done"] / s["total"] if s["total"] else 0.0) if self._open else 0.0
        frac = min(1.0, (self._weight_done + step_w) / self._weight_total)
        now = time.time()
        elapsed = now - self.t0
        s["fraction"] = round(frac, 4)
        s["elapsed_s"] = round(elapsed, 2)
        s["eta_s"] = self._eta(frac, now)
        self.on_change(dict(s), persist)

    def _eta(self, frac: float, now: float) -> float | None:
        """Seconds left: the running step at its own pace once it has done some, the steps after it at the pace of
        those before (seconds per unit of weight); never 0 while work remains.

        By weights alone a step slower than its weight says (scoring a composite job: half its time) was
        promised done in a second for as long as it ran.
        """
        if frac >= 1:
            return 0.0
        s = self.state
        if self._weight_done <= 0:  # nothing ended yet: the overall pace is all there is
            return max(0.1, round((now - self.t0) * (1 - frac) / frac, 1)) if frac > 0.02 else None
        rate = max(0.0, self._step_t0 - self.t0) / self._weight_done
        weight = WEIGHTS.get(s["stage"], 0.0) if self._open else 0.0
        step_left = 0.0
        if self._open:
            ran = now - self._step_t0
            step_left = ran * (s["total"] - s["done"]) / s["done"] if s["done"] and s["total"] else max(0.0, weight * rate - ran)
        later = max(0.0, self._weight_total - self._weight_done - weight)
        return max(0.1, round(step_left + later * rate, 1))

    @hookimpl
    def on_run_start(self, run) -> None:
        """Remember the run folder; the overall total is five weighted steps per product."""
        if not self._mine(run):
            return
        self.run_dir = Path(run.dir)
        self.t0 = self._step_t0 = time.time()
        if run.resumed:  # the counts cover the whole run folder, not only what this session makes
            self._made = {p.stem for p in (self.run_dir / "candidates").glob("*.png") if not p.name.endswith(".mask.png")}
            self.state["candidates"] = len(self._made)
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
        self._open, self._step_t0 = True, time.time()
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

    @hookimpl(trylast=True)
    def on_candidate(self, run, record: dict[str, Any], image: Any) -> None:
        """A candidate was written; stop here if cancelled.

        Called after the run store's hook (``trylast``): a cancel raised here stops the hook chain, so a count
        made before the store had written the file would name one candidate more than the folder holds.
        A candidate made again on a resume (its batch was cut short) counts once.
        """
        if not self._mine(run):
            return
        self._made.add(str(record["id"]))
        self.state["candidates"] = len(self._made)
        self._emit()
        self._check()

    @hookimpl
    def on_step_end(self, run, step: str, product: str, seconds: float) -> None:
        """A step finished: its weight counts as done."""
        if not self._mine(run):
            return
        self._weight_done += WEIGHTS.get(step, 0.0)
        self._open = False
        self.state.update(done=self.state["total"])
        self._emit(persist=step in ("generate", "filter"))

    @hookimpl
    def on_run_end(self, run, summary: dict[str, Any]) -> None:
        """All done."""
        if not self._mine(run):
            return
        self.state.update(stage="finished", fraction=1.0, eta_s=0.0,
                          candidates=int(summary.get("total_candidates", self.state["candidates"])))
        self._weight_done = self._weight_total
        self._open = False
        self._emit(persist=True)
