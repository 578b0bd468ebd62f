"""Recipe parsing, overrides and validation: bad input is rejected before any work, with path and hint."""
from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.errors import InputError, RecipeError
from ecomforge.recipe.load import apply_overrides, load_recipe, parse_overrides, resolve_recipe
from ecomforge.recipe.products import has_template

import toyplugins


def _base() -> dict:
    data = yaml.safe_load(toyplugins.TOY_RECIPE)
    data["generate"]["config"] = {}
    return data


TOY_ONLY = None


def _toy_only():
    """A registry of the toy plugins alone (fast to build for property tests)."""
    global TOY_ONLY
    if TOY_ONLY is None:
        import ecomforge.builtins
        from ecomforge.plugins import build_registry

        TOY_ONLY = build_registry([toyplugins, ecomforge.builtins], entry_points=False)
    return TOY_ONLY


def test_resolves_defaults_and_grid(toy_registry):
    r = resolve_recipe(_base(), registry=toy_registry)
    assert r.grid == [{"level": 60}, {"level": 180}]
    assert r.configs["generate"].delay == 0.0
    d = r.to_dict()
    assert d["generate"]["config"]["model"] == "toy-model"  # defaults filled in
    assert d["plugins"]["filter:toy-top"].startswith("toyplugins==")
    assert "executor:local" in d["plugins"] and "acquirer:toy" in d["plugins"]  # keyed by kind and name


@pytest.mark.parametrize("mutate, path, hint", [
    (lambda d: d.update(colour=1), "colour", None),
    (lambda d: d["generate"].update(plugin="toi"), "generate.plugin", "did you mean 'toy'?"),
    (lambda d: d["generate"]["config"].update(levle=3), "generate.config.levle", "did you mean 'level'?"),
    (lambda d: d["generate"]["config"].update(level=999), "generate.config.level", None),
    (lambda d: d["generate"].update(sweep={"levle": [1]}), "generate.sweep.levle", "did you mean 'level'?"),
    (lambda d: d["generate"].update(sweep={"level": [10, 300]}), "generate.sweep", None),
    (lambda d: d["generate"].update(seeds=[]), "generate.seeds", None),
    (lambda d: d["mask"].update(plugin="sd-inpaint"), "mask.plugin", None),
    (lambda d: d["inputs"].update(references=["x"]), "inputs", None),
    # a value of several shapes: the branch the user meant is reported, without pydantic's branch tags
    (lambda d: d["generate"].update(seeds={"count": 10**9}), "generate.seeds.count: Input should be less", None),
    (lambda d: d["generate"].update(seeds={"count": 2, "bse": 1}), "generate.seeds.bse", "did you mean 'base'?"),
    (lambda d: d.update(output={"dri": "x"}), "output.dri", "did you mean 'dir'?"),
])
def test_bad_recipes_name_the_key(toy_registry, mutate, path, hint):
    data = _base()
    mutate(data)
    with pytest.raises(RecipeError) as info:
        resolve_recipe(data, registry=toy_registry)
    assert path in info.value.message
    assert "list[" not in info.value.message and "SeedRange" not in info.value.message
    if hint:
        assert info.value.hint == hint
    assert info.value.exit_code == 2


def test_unknown_first_party_plugin_says_what_to_install():
    data = _base()
    data["generate"]["plugin"] = "sd-img2img"
    with pytest.raises(RecipeError) as info:  # a registry without ecomforge-diffusers installed
        resolve_recipe(data, registry=_toy_only())
    assert "pip install ecomforge-diffusers" in info.value.one_line()


def test_overrides_set_nested_and_list_items(toy_registry):
    data = apply_overrides(_base(), parse_overrides(["generate.config.level=42", "score.0.weight=0.5",
                                                     "generate.seeds=[7, 8]", "inputs.prompt=a: b"]))
    assert data["generate"]["config"]["level"] == 42
    assert data["score"][0]["weight"] == 0.5
    assert data["generate"]["seeds"] == [7, 8]
    assert data["inputs"]["prompt"] == "a: b"


@pytest.mark.parametrize("bad", ["novalue", "=3", "a..b=1", "score.9.weight=1"])
def test_bad_overrides(bad):
    with pytest.raises(RecipeError):
        apply_overrides(_base(), parse_overrides([bad]))


def test_yaml_errors_name_the_file(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(InputError, match="r.yaml"):
        load_recipe(p)
    p.write_text("- a list\n")
    with pytest.raises(InputError, match="mapping"):
        load_recipe(p)
    with pytest.raises(InputError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_seed_range_expands():
    from ecomforge.recipe.schema import Generate

    assert Generate(plugin="x", seeds={"count": 3, "base": 10}).seed_list() == [10, 11, 12]


@settings(max_examples=40, deadline=None)
@given(level=st.integers(0, 255), seeds=st.lists(st.integers(0, 2**31), min_size=1, max_size=5, unique=True),
       weight=st.floats(0, 10, allow_nan=False),
       prompt=st.text(max_size=40).filter(lambda t: not has_template(t)))  # {name} is a template
def test_round_trip(level, seeds, weight, prompt):
    """resolve → to_dict → resolve gives the same recipe."""
    reg = _toy_only()
    if True:
        data = _base()
        data["generate"]["config"]["level"] = level
        data["generate"]["seeds"] = seeds
        data["score"][0]["weight"] = weight
        data["inputs"]["prompt"] = prompt
        first = resolve_recipe(data, registry=reg).to_dict()
        again = dict(first)
        again.pop("plugins")
        second = resolve_recipe(yaml.safe_load(yaml.safe_dump(again)), registry=reg).to_dict()
        assert first == second


@settings(max_examples=60, deadline=None)
@given(key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
def test_any_unknown_top_level_key_is_rejected(key):
    from ecomforge.recipe.schema import Recipe

    if key in Recipe.model_fields:
        return
    reg = _toy_only()
    if True:
        data = _base()
        data[key] = 1
        with pytest.raises(RecipeError, match="unknown key"):
            resolve_recipe(data, registry=reg)


def test_a_short_fixed_length_list_says_how_many_values():
    """Two numbers where a config wants three: the key and the count, not 'weights.2: Field required'."""
    from pydantic import BaseModel, ValidationError

    from ecomforge.stages import config_error

    class Weights(BaseModel):
        weights: tuple[float, float, float]

    with pytest.raises(ValidationError) as info:
        Weights(weights=[1.0, 2.0])
    err = config_error(info.value, "score.0.config", Weights)
    assert "score.0.config.weights" in err.message and "expected 3 values (got 2)" in err.message
    assert "weights.2" not in err.message and err.exit_code == 2
