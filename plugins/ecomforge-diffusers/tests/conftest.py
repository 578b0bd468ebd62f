"""Tiny SD models built once per session, on disk, in the genuine formats; everything offline."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any hub library reads it
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for diffusers_testutil


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """One folder for every tiny model of the session."""
    return tmp_path_factory.mktemp("tiny-sd")

