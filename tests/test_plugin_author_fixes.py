"""What a plugin author following only the docs ran into: a broken plugin hidden behind "unknown plugin", a test
helper that read failures as candidates or passed on a run whose every product failed, a misspelt score key."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from ecomforge import hookimpl
from ecomforge.cli import main
from ecomforge.errors import PluginNotFound, RecipeError
from ecomforge.plugins import build_registry, set_registry
from ecomforge.recipe.load import resolve_recipe
from ecomforge.run import store
from ecomforge.stages import Scorer, StageConfig
from ecomforge.testing import read_failures, read_manifest, run_test_recipe, toy, toy_recipe

# One distribution, entry point `h3test`, whose stages are named otherwise: flat, brightness, budget.
_STAGES = '''
from ecomforge import hookimpl
from ecomforge.stages import Filter, Generator, Scorer, StageConfig


class Flat(Generator):
    name = "flat"

    class Config(StageConfig):
        pass

    def generate(self, request):
        raise AssertionError


class Brightness(Scorer):
    name = "brightness"

    class Config(StageConfig):
        pass

    def score(self, candidates, context):
        raise AssertionError


class Budget(Filter):
    name = "budget"

    class Config(StageConfig):
        pass

    def select(self, scored):
        raise AssertionError


@hookimpl
def register_scorers(register):
    register(Brightness)


@hookimpl
def register_filters(register):
    register(Budget)
'''

BROKEN = {
    "import": ("import foo_not_installed\n" + _STAGES + "\n\n@hookimpl\ndef register_generators(register):\n"
               "    register(Flat)\n",
               "ModuleNotFoundError: No module named 'foo_not_installed'"),
    "register": (_STAGES + "\n\n@hookimpl\ndef register_generators(register):\n    raise RuntimeError('boom')\n",
                 "register_generators failed: RuntimeError: boom"),
    "hook-name": (_STAGES + "\n\n@hookimpl\ndef register_generator(register):\n    register(Flat)\n",
                  "unknown hook 'register_generator' (did you mean 'register_generators'?)"),
}


def _install_broken(root: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> str:
    """An installed ``ecomforge-h3test`` (a dist-info on sys.path) broken in the way ``case`` names; its error."""
    source, error = BROKEN[case]
    module = f"ecomforge_h3test_{case.replace('-', '_')}"
    (root / f"{module}.py").write_text(source)
    info = root / "ecomforge_h3test-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ecomforge-h3test\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ecomforge]\nh3test = {module}\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, module, raising=False)
    return error


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_unknown_plugin_names_the_distribution_that_failed_to_load(case, tmp_path, monkeypatch, capsys):
    error = _install_broken(tmp_path, monkeypatch, case)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(toy_recipe(generate={"plugin": "flat"})))
    old = set_registry(build_registry([toy]))
    try:
        code, _, err = _cli(capsys, "validate", str(recipe))
        listed, table, _ = _cli(capsys, "plugins", "--json")
    finally:
        set_registry(old)
    assert code == 2
    assert "unknown generator plugin 'flat' (available generators: " in err
    assert f"; ecomforge-h3test failed to load: {error} (ecomforge plugins shows more))" in err
    assert len(err.strip().splitlines()) == 1
    # `ecomforge plugins` names the failed plugin by its entry point, whatever failed.
    assert listed == 1
    assert [(e["plugin"], e["distribution"]) for e in json.loads(table)["errors"]] == [("h3test", "ecomforge-h3test")]


def test_a_load_failure_of_another_kind_is_not_blamed():
    class BrokenFilters:
        __distribution__ = "ecomforge-broken"

        @hookimpl
        def register_filters(self, register):
            raise RuntimeError("boom")

    reg = build_registry([toy, BrokenFilters()], entry_points=False)
    with pytest.raises(PluginNotFound) as info:
        reg.get("generator", "flat")
    assert info.value.hint == "available generators: sample"
    with pytest.raises(PluginNotFound) as info:
        reg.get("filter", "budget")
    assert info.value.hint == ("available filters: sample; ecomforge-broken failed to load: register_filters failed: "
                               "RuntimeError: boom (ecomforge plugins shows more)")


# --- ecomforge.testing reads run folders with the run store's own readers ----------------------

def test_read_manifest_is_the_stores_and_skips_failed_products(tmp_path):
    assert read_manifest is store.read_manifest and read_failures is store.read_failures
    recipe = toy_recipe(inputs={"products": {"a": ["sample:1"], "b": ["sample:oops"]}})
    result = run_test_recipe(recipe, tmp_path, toy, allow_failures=True)
    records = read_manifest(result.run_dir)
    assert sum(r["kept"] for r in records) == len(records) == 4  # the docs' own pattern, with a product failed
    assert [(f["product"], f["step"], f["plugin"]) for f in read_failures(result.run_dir)] == [("b", "acquire", "sample")]


# --- run_test_recipe does not pass on a run whose products all failed --------------------------

class _Crashy(Scorer):
    """Fails on every call."""

    name = "crashy"

    class Config(StageConfig):
        pass

    def score(self, candidates, context):
        raise ValueError("no model here")


class _CrashyPlugin:
    @hookimpl
    def register_scorers(self, register):
        register(_Crashy)


def test_a_crashing_plugin_fails_the_test(tmp_path):
    recipe = toy_recipe(score=[{"plugin": "crashy"}])
    with pytest.raises(Exception, match=r"score failed in plugin 'crashy' for product '[ab]': "
                                        r"ValueError: no model here") as info:
        run_test_recipe(recipe, tmp_path / "strict", toy, _CrashyPlugin())
    assert isinstance(info.value.__cause__, ValueError)  # the plugin's traceback comes with it
    result = run_test_recipe(recipe, tmp_path / "lenient", toy, _CrashyPlugin(), allow_failures=True)
    assert result.records == [] and len(result.summary["failed_products"]) == 2


def test_a_recorded_failure_fails_the_test_too(tmp_path, monkeypatch):
    """Whatever the runner does with fail_fast, a run folder listing a failed product is not a pass."""
    from ecomforge.run.work import RunResult
    from ecomforge.testing import harness

    failure = {"product": "b", "step": "mask", "plugin": "sample", "reason": "InputError: no mask"}
    monkeypatch.setattr(harness, "run_recipe", lambda *a, **k: RunResult(tmp_path, [], {"failed_products": [failure]}))
    with pytest.raises(AssertionError, match=r"^product 'b' failed in mask plugin 'sample': InputError: no mask "
                                             r"\(pass allow_failures=True to test this\)$"):
        run_test_recipe(toy_recipe(), tmp_path, toy)


# --- a min_scores key no scorer gives is refused before any work -------------------------------

def _threshold_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(toy_recipe(
        score=[{"plugin": "sample", "name": "brightness"}, {"plugin": "sample", "name": "contrast"}],
        filter=[{"plugin": "threshold", "config": {"dedupe": False}}])))
    return path


def test_validate_refuses_a_misspelt_min_scores_key(tmp_path, capsys):
    recipe = _threshold_recipe(tmp_path)
    old = set_registry(build_registry([toy]))
    try:
        bad = _cli(capsys, "validate", str(recipe), "--set", "filter.0.config.min_scores={brightnes: 0.5}")
        plugin_name = _cli(capsys, "validate", str(recipe), "--set", "filter.0.config.min_scores={sample: 0.5}")
        good = _cli(capsys, "validate", str(recipe), "--set", "filter.0.config.min_scores={brightness: 0.5}")
        run = _cli(capsys, "run", str(recipe), "--out", str(tmp_path / "runs"), "--progress", "none",
                   "--set", "filter.0.config.min_scores={brightnes: 0.5}")
    finally:
        set_registry(old)
    assert bad[0] == 2
    assert bad[2] == (f"error: {recipe}: filter.0.config.min_scores.brightnes: no scorer in the recipe is named "
                      "'brightnes' (did you mean 'brightness'? the recipe's scorers: brightness, contrast)\n")
    # A score is named by its scorer's `name` when it has one, not by its plugin.
    assert plugin_name[0] == 2 and "named 'sample'" in plugin_name[2]
    assert "the recipe's scorers: brightness, contrast)" in plugin_name[2]
    assert good[0] == 0, good[2]
    assert run[0] == 2 and "min_scores.brightnes" in run[2]
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made


def test_a_catalogue_override_of_min_scores_is_checked_too(tmp_path):
    (tmp_path / "products.csv").write_text(textwrap.dedent("""\
        product,references,filter.config.min_scores.brightnes
        p1,sample:1,0.5
        """))
    recipe = toy_recipe(inputs={"catalog": str(tmp_path / "products.csv")}, score=[{"plugin": "sample", "name": "brightness"}],
                        filter={"plugin": "threshold"})
    with pytest.raises(RecipeError) as info:
        resolve_recipe(recipe, path=tmp_path / "recipe.yaml", registry=build_registry([toy]))
    assert info.value.one_line() == (f"{tmp_path / 'products.csv'}: line 2: filter.config.min_scores.brightnes: no "
                                     "scorer in the recipe is named 'brightnes' (did you mean 'brightness'? the "
                                     "recipe's scorers: brightness)")


def test_no_scorers_at_all(tmp_path):
    recipe = toy_recipe(score=[], filter={"plugin": "threshold", "config": {"min_scores": {"color": 0.5}}})
    with pytest.raises(RecipeError) as info:
        resolve_recipe(recipe, registry=build_registry([toy]))
    assert info.value.one_line() == ("filter.config.min_scores.color: no scorer in the recipe is named 'color' "
                                     "(the recipe has no scorers)")
