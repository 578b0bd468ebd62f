"""Plugins that ship inside the core distribution, registered through its own entry point."""
from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def register_executors(register):
    """The in-process executor (default) and the Ray executor (needs ``pip install 'ecomforge[ray]'``)."""
    from .run.executor import LocalExecutor

    register(LocalExecutor)
    try:
        from .run.ray_executor import RayExecutor
    except ImportError:  # the module itself imports ray lazily; absent only in trimmed installs
        return
    register(RayExecutor)
