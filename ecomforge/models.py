"""The process-wide model cache, device choice and the local model folder (no torch at import)."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import InputError

T = TypeVar("T")


class ModelCache:
    """Loaded models keyed by (kind, id, device, dtype, ...): each loads once per process."""

    def __init__(self) -> None:
        self._items: dict[tuple, Any] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple, loader: Callable[[], T]) -> T:
        """Return the cached model for ``key``, calling ``loader()`` the first time only."""
        with self._guard:
            if key in self._items:
                self.hits += 1
                return self._items[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one loader per key at a time; other keys load in parallel
            with self._guard:
                if key in self._items:
                    self.hits += 1
                    return self._items[key]
            value = loader()
            with self._guard:
                self._items[key] = value
                self.misses += 1
            return value

    def keys(self) -> list[tuple]:
        """The keys currently loaded."""
        with self._guard:
            return list(self._items)

    def clear(self) -> None:
        """Drop every cached model (frees memory once nothing else holds them)."""
        with self._guard:
            self._items.clear()
            self._locks.clear()


MODEL_CACHE = ModelCache()


def models_dir() -> Path:
    """Where ``ecomforge models pull`` puts weights: $ECOMFORGE_MODELS or ~/.cache/ecomforge/models."""
    env = os.environ.get("ECOMFORGE_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ecomforge" / "models"


def resolve_device(device: str = "auto", key: str = "--device") -> str:
    """'auto' becomes cuda, mps or cpu, whichever is available; imports torch lazily.

    An explicit device this machine lacks (``cuda`` without a CUDA driver, ``mps`` off a Mac) is an
    InputError naming ``--device``, so a caller that resolves the device before any work (a stage's
    ``check()``, a command before it loads weights) stops with one line and exit code 2 instead of a
    driver's RuntimeError after the model has loaded. ``key`` names where the device was chosen.
    """
    if device == "cpu":
        return device
    import importlib

    torch = importlib.import_module("torch")  # only here, on first use: the core never imports torch itself
    mps = getattr(torch.backends, "mps", None)
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if (device == "cuda" or device.startswith("cuda:")) and not torch.cuda.is_available():
        raise InputError(f"{key} {device}: CUDA is not available on this machine "
                         "(torch.cuda.is_available() is false)", hint="use --device cpu, or leave --device auto")
    if device.startswith("cuda:") and device[5:].isdigit() and int(device[5:]) >= torch.cuda.device_count():
        raise InputError(f"{key} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device == "mps" and not (mps is not None and mps.is_available()):
        raise InputError(f"{key} mps: MPS is not available on this machine (torch.backends.mps.is_available() "
                         "is false)", hint="use --device cpu, or leave --device auto")
    return device


def check_device(device: str, key: str = "--device") -> None:
    """Fail (InputError, exit 2) when an explicitly chosen device is not on this machine; cheap for auto and cpu."""
    if device not in ("auto", "cpu"):
        resolve_device(device, key)


def fingerprint_changes(recorded: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """One line per weight fingerprint that a record and the files now disagree on ("lora:x.safetensors:
    recorded a1111-hash:..., now a1111-hash:..."); a recorded one no file gives now is "now absent".

    ``recorded`` is a candidate's ``models``; ``now`` what its generator's ``fingerprints(config)`` returns.
    Names (``model``) are not fingerprints and are skipped; an empty list means the same files.
    """
    out = []
    for key, value in recorded.items():
        if key == "model" or not isinstance(value, str):
            continue
        if key not in now:
            out.append(f"{key}: recorded {value}, now absent")
        elif now[key] != value:
            out.append(f"{key}: recorded {value}, now {now[key]}")
    return out


def offline() -> bool:
    """True when hub downloads are switched off (HF_HUB_OFFLINE or ECOMFORGE_OFFLINE)."""
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes"} for v in ("HF_HUB_OFFLINE", "ECOMFORGE_OFFLINE"))


_HUB_CHECKS: dict[str, tuple[float, str | None]] = {}


def hub_unreachable(timeout: float = 2.0) -> str | None:
    """Why the model hub cannot be reached now (None when it can).

    One TCP connect to ``HF_ENDPOINT``'s host, or, behind a proxy, one ``CONNECT`` through it (a proxy that
    refuses the hub or never answers counts as no hub), remembered for a minute. Without it, a machine with
    no way to the hub spends some 40 s in the hub client's retries and then reads as "no file named
    model_index.json", instead of saying at once what to download and where to put it.
    """
    import time
    import urllib.parse
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    now = time.monotonic()
    hit = _HUB_CHECKS.get(endpoint)
    if hit is not None and now - hit[0] < 60:
        return hit[1]
    url = urllib.parse.urlsplit(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    proxy = urllib.request.getproxies().get(url.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        via = (p.hostname or "", p.port or (443 if p.scheme == "https" else 80))
        why = _through_proxy(via, host, port, timeout)
    else:
        why = _connect((host, port), timeout)
        why = why and f"{host} cannot be reached ({why})"
    _HUB_CHECKS[endpoint] = (now, why)
    return why


def _connect(target: tuple[str, int], timeout: float) -> str | None:
    import socket

    try:
        socket.create_connection(target, timeout=timeout).close()
        return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def _through_proxy(proxy: tuple[str, int], host: str, port: int, timeout: float) -> str | None:
    """None when the proxy opens a tunnel to ``host:port``; else why not, naming the proxy."""
    import socket

    where = f"{host} cannot be reached through the proxy {proxy[0]}:{proxy[1]}"
    try:
        with socket.create_connection(proxy, timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode("ascii"))
            status = conn.recv(256).split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    except OSError as exc:
        return f"{where} ({exc.strerror or exc or type(exc).__name__})"
    if len(status) >= 2 and status[1] == "200":
        return None
    return f"{where} (it answered {' '.join(status[1:]) or 'nothing'})"


def hub_off() -> str | None:
    """Why models cannot come from the hub now: downloads switched off, or the hub out of reach (None: they can)."""
    return "downloads are off (HF_HUB_OFFLINE)" if offline() else hub_unreachable()
