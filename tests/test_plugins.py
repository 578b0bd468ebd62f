"""The plugin system: registration, duplicate names, misspelt hooks, every hook documented and used."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from ecomforge import hookimpl, hookspecs
from ecomforge.errors import PluginConflict, PluginNotFound, RecipeError
from ecomforge.plugins import build_registry
from ecomforge.stages import Masker, StageConfig

import toyplugins


class OtherToyMasker(Masker):
    """Claims the toy masker's name."""

    name = "toy"

    class Config(StageConfig):
        pass

    def mask(self, reference):
        """Never called."""
        raise AssertionError


class Dup:
    @hookimpl
    def register_maskers(self, register):
        register(OtherToyMasker)


class Misspelt:
    @hookimpl(optionalhook=False)
    def register_maskerz(self, register):
        pass


def test_two_plugins_one_name_is_an_error_where_the_name_is_used():
    """Neither claimant silently wins: using the name fails, naming both distributions."""
    dup = Dup()
    dup.__distribution__ = "ecomforge-other"  # type: ignore[attr-defined]
    reg = build_registry([toyplugins, dup], entry_points=False)
    assert any("two plugins claim masker 'toy'" in e.error for e in reg.errors)
    with pytest.raises(PluginConflict) as info:
        reg.get("masker", "toy")
    assert "toyplugins" in info.value.message and "ecomforge-other" in info.value.message
    assert info.value.exit_code == 2 and "ECOMFORGE_DISABLE" in (info.value.hint or "")
    assert reg.get("generator", "toy").cls is toyplugins.ToyGenerator  # other kinds are untouched


def test_conflict_hint_does_not_leak_into_other_kinds():
    reg = build_registry([toyplugins, Dup()], entry_points=False)
    with pytest.raises(PluginNotFound) as info:
        reg.get("filter", "toy-missing")
    assert "masker" not in (info.value.hint or "")


def test_misspelt_hook_is_reported_with_its_plugin_name():
    reg = build_registry([toyplugins, Misspelt()], entry_points=False)
    errs = [e for e in reg.errors if "register_maskerz" in e.error]
    assert errs and errs[0].plugin != "?" and errs[0].traceback
    assert "toy" in reg.plugins["masker"]  # the rest still loads


def test_disable_skips_a_distribution(monkeypatch):
    from ecomforge.plugins import disabled_distributions

    monkeypatch.setenv("ECOMFORGE_DISABLE", "ecomforge_classic, Other.Dist")
    assert disabled_distributions() == {"ecomforge-classic", "other-dist"}
    reg = build_registry()
    assert "composite" not in reg.plugins["generator"]
    monkeypatch.delenv("ECOMFORGE_DISABLE")
    assert "composite" in build_registry().plugins["generator"]


def test_plugins_command_fails_when_a_plugin_failed_to_load(monkeypatch):
    from click.testing import CliRunner

    from ecomforge.cli import cli
    from ecomforge.plugins import set_registry

    old = set_registry(build_registry([toyplugins, Misspelt()], entry_points=False))
    try:
        quiet = CliRunner().invoke(cli, ["plugins"])
        loud = CliRunner().invoke(cli, ["-v", "plugins"])
    finally:
        set_registry(old)
    assert quiet.exit_code == 1 and "register_maskerz" in quiet.output and "Traceback" not in quiet.output
    assert loud.exit_code == 1 and "Traceback" in loud.output


def test_unknown_plugin_hints():
    reg = build_registry([toyplugins], entry_points=False)
    with pytest.raises(PluginNotFound) as info:
        reg.get("generator", "toyy")
    assert info.value.hint == "did you mean 'toy'?"
    with pytest.raises(PluginNotFound) as info:
        reg.get("masker", "sam-clip")
    assert info.value.hint in ("pip install ecomforge-sam",) or "sam-clip" in info.value.hint


def test_not_a_stage_subclass_is_rejected():
    class Bad:
        @hookimpl
        def register_scorers(self, register):
            register(dict)

    reg = build_registry([Bad()], entry_points=False)
    assert any("not a Scorer subclass" in e.error for e in reg.errors)


def test_every_hook_is_documented_and_used():
    """Meta-test: each hookspec has a docstring and is called or registered somewhere in the core."""
    source = "\n".join(p.read_text() for p in Path(hookspecs.__file__).parent.rglob("*.py") if p.name != "hookspecs.py")
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(fn, "ecomforge_spec"):
            continue
        assert (fn.__doc__ or "").strip(), f"hook {name} has no docstring"
        from ecomforge.stages import STAGE_KINDS

        registered_dynamically = name.startswith("register_") and name[len("register_"):-1] in STAGE_KINDS
        assert name in source or registered_dynamically, f"hook {name} is never called by the core"


def test_misspelt_hook_suggests_the_real_one():
    class Typo:
        @hookimpl
        def on_candiate(self, record, image):
            """Misspelt."""

    reg = build_registry([toyplugins, Typo()], entry_points=False)
    assert any("unknown hook 'on_candiate' (did you mean 'on_candidate'?)" in e.error for e in reg.errors)


def test_plugins_table_marks_a_contested_name_and_lists_observers():
    """`ecomforge plugins` never shows a contested name as usable, and shows plugins that only observe."""
    from click.testing import CliRunner

    from ecomforge.cli import cli
    from ecomforge.cli.info import plugin_table
    from ecomforge.plugins import set_registry

    class Watch:
        @hookimpl
        def on_product_done(self, product, records):
            """Observes."""

    dup = Dup()
    dup.__distribution__ = "ecomforge-other"  # type: ignore[attr-defined]
    watch = Watch()
    watch.__name__ = "watch"  # type: ignore[attr-defined]
    old = set_registry(build_registry([toyplugins, dup, watch], entry_points=False))
    try:
        table = plugin_table()
        out = CliRunner().invoke(cli, ["plugins"])
    finally:
        set_registry(old)
    (toy,) = [p for p in table["plugins"] if (p["kind"], p["name"]) == ("masker", "toy")]
    assert toy["conflict"] and "ecomforge-other" in toy["distribution"] and "toyplugins" in toy["distribution"]
    assert {"plugin": "watch", "distribution": "watch", "hooks": ["on_product_done"]} in table["observers"]
    assert out.exit_code == 1 and "name conflict:" in out.output and "UNUSABLE" in out.output


def test_conflict_hint_names_both_distributions():
    """Callers that reword the message (recipe validation) still show who is in conflict."""
    dup = Dup()
    dup.__distribution__ = "ecomforge-other"  # type: ignore[attr-defined]
    reg = build_registry([toyplugins, dup], entry_points=False)
    with pytest.raises(PluginConflict) as info:
        reg.get("masker", "toy")
    assert "ecomforge-other" in info.value.hint and "toyplugins" in info.value.hint


class OtherDefaultFilter(toyplugins.ToyTop):
    """A second filter claiming to be the default."""

    name = "toy-default"
    default = True


class DefaultClaimer:
    @hookimpl
    def register_filters(self, register):
        register(OtherDefaultFilter)


def test_omitted_steps_get_the_plugins_that_declare_themselves_default():
    """The core names no plugin: a recipe without acquire/filter/execute gets what plugins declare."""
    from ecomforge.recipe.load import resolve_recipe

    data = {"name": "d", "inputs": {"references": ["x.png"]}, "mask": {"plugin": "toy"}, "generate": {"plugin": "toy"}}
    reg = build_registry([toyplugins])
    resolved = resolve_recipe(dict(data), registry=reg)
    picked = {k: getattr(resolved.recipe, k).plugin for k in ("acquire", "filter", "execute")}
    declared = {kind: [n for n, i in reg.plugins[kind].items() if i.cls.default]
                for kind in ("acquirer", "filter", "executor")}
    assert picked == {"acquire": declared["acquirer"][0], "filter": declared["filter"][0],
                      "execute": declared["executor"][0]}
    with pytest.raises(RecipeError, match="several filter plugins declare themselves the default"):
        resolve_recipe(dict(data), registry=build_registry([toyplugins, DefaultClaimer()]))
    with pytest.raises(RecipeError, match="acquire: no installed acquirer plugin is a default"):
        resolve_recipe(dict(data), registry=build_registry([toyplugins], entry_points=False))
