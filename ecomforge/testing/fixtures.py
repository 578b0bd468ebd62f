"""Registering temporary plugins for one test."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..plugins import Registry, build_registry, set_registry


@contextmanager
def temporary_plugins(*plugins: Any, entry_points: bool = True) -> Iterator[Registry]:
    """Make the process-wide registry include ``plugins`` (modules or objects with hookimpls) for a block."""
    registry = build_registry(list(plugins), entry_points=entry_points)
    old = set_registry(registry)
    try:
        yield registry
    finally:
        set_registry(old)
