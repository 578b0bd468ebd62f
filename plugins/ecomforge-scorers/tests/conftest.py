"""Scorer configs on the tiny open_clip and DINOv2 models (fixtures of the ecomforge pytest plugin)."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def scorer_configs(tiny_open_clip, tiny_dinov2):
    """A working config for each of this plugin's scorers, on the tiny models."""
    return {
        "clip-image": {"model": str(tiny_open_clip)},
        "clip-text": {"model": str(tiny_open_clip)},
        "dino": {"model": str(tiny_dinov2)},
        "lpips": {"backbone": "random", "size": 64},
    }


@pytest.fixture
def make_scorer(scorer_configs):
    """``make_scorer(name, **overrides)``: the scorer through the registry, as a recipe would build it."""
    from ecomforge.plugins import get_registry

    def make(name, **overrides):
        return get_registry().create("scorer", name, {**scorer_configs[name], **overrides}, device="cpu")

    return make
