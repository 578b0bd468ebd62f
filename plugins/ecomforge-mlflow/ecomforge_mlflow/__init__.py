"""MLflow logging through the run lifecycle hooks.

Active when ``MLFLOW_TRACKING_URI`` (or ``ECOMFORGE_MLFLOW=1``, which uses MLflow's default
store) is set; otherwise every hook returns at once and mlflow is never imported.
"""
from __future__ import annotations

import os
from typing import Any

from ecomforge import hookimpl

__version__ = "0.1.0"

_active_runs: dict[str, Any] = {}


def enabled() -> bool:
    """True when the user asked for MLflow logging."""
    return bool(os.environ.get("MLFLOW_TRACKING_URI")) or os.environ.get("ECOMFORGE_MLFLOW", "") in {"1", "true"}


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value)[:500]


@hookimpl
def on_run_start(run):
    """Start an MLflow run named after the ecomforge run and log the resolved recipe as params."""
    if not enabled():
        return
    import mlflow

    mlflow.set_experiment(os.environ.get("ECOMFORGE_MLFLOW_EXPERIMENT", run.recipe.name))
    active = mlflow.start_run(run_name=run.run_id)
    _active_runs[run.run_id] = active
    params: dict[str, str] = {}
    resolved = run.resolved.to_dict()
    for key in ("generate", "mask", "filter"):
        _flatten(key, resolved[key], params)
    for i, s in enumerate(resolved.get("score", [])):
        _flatten(f"score.{i}", s, params)
    _flatten("plugins", resolved.get("plugins", {}), params)
    mlflow.log_params(params)
    mlflow.set_tags({"ecomforge.run_dir": str(run.dir), "ecomforge.resumed": str(run.resumed)})


@hookimpl
def on_product_done(run, product, records):
    """Log each product's score statistics and kept count as metrics."""
    if run.run_id not in _active_runs:
        return
    import mlflow

    ok = [r for r in records if not r.get("failed")]
    metrics = {f"{product}.candidates": len(records), f"{product}.kept": sum(bool(r["kept"]) for r in records),
               f"{product}.failed": len(records) - len(ok)}
    names = sorted({k for r in ok for k in r["scores"]})
    for name in names:
        vals = [r["scores"][name] for r in ok if name in r["scores"]]
        if vals:
            metrics[f"{product}.{name}.mean"] = sum(vals) / len(vals)
            metrics[f"{product}.{name}.max"] = max(vals)
    totals = [r["total"] for r in ok if r.get("total") is not None]
    if totals:
        metrics[f"{product}.total.mean"] = sum(totals) / len(totals)
    mlflow.log_metrics({k.replace(" ", "_"): float(v) for k, v in metrics.items()})


@hookimpl
def on_run_end(run, summary):
    """Log totals and stage times, attach the manifest, report and selected images, end the run."""
    if run.run_id not in _active_runs:
        return
    import mlflow

    mlflow.log_metrics({"candidates": summary["total_candidates"], "kept": summary["total_kept"],
                        "seconds": summary["seconds"],
                        **{f"stage_seconds.{k}": v for k, v in summary.get("stage_seconds", {}).items()}})
    for name in ("recipe.yaml", "manifest.jsonl"):
        if (run.dir / name).exists():
            mlflow.log_artifact(str(run.dir / name))
    if (run.dir / "selected").is_dir():
        mlflow.log_artifacts(str(run.dir / "selected"), artifact_path="selected")
    _active_runs.pop(run.run_id)
    mlflow.end_run()


@hookimpl
def on_run_error(run, error):
    """Mark the MLflow run failed."""
    if _active_runs.pop(run.run_id, None) is None:
        return
    import mlflow

    mlflow.set_tag("ecomforge.error", str(error)[:500])
    mlflow.end_run(status="FAILED")
