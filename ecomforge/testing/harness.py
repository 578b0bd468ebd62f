"""Run a whole recipe in a test, with your plugins registered for that run only."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..recipe.load import resolve_recipe
from ..run.runner import RunResult, run_recipe
from .fixtures import temporary_plugins


def run_test_recipe(recipe: str | dict[str, Any], out: Path, *plugins: Any, entry_points: bool = True,
                    device: str = "cpu", allow_failures: bool = False) -> RunResult:
    """Validate and run ``recipe`` (YAML text or a dict) into ``out`` with ``plugins`` added to the registry.

    The plugins are registered for this call only, so nothing leaks into other tests. Relative reference paths
    resolve against ``out``. A product that fails raises its error (naming the product, step and plugin, chained
    from the plugin's own), since a run whose every product failed has no records and would pass any
    ``all(...)`` assertion; pass ``allow_failures=True`` to test failures, which are then in
    ``result.summary["failed_products"]`` and ``read_failures(result.run_dir)``. Returns the run's records,
    summary and folder::

        result = run_test_recipe(MY_RECIPE, tmp_path, my_plugin_module)
        assert sum(r["kept"] for r in result.records) == 2
    """
    data = yaml.safe_load(recipe) if isinstance(recipe, str) else dict(recipe)
    out.mkdir(parents=True, exist_ok=True)
    with temporary_plugins(*plugins, entry_points=entry_points) as registry:
        resolved = resolve_recipe(data, path=out / "recipe.yaml", registry=registry)
        result = run_recipe(resolved, out=out, device=device, registry=registry, fail_fast=not allow_failures)
    failed = result.summary.get("failed_products") or []
    if failed and not allow_failures:
        raise AssertionError("; ".join(f"product '{f['product']}' failed in {f['step']} plugin '{f['plugin']}': "
                                       f"{f['reason']}" for f in failed) + " (pass allow_failures=True to test this)")
    return result
