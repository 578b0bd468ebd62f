"""Run a whole recipe in a test, with your plugins registered for that run only."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..recipe.load import resolve_recipe
from ..run.runner import RunResult, run_recipe
from .fixtures import temporary_plugins


def run_test_recipe(recipe: str | dict[str, Any], out: Path, *plugins: Any, entry_points: bool = True,
                    device: str = "cpu") -> RunResult:
    """Validate and run ``recipe`` (YAML text or a dict) into ``out`` with ``plugins`` added to the registry.

    The plugins are registered for this call only, so nothing leaks into other tests. Relative reference paths
    resolve against ``out``. Returns the run's records, summary and folder::

        result = run_test_recipe(MY_RECIPE, tmp_path, my_plugin_module)
        assert sum(r["kept"] for r in result.records) == 2
    """
    data = yaml.safe_load(recipe) if isinstance(recipe, str) else dict(recipe)
    out.mkdir(parents=True, exist_ok=True)
    with temporary_plugins(*plugins, entry_points=entry_points) as registry:
        resolved = resolve_recipe(data, path=out / "recipe.yaml", registry=registry)
        return run_recipe(resolved, out=out, device=device, registry=registry)


def read_manifest(run_dir: Path) -> list[dict[str, Any]]:
    """The run folder's manifest records, in file order."""
    lines = (run_dir / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]
