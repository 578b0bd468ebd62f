"""What a reader of compare's figures must be told: intervals by reference photo, ties, products that failed or
never ran, scorers only one run recorded, why a candidate only one set-up kept was dropped."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ecomforge.analysis.compare import compare_runs, write_compare
from ecomforge.analysis.stats import bootstrap_mean_ci, paired_summary, spearman
from ecomforge.recipe import load_recipe
from ecomforge.run.runner import run_recipe

TOYCLI = [sys.executable, str(Path(__file__).parent / "toycli.py")]


def test_the_interval_resamples_whole_groups():
    # two photos, four seeds each; the seeds of a photo agree exactly: 2 pieces of evidence, not 8
    diff = np.array([0.0] * 4 + [1.0] * 4)
    groups = ["p1"] * 4 + ["p2"] * 4
    lo, hi = bootstrap_mean_ci(diff, groups=groups)
    assert lo == pytest.approx(0.0) and hi == pytest.approx(1.0)  # both photos alike either way is possible
    plo, phi = bootstrap_mean_ci(diff)
    assert plo > 0.1 and phi < 0.9  # resampling pairs pretends to know more
    # unequal groups: each resample's mean weighs every pair once
    lo, hi = bootstrap_mean_ci(np.array([1.0, 1.0, 1.0, 0.0]), groups=["a", "a", "a", "b"], resamples=2000)
    assert lo == pytest.approx(0.0) and hi == pytest.approx(1.0)
    s = paired_summary(np.zeros(8), diff, groups)
    assert s["ci_unit"] == "group" and s["tie_rate"] == 0.5 and s["win_rate_b"] == 0.75
    assert paired_summary(np.zeros(8), diff, ["one"] * 8)["ci_unit"] == "pair"  # one photo: pairs it is


def test_one_order_against_itself_agrees_exactly():
    x = np.random.default_rng(3).random(37)
    assert spearman(x, x) == 1.0 and spearman(x, -x) == -1.0


def _product_b_missing(run_dir: Path) -> None:
    """Leave run_dir as an interrupted run leaves it: product b's records never written."""
    manifest = run_dir / "manifest.jsonl"
    keep = [line for line in manifest.read_text().splitlines() if json.loads(line)["product"] != "b"]
    manifest.write_text("\n".join(keep) + "\n")


def test_compare_warns_of_failed_and_unfinished_products(toy_registry, toy_recipe, tmp_path):
    a = run_recipe(load_recipe(toy_recipe), out=tmp_path / "a").run_dir
    b = run_recipe(load_recipe(toy_recipe, ['inputs.products={a: ["seed:1", "seed:2"], b: ["bad:0"]}']),
                   out=tmp_path / "b").run_dir
    result = compare_runs(a, b)
    (failed,) = [w for w in result["warnings"] if w.startswith("B:")]
    assert "product 'b' failed (acquire" in failed
    _product_b_missing(a)
    result = compare_runs(a, b)
    assert any(w.startswith("A: no candidates for 1 of its 2 products ('b'): the run did not finish")
               and f"ecomforge run {a}/recipe.yaml --resume {a}" in w for w in result["warnings"])
    page = (write_compare(result, tmp_path / "cmp") / "report.html").read_text()
    assert "the run did not finish" in page and "product &#x27;b&#x27; failed" in page


def test_compare_cli_prints_warnings_and_ties(toy_recipe, tmp_path):
    b = tmp_path / "b.yaml"
    b.write_text(toy_recipe.read_text().replace("name: toy", "name: toy-b")
                 .replace("  - {plugin: toy, weight: 1}", "  - {plugin: toy, weight: 1}\n  - {plugin: toy, name: dark, "
                                                          "weight: 1, config: {invert: true}}"))
    res = subprocess.run([*TOYCLI, "compare", str(toy_recipe), str(b), "--out", str(tmp_path / "c")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "warning: scorers recorded by one run only are left out (B: dark); the totals weigh different scorers" \
        in res.stderr
    assert "B wins 0%, loses 0%, ties 100%" in res.stdout  # the same images, the same toy scores
    assert "-0.000" not in res.stdout
    data = json.loads((tmp_path / "c" / "compare" / "compare.json").read_text())
    assert data["scorers_in_one_run"] == {"a": [], "b": ["dark"]}
    assert set(data["scorers"]) == {"toy"} and data["scorers"]["toy"]["ci_unit"] == "group"


def test_same_candidates_say_why_the_other_set_up_dropped_them(toy_registry, toy_recipe, tmp_path):
    a = run_recipe(load_recipe(toy_recipe), out=tmp_path / "a").run_dir
    b = run_recipe(load_recipe(toy_recipe, ["score.0.config.invert=true"]), out=tmp_path / "b").run_dir
    same = compare_runs(a, b)["same_candidates"]
    assert same["rank_agreement"] == -1.0
    why = same["dropped_because"]
    assert set(why) == {*same["kept_in_a_only"], *same["kept_in_b_only"]}
    b_records = {json.loads(line)["id"]: json.loads(line) for line in (b / "manifest.jsonl").read_text().splitlines()}
    assert all(why[i] == b_records[i]["reason"] for i in same["kept_in_a_only"])


def test_an_override_that_fits_only_one_recipe_names_the_other(toy_recipe, tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text(toy_recipe.read_text().replace("  - {plugin: toy, weight: 1}",
                                                "  - {plugin: toy, weight: 1}\n  - {plugin: toy, name: two, weight: 1}"))
    res = subprocess.run([*TOYCLI, "compare", str(a), str(toy_recipe), "--set", "score.1.weight=0.5"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"error: {toy_recipe}: score.1: no list item '1'"), line


def test_compare_warns_of_a_half_written_product_and_of_twins(toy_registry, toy_recipe, tmp_path):
    a = run_recipe(load_recipe(toy_recipe), out=tmp_path / "a").run_dir
    manifest = a / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:-2]) + "\n")  # stopped while product b's records were written
    b = run_recipe(load_recipe(toy_recipe, ['inputs.products={a: ["seed:1", "seed:2"], b: ["seed:3"], '
                                            'c: ["seed:3"]}']), out=tmp_path / "b").run_dir
    warnings = compare_runs(a, b)["warnings"]
    assert any(w.startswith("A: product 'b' has 4 of its 6 candidates: the run did not finish") for w in warnings)
    assert "B: products 'b', 'c' have the same photos; they pair with the other run's in name order, and the rest " \
           "stay unpaired" in warnings
