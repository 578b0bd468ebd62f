"""A sweep that lists one setting twice: refused when the recipe is read, or when its candidates are planned.

Before: validate said ok, and the run crashed with an internal KeyError (one image twice under one candidate id).
"""
from __future__ import annotations

import pytest

from ecomforge import hookimpl
from ecomforge.errors import RecipeError
from ecomforge.recipe.load import resolve_recipe
from ecomforge.recipe.safeyaml import safe_load
from ecomforge.testing import run_test_recipe, temporary_plugins

import toyplugins


@pytest.mark.parametrize("values", ["[60, 60]", "[60, 180, 60.0]"])
def test_a_repeated_sweep_value_is_refused_when_the_recipe_is_read(tmp_path, values):
    data = safe_load(toyplugins.TOY_RECIPE.replace("level: [60, 180]", f"level: {values}"))
    with temporary_plugins(toyplugins):
        with pytest.raises(RecipeError, match=r"generate\.sweep: sweep points .*'level': 60.* are the same setting"):
            resolve_recipe(data, path=tmp_path / "r.yaml")


class _Forgetful(toyplugins.ToyGenerator):
    """Leaves ``delay`` out of the parameters that define an image (it does not change pixels)."""

    name = "forgetful"

    def describe(self, config):
        return {"level": config.level, "model": config.model}


class _Plugin:
    @hookimpl
    def register_generators(self, register):
        register(_Forgetful)


def test_sweep_points_the_generator_describes_alike_stop_before_any_image(tmp_path):
    recipe = toyplugins.TOY_RECIPE.replace("plugin: toy\n  sweep: {level: [60, 180]}",
                                           "plugin: forgetful\n  sweep: {delay: [0, 0.001]}")
    toyplugins.CALLS.clear()
    with pytest.raises(Exception, match=r"sweep points \{'delay': 0\} and \{'delay': 0\.001\} make the same image "
                                        r"for product 'a'.*list each value once"):
        run_test_recipe(recipe, tmp_path, toyplugins, _Plugin())
    assert toyplugins.CALLS.get("generate", 0) == 0  # planned before anything was made
    # a sweep of a setting it does describe runs
    ok = run_test_recipe(recipe.replace("{delay: [0, 0.001]}", "{level: [60, 180]}"), tmp_path / "ok",
                         toyplugins, _Plugin())
    assert len({r["id"] for r in ok.records}) == len(ok.records) == 18


@pytest.mark.parametrize("seeds, ok", [("{count: 2, base: 99999999999999999999999}", False),
                                       ("{count: 2, base: 9223372036854775806}", True),
                                       ("{count: 3, base: 9223372036854775806}", False)])
def test_a_seed_range_is_held_to_the_range_a_seed_list_is(tmp_path, seeds, ok):
    # before: {count, base} took any base, and a diffusers generator failed on 1e23 at run time
    data = safe_load(toyplugins.TOY_RECIPE.replace("seeds: [1, 2, 3]", f"seeds: {seeds}"))
    with temporary_plugins(toyplugins):
        if ok:
            assert resolve_recipe(data, path=tmp_path / "r.yaml").recipe.generate.seed_list()[-1] == 2**63 - 1
        else:
            with pytest.raises(RecipeError, match=r"generate\.seeds.*\[0, 2\^63\)"):
                resolve_recipe(data, path=tmp_path / "r.yaml")
