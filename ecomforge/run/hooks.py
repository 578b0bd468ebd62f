"""A run's own hook scope: the process-wide plugins' lifecycle hooks plus this run's store and observers.

Run stores and progress displays used to be registered on the process-wide plugin manager for a
run's duration, so two runs in one process (the web server's workers, a notebook) each received the
other's events. Each run now gets its own pluggy manager holding the installed plugins and its own
objects; nothing is registered globally. Each implementation is called on its own, so a failure is
attributed to its plugin (``HookError``) and handled by the stated policy: fatal for plugins that set
``hook_errors = "raise"`` (the run store), a logged warning for every other observer.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import pluggy

from .. import hookspecs
from ..errors import HookError, PluginError

log = logging.getLogger("ecomforge")

LIFECYCLE = ("on_run_start", "on_run_end", "on_run_error", "on_step_start", "on_step_advance", "on_step_end",
             "on_step_error", "on_references", "on_mask", "on_candidate", "on_product_done")


class RunHooks:
    """``hooks.on_candidate(run=..., ...)``, like ``pm.hook``, for one run's plugins only."""

    def __init__(self, global_pm: pluggy.PluginManager | None, run_plugins: Iterable[Any]) -> None:
        self._pm = pluggy.PluginManager("ecomforge")
        self._pm.add_hookspecs(hookspecs)
        for name, plugin in (global_pm.list_name_plugin() if global_pm is not None else []):
            if plugin is not None and _implements_lifecycle(plugin):
                self._pm.register(plugin, name=name)
        for i, plugin in enumerate(run_plugins):
            self._pm.register(plugin, name=f"{type(plugin).__name__}#{i}")
        try:
            self._pm.check_pending()  # a misspelt hook on an observer fails here, before any work
        except pluggy.PluginValidationError as exc:
            name = self._pm.get_name(exc.plugin) or "?"
            raise PluginError(f"plugin '{_label_name(name)}' implements an unknown hook: {exc}",
                              hint="the hooks are listed in docs/hooks.md") from exc
        self.warnings: list[str] = []  # one line per observer hook that failed (first failure of each)
        self._warned: set[tuple[str, str]] = set()

    def __getattr__(self, hook: str) -> Callable[..., None]:
        if hook not in LIFECYCLE:
            raise AttributeError(hook)
        caller = getattr(self._pm.hook, hook)
        return lambda **kwargs: self._call(hook, caller, kwargs)

    def _call(self, hook: str, caller: Any, kwargs: dict[str, Any]) -> None:
        # pluggy's own order (last registered first), one implementation at a time.
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as exc:
                error = HookError(_label(impl), hook, exc)
                if getattr(impl.plugin, "hook_errors", "warn") == "raise":
                    raise error from exc
                if (impl.plugin_name, hook) not in self._warned:
                    self._warned.add((impl.plugin_name, hook))
                    self.warnings.append(error.one_line())
                    log.warning("%s (the run goes on)", error.one_line(), exc_info=log.isEnabledFor(logging.DEBUG))


def _label(impl: Any) -> str:
    """The plugin's name as a user knows it: the entry point's ``dist:name``, or the observer's class."""
    return _label_name(impl.plugin_name)


def _label_name(name: str) -> str:
    return name.split("#", 1)[0]


def _implements_lifecycle(plugin: Any) -> bool:
    return any(hasattr(plugin, h) for h in LIFECYCLE)
