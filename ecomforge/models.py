"""The process-wide model cache, device choice and the local model folder (no torch at import)."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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


def resolve_device(device: str = "auto") -> str:
    """'auto' becomes cuda, mps or cpu, whichever is available; imports torch lazily."""
    if device != "auto":
        return device
    import importlib

    torch = importlib.import_module("torch")  # only here, on first use: the core never imports torch itself

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def offline() -> bool:
    """True when hub downloads are switched off (HF_HUB_OFFLINE or ECOMFORGE_OFFLINE)."""
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes"} for v in ("HF_HUB_OFFLINE", "ECOMFORGE_OFFLINE"))
