"""A hub that cannot be reached fails at once with what to download and where, not after the hub client's retries."""
from __future__ import annotations

import socket

import pytest

from ecomforge import models
from ecomforge.errors import ModelNotFound
from ecomforge_diffusers.loading import resolve_model


@pytest.fixture
def online(monkeypatch):
    """Downloads switched on (the test suite runs offline), and no remembered hub check."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("ECOMFORGE_OFFLINE", raising=False)
    monkeypatch.setattr(models, "_HUB_CHECKS", {})
    calls = []

    def connect(target, timeout=None):
        calls.append(target)
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", connect)
    return calls


def test_an_unreachable_hub_is_a_clear_model_not_found(online):
    with pytest.raises(ModelNotFound) as err:
        resolve_model("someone/never-downloaded-inpainting")
    text = err.value.one_line()
    assert "is not downloaded and huggingface.co cannot be reached (Network is unreachable)" in text
    assert "ecomforge models pull someone/never-downloaded-inpainting" in text
    assert online == [("huggingface.co", 443)]


def test_the_hub_check_is_remembered_and_follows_hf_endpoint(online, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example:8080")
    assert models.hub_unreachable() == "mirror.example cannot be reached (Network is unreachable)"
    assert models.hub_unreachable() is not None
    assert online == [("mirror.example", 8080)]  # one connect a minute, not one per model


def test_a_reachable_hub_leaves_the_model_to_the_hub(online, monkeypatch):
    class Conn:
        def close(self):
            pass

    monkeypatch.setattr(socket, "create_connection", lambda target, timeout=None: Conn())
    assert models.hub_off() is None
    assert resolve_model("someone/never-downloaded-inpainting") == ("hub", None)


def test_switched_off_downloads_need_no_network_check(online, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.hub_off() == "downloads are off (HF_HUB_OFFLINE)"
    assert online == []
