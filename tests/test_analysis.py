"""A/B statistics on data with a known answer, compare on real run folders, export read back."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.analysis.compare import compare_runs, write_compare
from ecomforge.analysis.export import export_imagefolder
from ecomforge.analysis.stats import bootstrap_mean_ci, ranks, spearman, win_rate
from ecomforge.recipe import load_recipe
from ecomforge.run.runner import run_recipe
from ecomforge.run.store import read_manifest

TOYCLI = [sys.executable, str(Path(__file__).parent / "toycli.py")]


def test_spearman_known_answers():
    x = np.arange(10.0)
    assert spearman(x, x ** 3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert spearman(x, np.ones(10)) is None
    # textbook example: d^2 sum = 2 over n=5 -> 1 - 6*2/(5*24) = 0.9
    assert spearman([1, 2, 3, 4, 5], [2, 1, 3, 4, 5]) == pytest.approx(0.9)


def test_ranks_average_ties():
    assert ranks(np.array([10, 20, 20, 30])).tolist() == [1, 2.5, 2.5, 4]


def test_win_rate_and_bootstrap_known_answers():
    a = np.zeros(50)
    b = np.full(50, 0.2)
    assert win_rate(a, b) == 1.0 and win_rate(b, a) == 0.0 and win_rate(a, a) == 0.5
    lo, hi = bootstrap_mean_ci(b - a)
    assert lo == pytest.approx(0.2) and hi == pytest.approx(0.2)
    rng = np.random.default_rng(1)
    diff = rng.normal(0.1, 0.05, 400)
    lo, hi = bootstrap_mean_ci(diff)
    assert lo < 0.1 < hi and hi - lo < 0.02  # SE ≈ 0.0025 → width ≈ 0.01


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=40))
def test_bootstrap_interval_contains_nothing_outside_the_data(diff):
    lo, hi = bootstrap_mean_ci(np.array(diff), resamples=300)
    assert min(diff) - 1e-9 <= lo <= hi <= max(diff) + 1e-9


def test_compare_pairs_only_where_the_sweeps_overlap(toy_registry, toy_recipe, tmp_path):
    """A sweeps level 60/180, B 180/250 and scores darkness: only level 180 pairs, and there B = 1 − A."""
    a = run_recipe(load_recipe(toy_recipe), out=tmp_path / "a").run_dir
    b = run_recipe(load_recipe(toy_recipe, ["generate.sweep.level=[180, 250]", "score.0.config.invert=true"]),
                   out=tmp_path / "b").run_dir
    result = compare_runs(a, b)
    assert result["pairs"] == 9 and result["unpaired"] == {"a": 9, "b": 9}  # 3 references x 3 seeds at 180
    assert [p["params"] for p in result["points"]] == [{"level": 180}]
    assert all(r["params"] == {"level": 180} and r["a"] == r["b"] for r in result["rows"])
    a_at_180 = [r["total"] for r in read_manifest(a) if r["params"]["level"] == 180]
    s = result["scorers"]["toy"]
    assert s["mean_a"] == pytest.approx(np.mean(a_at_180), abs=1e-5)  # the manifest rounds scores
    assert s["mean_diff"] == pytest.approx(np.mean([1 - 2 * t for t in a_at_180]), abs=1e-5)
    out = write_compare(result, tmp_path / "cmp")
    page = (out / "report.html").read_text()
    assert page.count("<img") == 27 and "95 % CI" in page and "level=180" in page


def test_compare_scorer_setups_on_same_candidates(toy_registry, toy_recipe, tmp_path):
    a = run_recipe(load_recipe(toy_recipe), out=tmp_path / "a").run_dir
    b = run_recipe(load_recipe(toy_recipe, ["score.0.config.invert=true"]), out=tmp_path / "b").run_dir
    same = compare_runs(a, b)["same_candidates"]
    assert same["n"] == 18
    assert same["rank_agreement"] == pytest.approx(-1.0)
    assert len(same["kept_in_a_only"]) == 9 and len(same["kept_in_b_only"]) == 9


def test_compare_cli_with_two_recipes(toy_recipe, tmp_path):
    """Two recipes with different names and sweeps that share one level: paired there, identical images."""
    b = tmp_path / "b.yaml"
    b.write_text(toy_recipe.read_text().replace("name: toy", "name: toy-b").replace("level: [60, 180]",
                                                                                 "level: [180, 200]"))
    res = subprocess.run([*TOYCLI, "compare", str(toy_recipe), str(b), "--out", str(tmp_path / "c")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "9 pairs (same product (reference sha256s), reference, seed, level)" in res.stdout
    assert (tmp_path / "c" / "compare" / "report.html").is_file()
    data = json.loads((tmp_path / "c" / "compare" / "compare.json").read_text())
    assert data["scorers"]["toy"]["mean_diff"] == 0.0 and data["scorers"]["toy"]["win_rate_b"] == 0.5


def test_compare_cli_refuses_runs_with_nothing_in_common(toy_recipe, tmp_path):
    b = tmp_path / "b.yaml"
    b.write_text(toy_recipe.read_text().replace("level: [60, 180]", "level: [90, 200]"))
    res = subprocess.run([*TOYCLI, "compare", str(toy_recipe), str(b), "--out", str(tmp_path / "c")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()  # the two runs' progress, then the one error line
    assert [line for line in lines if line.startswith("error:")] == lines[-1:] and "Traceback" not in res.stderr
    assert "nothing to compare: no sweep point in common (A: level=180; level=60 | B: level=200; level=90)" in lines[-1]
    c = tmp_path / "c.yaml"
    c.write_text(toy_recipe.read_text().replace("seeds: [1, 2, 3]", "seeds: [7]"))
    res = subprocess.run([*TOYCLI, "compare", str(toy_recipe), str(c)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "share no seed" in res.stderr


def test_export_imagefolder(toy_registry, toy_recipe, tmp_path):
    run = run_recipe(load_recipe(toy_recipe), out=tmp_path / "r")
    n = export_imagefolder(run.run_dir, tmp_path / "ds")
    assert n == 9
    assert export_imagefolder(run.run_dir, tmp_path / "ds") == 0  # idempotent: nothing twice
    lines = [json.loads(x) for x in (tmp_path / "ds" / "metadata.jsonl").read_text().splitlines()]
    assert len(lines) == 9
    for m in lines:
        assert (tmp_path / "ds" / m["file_name"]).is_file()
        assert m["text"] == "a toy on a table" and "toy" in m["scores"] and "level" in m["params"]
        assert len(m["references_sha256"]) >= 1
    try:
        import datasets
    except ImportError:
        return
    ds = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "ds"), split="train")
    assert len(ds) == 9 and "text" in ds.column_names
