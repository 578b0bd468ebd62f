"""The MLflow plugin logs a real run into a local file store, read back through MLflow's client."""
from __future__ import annotations

import sys
from pathlib import Path

import mlflow  # a dependency of this plugin

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

from ecomforge.recipe import load_recipe
from ecomforge.run.runner import run_recipe
from ecomforge.testing import temporary_plugins

import toyplugins


def test_run_is_logged(tmp_path, monkeypatch):
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a local folder store, no server
    mlflow.set_tracking_uri(store.as_uri())
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(toyplugins.TOY_RECIPE)
    with temporary_plugins(toyplugins) as reg:
        assert any(p.startswith("ecomforge-mlflow") for p in reg.pm.list_name_plugin() for p in [p[0]])
        result = run_recipe(load_recipe(recipe), out=tmp_path / "runs")
    client = mlflow.tracking.MlflowClient(tracking_uri=store.as_uri())
    exp = client.get_experiment_by_name("toy")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    r = runs[0]
    assert r.info.run_name == result.run_dir.name and r.info.status == "FINISHED"
    assert r.data.params["generate.plugin"] == "toy"
    assert r.data.params["generate.sweep.level"] == "[60, 180]"
    assert r.data.metrics["candidates"] == 18 and r.data.metrics["kept"] == 9
    assert r.data.metrics["a.kept"] == 6 and "a.toy.mean" in r.data.metrics
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"manifest.jsonl", "recipe.yaml", "selected"} <= artifacts


def test_disabled_without_tracking_uri(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ECOMFORGE_MLFLOW", raising=False)
    import ecomforge_mlflow

    assert not ecomforge_mlflow.enabled()
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(toyplugins.TOY_RECIPE)
    with temporary_plugins(toyplugins):
        run_recipe(load_recipe(recipe), out=tmp_path / "runs")
    assert not (tmp_path / "mlruns").exists() and not ecomforge_mlflow._active_runs
