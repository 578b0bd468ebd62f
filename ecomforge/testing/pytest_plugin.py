"""The pytest plugin (entry point ``pytest11``): fixtures for testing ecomforge plugins."""
from __future__ import annotations

import os

import pytest

from .fixtures import temporary_plugins


@pytest.fixture
def ecomforge_plugins():
    """Register plugin objects for the duration of one test: ``ecomforge_plugins(MyPlugin)``."""
    stack = []

    def register(*plugins, entry_points: bool = True):
        cm = temporary_plugins(*plugins, entry_points=entry_points)
        registry = cm.__enter__()
        stack.append(cm)
        return registry

    yield register
    while stack:
        stack.pop().__exit__(None, None, None)


@pytest.fixture
def offline_hub(monkeypatch):
    """No hub downloads: what CI and air-gapped users see."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("ECOMFORGE_OFFLINE", "1")
    yield


def pytest_configure(config):
    """Keep hub libraries offline in every test session that loads this plugin."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


# --- tiny random-weight models in their genuine on-disk formats, built once per session ---------
# Plugins' tests load them through exactly the path a user's model takes.

@pytest.fixture(scope="session")
def ecomforge_tiny_dir(tmp_path_factory):
    """One folder for every tiny model of the test session."""
    return tmp_path_factory.mktemp("ecomforge-tiny")


@pytest.fixture(scope="session")
def tiny_sd_inpaint(ecomforge_tiny_dir):
    """A tiny Stable Diffusion inpainting pipeline folder (9-channel UNet, 4-block VAE, CLIP text)."""
    from .tiny_diffusers import build_tiny_pipeline

    return build_tiny_pipeline(ecomforge_tiny_dir / "sd-inpaint", kind="inpaint")


@pytest.fixture(scope="session")
def tiny_sd_img2img(ecomforge_tiny_dir):
    """A tiny Stable Diffusion img2img / text-to-image pipeline folder (4-channel UNet)."""
    from .tiny_diffusers import build_tiny_pipeline

    return build_tiny_pipeline(ecomforge_tiny_dir / "sd-img2img", kind="img2img")


@pytest.fixture(scope="session")
def tiny_open_clip(ecomforge_tiny_dir):
    """A tiny open_clip model folder (open_clip_config.json + open_clip_model.safetensors)."""
    from .tiny_clip import build_tiny_open_clip

    return build_tiny_open_clip(ecomforge_tiny_dir / "open-clip")


@pytest.fixture(scope="session")
def tiny_dinov2(ecomforge_tiny_dir):
    """A tiny DINOv2 folder (config.json, model.safetensors, preprocessor_config.json)."""
    from .tiny_dino import build_tiny_dinov2

    return build_tiny_dinov2(ecomforge_tiny_dir / "dinov2")


@pytest.fixture(scope="session")
def tiny_sam_checkpoint(ecomforge_tiny_dir):
    """A tiny SAM checkpoint saved as a state-dict .pth, like Meta's releases."""
    from .tiny_sam import build_tiny_sam

    return build_tiny_sam(ecomforge_tiny_dir / "sam")
