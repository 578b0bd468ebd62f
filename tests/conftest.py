"""Shared fixtures: the toy plugins registered for orchestration tests."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ecomforge.testing import temporary_plugins

import toyplugins


@pytest.fixture
def toy_registry():
    """The registry with toy stages added (entry-point plugins too)."""
    toyplugins.CALLS.clear()
    with temporary_plugins(toyplugins) as reg:
        yield reg


@pytest.fixture
def toy_recipe(tmp_path):
    """A toy recipe file."""
    path = tmp_path / "toy.yaml"
    path.write_text(toyplugins.TOY_RECIPE)
    return path


@pytest.fixture
def done(toy_registry, toy_recipe, tmp_path):
    """A finished toy run: its run folder."""
    from ecomforge.recipe import load_recipe
    from ecomforge.run.runner import run_recipe

    return run_recipe(load_recipe(toy_recipe), out=tmp_path / "runs").run_dir
