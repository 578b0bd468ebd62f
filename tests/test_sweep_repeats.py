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
