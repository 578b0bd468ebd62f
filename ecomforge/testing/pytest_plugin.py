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
