"""A recipe's ``filter:`` as a list: applied in order, each step seeing only what the last kept, every reason kept."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import pytest
import yaml
from pydantic import Field

from ecomforge import hookimpl
from ecomforge.errors import RecipeError
from ecomforge.recipe.load import resolve_recipe
from ecomforge.run.runner import run_recipe
from ecomforge.stages import Filter, StageConfig
from ecomforge.testing import run_test_recipe, temporary_plugins
from ecomforge.types import Decision

import toyplugins

SEEN: list[list[int]] = []  # the levels each parity-filter call was given


class Parity(Filter):
    """Keeps candidates with odd (or even) seeds: a second rule to chain after ``threshold``."""

    name = "parity"

    class Config(StageConfig):
        keep: Literal["odd", "even"] = Field("odd", description="Which seeds to keep.")

    def select(self, scored):
        """Kept when the seed has the configured parity."""
        SEEN.append(sorted({s.candidate.params["level"] for s in scored}))
        want = 1 if self.config.keep == "odd" else 0
        return [Decision(s.candidate.seed % 2 == want, f"{'kept' if s.candidate.seed % 2 == want else 'dropped'}: "
                                                       f"seed {s.candidate.seed}") for s in scored]


@hookimpl
def register_filters(register):
    """The parity filter, for these tests only."""
    register(Parity)


HERE = sys.modules[__name__]


def recipe(filters) -> dict:
    data = yaml.safe_load(toyplugins.TOY_RECIPE)
    data["filter"] = filters
    return data


def run(tmp_path: Path, filters):
    SEEN.clear()
    result = run_test_recipe(recipe(filters), tmp_path / "out", toyplugins, HERE)
    return {(r["product"], r["reference"], r["params"]["level"], r["seed"]): r for r in result.records}, result


# toy score = background level / 255; toy backgrounds are flat noise, so all look alike: no dedupe
THRESHOLD = {"plugin": "threshold", "config": {"min_score": 0.4, "dedupe": False}}


def test_threshold_then_a_second_filter(tmp_path):
    records, result = run(tmp_path, [THRESHOLD, {"plugin": "parity"}])
    assert len(records) == 18
    # The second filter saw only what threshold kept: the bright (level 180) candidates.
    assert SEEN and all(levels == [180] for levels in SEEN)
    for (_, _, level, seed), r in records.items():
        assert r["kept"] == (level == 180 and seed % 2 == 1)
        if level == 60:
            assert r["reason"].startswith("threshold: dropped: total 0.") and "parity" not in r["reason"]
        elif seed % 2 == 0:
            assert r["reason"].startswith("threshold: kept: total ") and r["reason"].endswith(
                f"; parity: dropped: seed {seed}")
        else:
            assert r["reason"].startswith("threshold: kept: total ") and r["reason"].endswith(f"; parity: kept: seed {seed}")
    stored = yaml.safe_load((result.run_dir / "recipe.yaml").read_text())
    assert [f["plugin"] for f in stored["filter"]] == ["threshold", "parity"]
    assert stored["filter"][0]["config"]["top_k"] is None and stored["filter"][1]["config"] == {"keep": "odd"}
    # --resume re-reads the stored recipe: it resolves to itself, and finishing a cut-off run gives the same verdicts.
    lines = (result.run_dir / "manifest.jsonl").read_text().splitlines(keepends=True)
    (result.run_dir / "manifest.jsonl").write_text("".join(lines[:len(lines) // 2]))
    with temporary_plugins(toyplugins, HERE) as registry:
        resolved = resolve_recipe(recipe([THRESHOLD, {"plugin": "parity"}]), path=tmp_path / "out" / "recipe.yaml",
                                  registry=registry)
        again = run_recipe(resolved, resume=result.run_dir, registry=registry, device="cpu")
    assert {r["id"]: (r["kept"], r["reason"]) for r in again.records} == \
           {r["id"]: (r["kept"], r["reason"]) for r in result.records}


def test_order_matters(tmp_path):
    first_parity, _ = run(tmp_path / "1", [{"plugin": "parity", "config": {"keep": "even"}},
                                           {"plugin": "threshold", "config": {"top_k": 1, "dedupe": False}}])
    assert SEEN == [[60, 180]] * 2  # one call per product, before threshold
    kept = [k for k, r in first_parity.items() if r["kept"]]
    assert len(kept) == 2 and all(seed == 2 and level == 180 for _, _, level, seed in kept)  # best even, per product
    first_threshold, _ = run(tmp_path / "2", [{"plugin": "threshold", "config": {"top_k": 1, "dedupe": False}},
                                              {"plugin": "parity", "config": {"keep": "even"}}])
    # threshold picks one per product first; parity then keeps that pick only if its seed is even.
    picks = {k for k, r in first_threshold.items() if r["reason"].startswith("threshold: kept: ")}
    assert len(picks) == 2 and len({product for product, *_ in picks}) == 2
    assert all(r["kept"] == (k in picks and k[3] % 2 == 0) for k, r in first_threshold.items())


def test_a_single_filter_reads_as_before(tmp_path):
    records, _ = run(tmp_path, THRESHOLD)
    assert all(r["reason"].startswith(("kept: ", "dropped: ")) for r in records.values())
    assert sum(r["kept"] for r in records.values()) == 9


@pytest.mark.parametrize("filters, where", [
    ([], "filter: filter is an empty list"),
    ([THRESHOLD, {"plugin": "parity", "config": {"keep": "all"}}], "filter.1.config.keep"),
    ([{"plugin": "threshold", "config": {"top_kk": 2}}], "filter.0.config.top_kk: unknown key"),
    ([THRESHOLD, {"plugin": "nope"}], "filter.1.plugin: unknown filter plugin 'nope'"),
])
def test_each_filter_config_is_validated_with_its_path(filters, where):
    with temporary_plugins(toyplugins, HERE) as registry:
        with pytest.raises(RecipeError) as info:
            resolve_recipe(recipe(filters), registry=registry)
    assert where in info.value.one_line() and "\n" not in info.value.one_line()
