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


class _Proxy:
    """A proxy stand-in: answers a CONNECT with ``answer`` (or accepts and says nothing)."""

    def __init__(self, answer: bytes):
        self.answer, self.sent = answer, b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def settimeout(self, t):
        pass

    def sendall(self, data):
        self.sent += data

    def recv(self, n):
        if not self.answer:
            raise TimeoutError("timed out")
        return self.answer


@pytest.mark.parametrize("answer, reachable, shown", [
    (b"HTTP/1.1 200 Connection established\r\n\r\n", True, ""),
    (b"HTTP/1.1 403 Forbidden\r\n\r\n", False, "(it answered 403 Forbidden)"),
    (b"", False, "(timed out)"),
])
def test_behind_a_proxy_the_hub_is_what_the_proxy_lets_through(online, monkeypatch, answer, reachable, shown):
    proxy = _Proxy(answer)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    targets = []
    monkeypatch.setattr(socket, "create_connection", lambda target, timeout=None: targets.append(target) or proxy)
    why = models.hub_unreachable()
    assert targets == [("proxy.example", 3128)] and proxy.sent.startswith(b"CONNECT huggingface.co:443 HTTP/1.1")
    assert (why is None) == reachable
    if not reachable:
        assert why == f"huggingface.co cannot be reached through the proxy proxy.example:3128 {shown}"
