"""The plugin-author helpers: a full recipe run with toy stages in a few lines; contracts that catch breakage."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ecomforge import hookimpl
from ecomforge.plugins import get_registry
from ecomforge.stages import Filter, StageConfig
from ecomforge.testing import (
    AcquirerContract,
    FilterContract,
    GeneratorContract,
    MaskerContract,
    ScorerContract,
    read_manifest,
    run_test_recipe,
    toy,
    toy_recipe,
)
from ecomforge.types import Candidate, Decision

import toyplugins


def test_full_run_with_toy_stages(tmp_path):
    result = run_test_recipe(toyplugins.TOY_RECIPE, tmp_path, toyplugins)
    records = read_manifest(result.run_dir)
    # 3 references x 2 sweep points x 3 seeds; toy-top keeps half of each product's candidates.
    assert len(records) == len(result.records) == 18
    assert {r["product"] for r in records} == {"a", "b"}
    assert sum(r["kept"] for r in records if r["product"] == "a") == 6
    assert all((result.run_dir / r["image"]).is_file() for r in records)


def test_the_plugins_do_not_leak(tmp_path):
    run_test_recipe(toyplugins.TOY_RECIPE, tmp_path, toyplugins)
    assert "toy-top" not in get_registry().plugins["filter"]


# --- the contract mixins fail on plugins that break what they promise --------------------------

class _NoPasteBack(toyplugins.ToyGenerator):
    """Darkens everything, the product too."""

    def generate(self, request):
        out = super().generate(request)
        for c in out:
            c.image //= 2
        return out


class _BatchDependent(toyplugins.ToyGenerator):
    """Each seed after the first is drawn from the first seed's generator."""

    def generate(self, request):
        out, rng = [], np.random.default_rng(request.seeds[0])
        for c in super().generate(request):
            c.image[request.mask.data == 0] = rng.integers(0, 256, 3, dtype=np.uint8)
            out.append(c)
        return out


class _ReadsSelfConfig(toyplugins.ToyGenerator):
    """Ignores the sweep point."""

    def generate(self, request):
        return super().generate(dataclasses.replace(request, config=self.config))


class _Understates(toyplugins.ToyGenerator):
    """Declares fewer pixels than it makes (a limit checked before work would trust it)."""

    @classmethod
    def work_pixels(cls, config, reference):
        return reference[0] * reference[1] - 1


class _ToyContract(GeneratorContract):
    stage_cls: type = toyplugins.ToyGenerator
    sweep_point = {"level": 220}

    def make_stage(self):
        return self.stage_cls({"level": 60})


def _contract(base: type, stage_cls: type) -> object:
    return type(f"Contract_{stage_cls.__name__}", (base,), {"stage_cls": stage_cls})()


def test_generator_contract_passes_a_good_generator():
    good = _contract(_ToyContract, toyplugins.ToyGenerator)
    for name in ("test_one_candidate_per_seed", "test_same_seed_same_pixels", "test_batch_equals_one_by_one",
                 "test_follows_the_sweep_point", "test_product_survives_bit_exact", "test_config_round_trips",
                 "test_declared_pixels_cover_the_output"):
        getattr(good, name)()


@pytest.mark.parametrize(("broken", "check", "message"), [
    (_NoPasteBack, "test_product_survives_bit_exact", "product pixels differ"),
    (_BatchDependent, "test_batch_equals_one_by_one", "batched and single differ"),
    (_ReadsSelfConfig, "test_follows_the_sweep_point", "request.config"),
    (_Understates, "test_declared_pixels_cover_the_output", "work_pixels says"),
])
def test_generator_contract_catches(broken, check, message):
    with pytest.raises(AssertionError, match=message):
        getattr(_contract(_ToyContract, broken), check)()


class _Band(toyplugins.ToyTop):
    """Keeps the top half, with reasons in the kept:/dropped: convention."""

    def select(self, scored):
        return [Decision(d.kept, ("kept: " if d.kept else "dropped: ") + d.reason) for d in super().select(scored)]


class _FirstTwo(_Band):
    """Depends on the input order."""

    def select(self, scored):
        return [Decision(i < 2, "kept: early" if i < 2 else "dropped: late") for i in range(len(scored))]


class _FilterContract(FilterContract):
    stage_cls: type = _Band

    def make_stage(self):
        return self.stage_cls({})


def test_filter_contract_passes_a_good_filter_and_catches_bad_ones():
    good = _contract(_FilterContract, _Band)
    good.test_one_decision_each()
    good.test_deterministic_and_order_free()
    with pytest.raises(AssertionError):
        _contract(_FilterContract, _FirstTwo).test_deterministic_and_order_free()
    with pytest.raises(AssertionError, match="'kept:' or 'dropped:'"):
        _contract(_FilterContract, _NoPrefix).test_one_decision_each()


class _NoPrefix(toyplugins.ToyTop):
    """Reasons without the kept:/dropped: convention."""

    name = "no-prefix"

    def select(self, scored):
        """Keep the first half, saying so in the wrong form."""
        return [Decision(d.kept, "top" if d.kept else "below top") for d in super().select(scored)]


def test_an_installed_plugin_may_pass_its_own_module(tmp_path):
    """A plugin's tests pass its module while its entry point is installed too (pip install -e .)."""
    sharpness = pytest.importorskip("ecomforge_sharpness")  # the example plugin, installed by setup.sh
    recipe = toyplugins.TOY_RECIPE.replace("score:", "score:\n  - {plugin: sharpness, weight: 0.1}", 1)
    result = run_test_recipe(recipe, tmp_path, toyplugins, sharpness)
    assert all("sharpness" in r["scores"] for r in read_manifest(result.run_dir))


# --- the contracts catch what plugin authors got wrong (found by trying the project as one) ---------

class _Constant(toy.SampleScorer):
    """Scores everything 1: it can never tell a failure from the reference."""

    def score(self, candidates, context):
        return [1.0] * len(candidates)


class _RandomReason(toy.SampleScorer):
    """A new reason every call."""

    def score(self, candidates, context):
        from ecomforge.types import Score

        return [Score(v, f"call {np.random.default_rng().integers(1 << 30)}")
                for v in super().score(candidates, context)]


class _TwoD(toy.SampleScorer):
    """A column of scores instead of a row."""

    def score(self, candidates, context):
        return np.array(super().score(candidates, context))[:, None]


class _ScorerCase(ScorerContract):
    """The sample scorer's own failure cases (white background best, black worst)."""

    stage_cls: type = toy.SampleScorer

    def make_stage(self):
        return self.stage_cls()

    def make_candidates(self, ref, mask):
        white, black = ref.image.copy(), ref.image.copy()
        white[mask.data == 0], black[mask.data == 0] = 255, 0
        return [Candidate(white, 0, {}, mask=mask.data), Candidate(black, 1, {}, mask=mask.data)]


@pytest.mark.parametrize(("broken", "check", "message"), [
    (_Constant, "test_scores_in_unit_interval_and_self_is_best", "cannot tell them apart"),
    (_RandomReason, "test_deterministic_and_order_free", "the reasons differ between two calls"),
    (_TwoD, "test_deterministic_and_order_free", r"a numpy ndarray\) for candidate 1 of 2; scores are real numbers"),
])
def test_scorer_contract_catches(broken, check, message):
    getattr(_contract(_ScorerCase, toy.SampleScorer), check)()  # the sample scorer passes
    with pytest.raises(AssertionError, match=message):
        getattr(_contract(_ScorerCase, broken), check)()


class _Bools(_Band):
    def select(self, scored):
        return [d.kept for d in super().select(scored)]


class _ReadsList(_Band):
    @classmethod
    def reads_scores(cls, config):
        return ["s"]


def test_filter_contract_names_the_wrong_kind_of_output():
    with pytest.raises(AssertionError, match=r"returned False \(a bool\) for candidate 1 of 6"):
        _contract(_FilterContract, _Bools).test_one_decision_each()
    with pytest.raises(AssertionError, match="reads_scores\\(\\) returned a list"):
        _contract(_FilterContract, _ReadsList).test_reads_scores_is_a_mapping()
    _contract(_FilterContract, _Band).test_reads_scores_is_a_mapping()


class _PadsUndeclared(toyplugins.ToyGenerator):
    """Declares its size without the border a sweep point adds."""

    class Config(toyplugins.ToyGenerator.Config):
        pad: int = 0

    @classmethod
    def work_pixels(cls, config, reference):
        return reference[0] * reference[1]

    def generate(self, request):
        p = request.config.pad
        out = super().generate(request)
        for c in out:
            c.image, c.mask = np.pad(c.image, ((p, p), (p, p), (0, 0))), np.pad(c.mask, p)
            c.params = {**c.params, "pad": p}
        return out


def test_generator_contract_checks_declared_pixels_at_the_sweep_point_too():
    contract = type("C", (_ToyContract,), {"stage_cls": _PadsUndeclared, "sweep_point": {"pad": 4}})()
    with pytest.raises(AssertionError, match="work_pixels says"):
        contract.test_declared_pixels_cover_the_output()


# --- the sample stages: a third-party plugin tested in a whole run with nothing else installed ----

class TestSampleAcquirer(AcquirerContract):
    def make_stage(self):
        return toy.SampleAcquirer()

    def make_specs(self, tmp_path):
        return ["sample:1", "sample:2"]


class TestSampleMasker(MaskerContract):
    def make_stage(self):
        return toy.SampleMasker({"feather": 2})

    def make_reference(self):
        return toy.SampleAcquirer().acquire(["sample:4"], product="p", base_dir=Path("."))[0]


class TestSampleGenerator(GeneratorContract):
    sweep_point = {"level": 20}

    def make_stage(self):
        return toy.SampleGenerator()


class TestSampleScorer(ScorerContract):
    def make_stage(self):
        return toy.SampleScorer()

    def make_candidates(self, ref, mask):
        """Best first: a white background scores 1, a black one 0."""
        white, black = ref.image.copy(), ref.image.copy()
        white[mask.data == 0], black[mask.data == 0] = 255, 0
        return [Candidate(white, 0, {}, mask=mask.data), Candidate(black, 1, {}, mask=mask.data)]


class TestSampleFilter(FilterContract):
    def make_stage(self):
        return toy.SampleFilter({"min_total": 0.25})


class _Bright(Filter):
    """An author's filter: keeps bright backgrounds."""

    name = "bright"

    class Config(StageConfig):
        pass

    def select(self, scored):
        return [Decision(s.total > 0.5, "kept: bright" if s.total > 0.5 else "dropped: dark") for s in scored]


class _BrightPlugin:
    @hookimpl
    def register_filters(self, register):
        register(_Bright)


def test_an_authors_filter_in_a_whole_run_of_sample_stages(tmp_path):
    """The ten-line recipe test of writing-plugins.md: sample stages, the author's filter after another."""
    recipe = toy_recipe(filter=[{"plugin": "sample", "config": {"min_total": 0.1}}, {"plugin": "bright"}])
    result = run_test_recipe(recipe, tmp_path, toy, _BrightPlugin())
    records = read_manifest(result.run_dir)
    assert len(records) == 3 * 2 * 2  # references x sweep points x seeds
    kept = {r["params"]["level"] for r in records if r["kept"]}
    assert kept == {200} and all("bright: " in r["reason"] for r in records)
    assert "sample" not in get_registry().plugins["generator"]  # registered for that call only
