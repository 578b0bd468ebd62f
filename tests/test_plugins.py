"""The plugin system: registration, duplicate names, misspelt hooks, every hook documented and used."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from ecomforge import hookimpl, hookspecs
from ecomforge.errors import PluginNotFound
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


def test_two_plugins_one_name_is_an_error():
    reg = build_registry([toyplugins, Dup()], entry_points=False)
    assert reg.plugins["masker"]["toy"].cls is toyplugins.ToyMasker
    assert any("two plugins claim masker 'toy'" in e.error for e in reg.errors)


def test_misspelt_hook_is_reported():
    reg = build_registry([toyplugins, Misspelt()], entry_points=False)
    assert any("register_maskerz" in e.error for e in reg.errors)


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
