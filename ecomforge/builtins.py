"""Plugins that ship inside the core distribution, registered through its own entry point."""
from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def register_executors(register):
    """The in-process executor, the default."""
    from .run.executor import LocalExecutor

    register(LocalExecutor)
