"""A plugin whose output breaks its stage's contract fails as itself, at run time, before anything is stored.

Each broken stage misbehaves for product 'b' only: 'b' is recorded as failed against that plugin
(failed.csv, the manifest's product_failed line), nothing of it is stored, and product 'a' finishes.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from ecomforge import hookimpl
from ecomforge.errors import PluginContractError, StageError
from ecomforge.recipe.load import resolve_recipe
from ecomforge.run.runner import RunResult, run_recipe
from ecomforge.run.store import read_manifest
from ecomforge.stages import Generator, Scorer
from ecomforge.testing import temporary_plugins, toy, toy_recipe
from ecomforge.types import Candidate, Decision, Score

GOOD_CANDIDATES = 8  # product 'a': 2 references x 2 sweep points x 2 seeds


class _Stages:
    """Registers the given stage classes for one run."""

    def __init__(self, *stages: type) -> None:
        self.stages = stages

    @hookimpl
    def register_generators(self, register):
        for stage in self.stages:
            if issubclass(stage, Generator):
                register(stage)

    @hookimpl
    def register_scorers(self, register):
        for stage in self.stages:
            if issubclass(stage, Scorer):
                register(stage)


def _bad_generator(breaks: Callable[[list[Candidate]], Any]) -> type[Generator]:
    class BadGenerator(toy.SampleGenerator):
        """The sample generator, whose output for product 'b' is broken by ``breaks``."""

        name = "bad-gen"

        def generate(self, request):
            out = super().generate(request)
            return breaks(out) if request.reference.product == "b" else out

    return BadGenerator


def _bad_scorer(breaks: Callable[[list[float]], Any]) -> type[Scorer]:
    class BadScorer(toy.SampleScorer):
        """The sample scorer, whose scores for product 'b' are broken by ``breaks``."""

        name = "bad-score"

        def score(self, candidates, context):
            values = super().score(candidates, context)
            return breaks(values) if context.references[0].product == "b" else values

    return BadScorer


def _run(tmp_path, recipe: dict[str, Any], stage: type, *, fail_fast: bool = False) -> RunResult:
    with temporary_plugins(toy, _Stages(stage)) as registry:
        resolved = resolve_recipe(recipe, path=tmp_path / "recipe.yaml", registry=registry)
        return run_recipe(resolved, out=tmp_path / "runs", device="cpu", registry=registry, fail_fast=fail_fast)


def _gen_recipe() -> dict[str, Any]:
    return toy_recipe(generate={"plugin": "bad-gen", "sweep": {"level": [60, 200]}, "seeds": [1, 2]})


def _score_recipe() -> dict[str, Any]:
    return toy_recipe(generate={"plugin": "sample", "sweep": {"level": [60, 200]}, "seeds": [1, 2]},
                      score=[{"plugin": "sample"}, {"plugin": "bad-score"}])


def _only_b_failed(result: RunResult, step: str, plugin: str) -> str:
    """Check 'b' is recorded as failed in ``step`` by ``plugin`` and 'a' is whole; returns the reason."""
    run_dir = result.run_dir
    with open(run_dir / "failed.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["product"], r["step"], r["plugin"]) for r in rows] == [("b", step, plugin)]
    lines = [json.loads(line) for line in (run_dir / "manifest.jsonl").read_text().splitlines()]
    failed = [rec for rec in lines if rec.get("record")]
    assert [(f["product"], f["step"], f["plugin"]) for f in failed] == [("b", step, plugin)]
    assert failed[0]["reason"] == rows[0]["reason"]
    records = read_manifest(run_dir)
    assert {r["product"] for r in records} == {"a"} and len(records) == GOOD_CANDIDATES
    assert all((run_dir / r["image"]).is_file() and r["kept"] for r in records)
    return rows[0]["reason"]


def _stored_seeds(run_dir) -> dict[str, int]:
    """Candidate id -> the seed its stored sidecar says it was made with."""
    return {p.name.split(".")[0]: json.loads(p.read_text())["seed"] for p in (run_dir / "candidates").glob("*.json")}


def _set_first(values: list[Any], value: Any) -> list[Any]:
    return [value, *values[1:]]


def _first(change: Callable[[Candidate], None]) -> Callable[[list[Candidate]], list[Candidate]]:
    def breaks(out: list[Candidate]) -> list[Candidate]:
        change(out[0])
        return out
    return breaks


def _setattr(field: str, value: Callable[[Candidate], Any]) -> Callable[[Candidate], None]:
    return lambda c: setattr(c, field, value(c))


GENERATOR_BREAKS = {
    "too few": (lambda out: out[:-1], "returned 1 candidates for 2 seeds"),
    "reversed": (lambda out: out[::-1],
                 "returned seed 2 where seed 1 was asked for (candidate 1 of 2); one candidate per seed, "
                 "in the order asked"),
    "numpy seed": (_first(_setattr("seed", lambda c: np.int64(c.seed))),
                   "returned seed 1 as a numpy int64 for seed 1; seeds are int"),
    "float image": (_first(_setattr("image", lambda c: c.image.astype(np.float64))),
                    "returned a float64 image for seed 1; images must be uint8 HxWx3"),
    "grey image": (_first(_setattr("image", lambda c: c.image[..., 0])),
                   "returned an image of shape (72, 96) for seed 1; images must be uint8 HxWx3"),
    "small mask": (_first(_setattr("mask", lambda c: np.zeros((36, 48), np.uint8))),
                   "returned a uint8 (36, 48) mask with a (72, 96, 3) image for seed 1; "
                   "masks must be uint8 HxW, the image's size"),
    "numpy param": (_first(_setattr("params", lambda c: {**c.params, "scale": np.float32(0.5)})),
                    "returned params['scale'] as a numpy float32 for seed 1; params must be JSON-serialisable"),
    "array in info": (_first(_setattr("info", lambda c: {"noise": np.zeros(2)})),
                      "returned info['noise'] as a numpy ndarray for seed 1; info must be JSON-serialisable"),
}


@pytest.mark.parametrize("case", list(GENERATOR_BREAKS))
def test_a_broken_generator_fails_its_product_before_anything_is_stored(tmp_path, case):
    breaks, message = GENERATOR_BREAKS[case]
    result = _run(tmp_path, _gen_recipe(), _bad_generator(breaks))
    reason = _only_b_failed(result, "generate", "bad-gen")
    assert reason.startswith("generate failed in plugin 'bad-gen' for product 'b': "
                             "generator 'bad-gen' broke its contract: ")
    assert message in reason
    stored = _stored_seeds(result.run_dir)
    assert stored == {r["id"]: r["seed"] for r in read_manifest(result.run_dir)}  # product 'a' only, seeds right


SCORER_BREAKS = {
    "raises": (lambda values: 1 / 0, "score failed in plugin 'bad-score' for product 'b': "
                                     "ZeroDivisionError: division by zero"),
    "too few": (lambda values: values[:-1], "returned 3 scores for 4 candidates"),
    "a str": (lambda values: _set_first(values, "0.5"),
              "returned '0.5' (a str) for candidate 1 of 4; scores are real numbers in [0, 1]"),
    "None": (lambda values: _set_first(values, None),
             "returned None for candidate 1 of 4; scores are real numbers in [0, 1]"),
    "above 1": (lambda values: _set_first(values, 1.5), "returned 1.5 for candidate 1 of 4, outside [0, 1]"),
    "NaN": (lambda values: _set_first(values, float("nan")),
            "returned NaN for candidate 1 of 4; scores are real numbers in [0, 1]"),
    "int reason": (lambda values: _set_first(values, Score(0.3, 42)),  # type: ignore[arg-type]
                   "returned the reason 42 (an int) for candidate 1 of 4; a Score's reason is a str"),
    "no sequence": (lambda values: (v for v in values),
                    "returned a generator; score() returns one score per candidate"),
}


@pytest.mark.parametrize("case", list(SCORER_BREAKS))
def test_a_broken_scorer_fails_its_product_under_its_own_name(tmp_path, case):
    breaks, message = SCORER_BREAKS[case]
    result = _run(tmp_path, _score_recipe(), _bad_scorer(breaks))
    reason = _only_b_failed(result, "score", "bad-score")
    assert reason.startswith("score failed in plugin 'bad-score' for product 'b': ")
    assert message in reason
    if case != "raises":
        assert "scorer 'bad-score' broke its contract: " in reason
    assert all(set(r["scores"]) == {"sample", "bad-score"} for r in read_manifest(result.run_dir))


def test_a_named_score_is_named_in_the_message(tmp_path):
    recipe = _score_recipe()
    recipe["score"][1]["name"] = "second"
    result = _run(tmp_path, recipe, _bad_scorer(lambda values: _set_first(values, 2.0)))
    assert _only_b_failed(result, "score", "bad-score").endswith(
        "scorer 'bad-score' broke its contract: returned 2 for candidate 1 of 4, outside [0, 1] (score 'second')")


@pytest.mark.parametrize(("recipe", "stage", "step", "plugin"), [
    (_gen_recipe, _bad_generator(lambda out: out[::-1]), "generate", "bad-gen"),
    (_score_recipe, _bad_scorer(lambda values: _set_first(values, "0.5")), "score", "bad-score"),
])
def test_a_broken_contract_is_a_plugin_failure(tmp_path, recipe, stage, step, plugin):
    """Fail-fast (and a one-product run) raise it: a PluginContractError naming the plugin, exit code 1."""
    with pytest.raises(StageError) as info:
        _run(tmp_path, recipe(), stage, fail_fast=True)
    err = info.value
    assert (err.step, err.plugin, err.product, err.exit_code) == (step, plugin, "b", 1)
    assert isinstance(err.cause, PluginContractError) and err.cause.plugin == plugin
    assert {r["product"] for r in read_manifest(next((tmp_path / "runs").iterdir()))} == {"a"}


def _bad_filter(breaks: Callable[[list[Any]], Any]) -> type:
    class BadFilter(toy.SampleFilter):
        """The sample filter, whose decisions for product 'b' (its 4 candidates; 'a' has 8) are broken."""

        name = "bad-filter"

        def select(self, scored):
            out = super().select(scored)
            return breaks(out) if len(scored) == 4 else out

    return BadFilter


class _Filters(_Stages):
    @hookimpl
    def register_filters(self, register):
        for stage in self.stages:
            register(stage)


FILTER_BREAKS = {
    "bools": (lambda out: [d.kept for d in out], "returned True (a bool) for candidate 1 of 4; select() returns Decision(kept, reason) objects"),
    "too few": (lambda out: out[:-1], "returned 3 decisions for 4 candidates"),
    "a number for a reason": (lambda out: [Decision(d.kept, 3) for d in out],
                              "returned a Decision whose reason is 3 (an int) for candidate 1 of 4; a reason is a str"),
}


@pytest.mark.parametrize("case", list(FILTER_BREAKS))
def test_a_broken_filter_fails_its_product_under_its_own_name(tmp_path, case):
    # before: a list of bools was an AttributeError in the runner, a short list a RuntimeError naming no plugin
    breaks, message = FILTER_BREAKS[case]
    recipe = toy_recipe(filter={"plugin": "bad-filter"})
    with temporary_plugins(toy, _Filters(_bad_filter(breaks))) as registry:
        resolved = resolve_recipe(recipe, path=tmp_path / "recipe.yaml", registry=registry)
        result = run_recipe(resolved, out=tmp_path / "runs", device="cpu", registry=registry)
    (failure,) = result.summary["failed_products"]
    assert failure["product"] == "b" and failure["step"] == "filter" and failure["plugin"] == "bad-filter"
    assert "filter 'bad-filter' broke its contract: " + message in failure["reason"]


def test_a_filter_whose_reads_scores_is_not_a_mapping_is_named_before_any_work(tmp_path):
    class ReadsList(toy.SampleFilter):
        name = "reads-list"

        @classmethod
        def reads_scores(cls, config):
            return ["sample"]

    with temporary_plugins(toy, _Filters(ReadsList)) as registry, pytest.raises(PluginContractError) as info:
        resolve_recipe(toy_recipe(filter={"plugin": "reads-list"}), path=tmp_path / "r.yaml", registry=registry)
    assert str(info.value) == ("filter 'reads-list' broke its contract: reads_scores() returned a list; it returns "
                               "a dict of config key -> score name")


def test_an_errors_hint_is_in_its_text_too():
    # before: str() left the hint out, so a test's failure or a log showed "unknown filter plugin 'x'" only
    from ecomforge.errors import RecipeError

    err = RecipeError("filter.plugin", "unknown filter plugin 'min-vivd'", hint="did you mean 'min-vivid'?")
    assert "did you mean 'min-vivid'?" in str(err) and str(err).startswith(err.message)
    assert str(RecipeError("k", "plain")) == RecipeError("k", "plain").message
