"""What lifecycle hooks receive about the run in progress."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TIME_LOCK = threading.Lock()  # helper threads (masking, scoring several products at once) add times too


@dataclass
class RunContext:
    """The run in progress: its id, folder, resolved recipe and device."""

    run_id: str
    dir: Path
    resolved: Any  # ecomforge.recipe.load.ResolvedRecipe (not imported: hooks stay below the loader)
    device: str = "auto"
    resumed: bool = False
    started: float = field(default_factory=time.time)
    products: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # step -> seconds inside stages
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def recipe(self):
        """The validated recipe."""
        return self.resolved.recipe

    def add_time(self, step: str, seconds: float) -> None:
        """Accumulate time spent inside a stage's method."""
        with _TIME_LOCK:
            self.stage_seconds[step] = self.stage_seconds.get(step, 0.0) + seconds
