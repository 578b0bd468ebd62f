"""Tiny open_clip and DINOv2 models in their genuine on-disk formats, built once per test session."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """Folder of a tiny open_clip model (open_clip_config.json + open_clip_model.safetensors)."""
    from ecomforge.testing.tiny_clip import build_tiny_open_clip

    return build_tiny_open_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="session")
def tiny_dino_dir(tmp_path_factory):
    """Folder of a tiny DINOv2 (config.json, model.safetensors, preprocessor_config.json)."""
    from ecomforge.testing.tiny_dino import build_tiny_dinov2

    return build_tiny_dinov2(tmp_path_factory.mktemp("dino"))


@pytest.fixture(scope="session")
def scorer_configs(tiny_clip_dir, tiny_dino_dir):
    """A working config for each of this plugin's scorers, on the tiny models."""
    return {
        "clip-image": {"model": str(tiny_clip_dir)},
        "clip-text": {"model": str(tiny_clip_dir)},
        "dino": {"model": str(tiny_dino_dir)},
        "lpips": {"backbone": "random", "size": 64},
    }


@pytest.fixture
def make_scorer(scorer_configs):
    """``make_scorer(name, **overrides)``: the scorer through the registry, as a recipe would build it."""
    from ecomforge.plugins import get_registry

    def make(name, **overrides):
        return get_registry().create("scorer", name, {**scorer_configs[name], **overrides}, device="cpu")

    return make
