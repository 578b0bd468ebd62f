"""Progress display hangs off the lifecycle hooks: bars on a terminal, log lines otherwise."""
from __future__ import annotations

import io

from rich.console import Console

from ecomforge.recipe import load_recipe
from ecomforge.run.progress import PlainProgress, RichProgress
from ecomforge.run.runner import run_recipe


def test_rich_bars_overall_and_per_step(toy_registry, toy_recipe, tmp_path):
    buf = io.StringIO()
    bar = RichProgress(Console(file=buf, force_terminal=True, width=120))
    run_recipe(load_recipe(toy_recipe), out=tmp_path / "r", observers=[bar])
    text = buf.getvalue()
    assert "run toy" in text and "b: filter" in text and "eta" in text
    overall = bar.progress.tasks[0]
    assert overall.completed == overall.total == 10  # 2 products x 5 steps


def test_plain_lines(toy_registry, toy_recipe, tmp_path):
    lines: list[str] = []
    run_recipe(load_recipe(toy_recipe), out=tmp_path / "r", observers=[PlainProgress(lines.append)])
    assert lines[0].startswith("run toy-")
    assert sum("generate done" in ln for ln in lines) == 2
    assert lines[-1].startswith("done: 18 candidates, 9 kept")


def test_plain_lines_report_the_time_measured_inside_a_step():
    """Events replayed from a helper thread arrive together: the step's own seconds is the duration shown."""
    lines: list[str] = []
    plain = PlainProgress(lines.append)
    plain.on_step_start(run=None, step="score", product="vase", total=4)
    plain.on_step_end(run=None, step="score", product="vase", seconds=1.5)
    plain.on_step_start(run=None, step="filter", product="vase", total=1)
    plain.on_step_end(run=None, step="filter", product="vase", seconds=0.0)  # no measure: the wall time
    assert lines == ["[vase] score done in 1.50s", "[vase] filter done in 0.00s"]
