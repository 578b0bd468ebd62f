"""The plugin-author helpers: a full recipe run with toy stages in a few lines; contracts that catch breakage."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import toyplugins

from ecomforge.plugins import get_registry
from ecomforge.testing import FilterContract, GeneratorContract, read_manifest, run_test_recipe
from ecomforge.types import Decision


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
                 "test_follows_the_sweep_point", "test_product_survives_bit_exact", "test_config_round_trips"):
        getattr(good, name)()


@pytest.mark.parametrize(("broken", "check", "message"), [
    (_NoPasteBack, "test_product_survives_bit_exact", "product pixels differ"),
    (_BatchDependent, "test_batch_equals_one_by_one", "batched and single differ"),
    (_ReadsSelfConfig, "test_follows_the_sweep_point", "request.config"),
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
        _contract(_FilterContract, toyplugins.ToyTop).test_one_decision_each()  # reasons "top" / "below top"


def test_an_installed_plugin_may_pass_its_own_module(tmp_path):
    """A plugin's tests pass its module while its entry point is installed too (pip install -e .)."""
    sharpness = pytest.importorskip("ecomforge_sharpness")  # the example plugin, installed by setup.sh
    recipe = toyplugins.TOY_RECIPE.replace("score:", "score:\n  - {plugin: sharpness, weight: 0.1}", 1)
    result = run_test_recipe(recipe, tmp_path, toyplugins, sharpness)
    assert all("sharpness" in r["scores"] for r in read_manifest(result.run_dir))
