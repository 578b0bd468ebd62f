"""The plugin manager and the registry of stage classes, loaded from entry points in group ``ecomforge``."""
from __future__ import annotations

import difflib
import importlib.metadata as md
import os
import re
import threading
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

import pluggy

from . import hookspecs
from .errors import PluginConflict, PluginError, PluginNotFound

if TYPE_CHECKING:
    from .stages import Acquirer, Executor, Filter, Generator, Masker, Scorer, Stage, Trainer

# The stage kinds, in lifecycle order (ecomforge.stages.STAGE_KINDS maps them to their ABCs; it is
# imported only when classes are registered, so listing commands stays free of pydantic and numpy).
KINDS = ("acquirer", "masker", "generator", "scorer", "filter", "executor", "trainer")

ENTRY_POINT_GROUP = "ecomforge"

# Distributions (or entry-point names) to skip, comma-separated: the way out of a name conflict
# or a plugin that breaks at import time.
DISABLE_ENV = "ECOMFORGE_DISABLE"

# First-party plugins and the distribution to install for them: used for "pip install ..." hints.
KNOWN_PLUGINS: dict[str, str] = {
    **dict.fromkeys(["local", "classic", "upload", "composite", "cv-inpaint", "color", "keypoints", "parts", "shape",
                     "texture", "expansion", "seams", "duplicates", "scene", "framing", "threshold"],
                    "ecomforge-classic"),
    **dict.fromkeys(["sd-inpaint", "sd-img2img"], "ecomforge-diffusers"),
    **dict.fromkeys(["sam-clip", "sam", "clipseg"], "ecomforge-sam"),
    **dict.fromkeys(["clip-image", "clip-text", "dino", "lpips"], "ecomforge-scorers"),
    **dict.fromkeys(["lora", "dreambooth"], "ecomforge-train"),
    "ray": "ecomforge[ray]",
}
# The first-party distribution whose plugin is the default for a kind a recipe may leave out.
DEFAULT_DISTRIBUTIONS = {"acquirer": "ecomforge-classic", "filter": "ecomforge-classic"}


def install_hint(distribution: str) -> str | None:
    """How to get ``distribution``'s plugins: enable it (ECOMFORGE_DISABLE names it) or install it; None when it is
    installed and enabled (then its plugins failed, or it has no such name)."""
    base = distribution.split("[", 1)[0]
    if _normalise(base) in disabled_distributions():
        return f"{base} is disabled: remove it from {DISABLE_ENV}"
    if "[" in distribution:
        return f"pip install '{distribution}'"
    try:
        md.distribution(base)
    except md.PackageNotFoundError:
        return f"pip install {distribution}"
    return None


@dataclass(frozen=True)
class PluginInfo:
    """One registered stage class and the distribution it came from."""

    kind: str
    name: str
    cls: "type[Stage]"
    distribution: str
    version: str


@dataclass
class LoadError:
    """A plugin that failed to import or register: shown by ``ecomforge plugins``, never fatal."""

    plugin: str
    distribution: str
    error: str
    kind: str = ""  # the stage kind whose registration failed, when known
    traceback: str = ""  # the formatted traceback, shown under ``--verbose``
    conflict: bool = False  # a name claimed twice (the plugin loaded; the name is unusable)


@dataclass
class Registry:
    """Every stage class by kind and name, plus the load errors met while building it."""

    plugins: dict[str, dict[str, PluginInfo]] = field(default_factory=lambda: {k: {} for k in KINDS})
    errors: list[LoadError] = field(default_factory=list)
    pm: pluggy.PluginManager | None = None
    # (kind, name) -> every plugin claiming it: a contested name is unusable until one is disabled.
    conflicts: dict[tuple[str, str], list[PluginInfo]] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> PluginInfo:
        """Look a plugin up, or raise PluginNotFound (with a hint) or PluginConflict (naming both claimants)."""
        claimants = self.conflicts.get((kind, name))
        if claimants:
            names = sorted({c.distribution for c in claimants})
            dists = " and ".join(names)
            # The hint names both too: a caller that rewords the message keeps who is in conflict.
            raise PluginConflict(
                f"two plugins claim {kind} '{name}': {dists}",
                hint=f"{dists} both claim it: uninstall one, or set {DISABLE_ENV}={names[-1]} to skip it")
        found = self.plugins[kind].get(name)
        if found is not None:
            return found
        raise PluginNotFound(f"unknown {kind} plugin '{name}'", hint=self.hint(kind, name))

    def hint(self, kind: str, name: str) -> str:
        """Suggest a close name, the distribution to install, or the available names; then name every plugin that
        failed to load, since a distribution's stage names need not be its entry point's: any of them may be the one."""
        for err in self.errors:
            if err.kind in ("", kind) and (err.plugin == name or re.search(rf"\b{re.escape(kind)} '{re.escape(name)}'", err.error)):
                return f"plugin failed to load: {err.error}"
        close = difflib.get_close_matches(name, list(self.plugins[kind]), n=1)
        install = install_hint(KNOWN_PLUGINS[name]) if name in KNOWN_PLUGINS else None
        if install:  # a first-party plugin whose distribution is missing: a close name would be a guess
            hint = install
        elif close:
            hint = f"did you mean '{close[0]}'?"
        elif name in KNOWN_PLUGINS:
            hint = f"pip install {KNOWN_PLUGINS[name]}"
        else:
            hint = f"available {kind}s: {', '.join(sorted(self.plugins[kind])) or 'none installed'}"
        failed = dict.fromkeys(f"{e.distribution} failed to load: {' '.join(e.error.split())}"
                               for e in self.errors if not e.conflict and e.kind in ("", kind))
        return f"{hint}; {'; '.join(failed)} (ecomforge plugins shows more)" if failed else hint

    def default(self, kind: str) -> str:
        """The name of the one installed plugin of ``kind`` that declares itself the default."""
        names = sorted(n for n, info in self.plugins[kind].items() if getattr(info.cls, "default", False))
        if len(names) == 1:
            return names[0]
        if not names:
            available = ", ".join(sorted(self.plugins[kind])) or "none installed"
            dist = DEFAULT_DISTRIBUTIONS.get(kind)
            install = install_hint(dist) if dist else None
            raise PluginNotFound(f"no installed {kind} plugin is a default",
                                 hint=f"name one in the recipe; available {kind}s: {available}"
                                      + (f"; {install}" if install else ""))
        raise PluginConflict(f"several {kind} plugins declare themselves the default: {', '.join(names)}",
                             hint="name one in the recipe")

    # One overload per kind, so that callers get the kind's ABC back rather than a bare Stage.
    @overload
    def create(self, kind: Literal["acquirer"], name: str, config: Any = None, *, device: str = "auto",
               path: str = "config") -> Acquirer: ...
    @overload
    def create(self, kind: Literal["masker"], name: str, config: Any = None, *, device: str = "auto",
               path: str = "config") -> Masker: ...
    @overload
    def create(self, kind: Literal["generator"], name: str, config: Any = None, *, device: str = "auto",
               path: str = "config") -> Generator: ...
    @overload
    def create(self, kind: Literal["scorer"], name: str, config: Any = None, *, device: str = "auto",
               path: str = "config") -> Scorer: ...
    @overload
    def create(self, kind: Literal["filter"], name: str, config: Any = None, *, device: str = "auto",
               path: str = "config") -> Filter: ...
    @overload
    def create(self, kind: Literal["executor"], name: str, config: Any = None, *, device: str = "auto",
               path: str = "config") -> Executor: ...
    @overload
    def create(self, kind: Literal["trainer"], name: str, config: Any = None, *, device: str = "auto",
               path: str = "config") -> Trainer: ...
    @overload
    def create(self, kind: str, name: str, config: Any = None, *, device: str = "auto",
               path: str = "config") -> Stage: ...

    def create(self, kind: str, name: str, config: Any = None, *, device: str = "auto", path: str = "config") -> Stage:
        """Instantiate a plugin with a validated config (cheap: no weights load here)."""
        return self.get(kind, name).cls(config, device=device, path=path)

    def all(self) -> list[PluginInfo]:
        """Every registered plugin, sorted by kind and name."""
        return [info for kind in KINDS for _, info in sorted(self.plugins[kind].items())]


_HOOK_FOR_KIND = {kind: f"register_{kind}s" for kind in KINDS}


def build_plugin_manager(extra: list[Any] | None = None, *, entry_points: bool = True) -> tuple[pluggy.PluginManager, list[LoadError], dict[str, tuple[str, str]]]:
    """Make a plugin manager with every entry-point plugin; import failures become LoadErrors."""
    pm = pluggy.PluginManager("ecomforge")
    pm.add_hookspecs(hookspecs)
    errors: list[LoadError] = []
    origins: dict[str, tuple[str, str]] = {}
    disabled = disabled_distributions()
    if entry_points:
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.dist.name if e.dist else "", e.name)):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            if _normalise(dist) in disabled or _normalise(ep.name) in disabled:
                continue
            try:
                module = ep.load()
                if pm.is_registered(module):
                    continue
                pm.register(module, name=f"{dist}:{ep.name}")
                origins[f"{dist}:{ep.name}"] = (dist, version)
            except Exception as exc:  # a broken plugin must never break the CLI
                errors.append(LoadError(ep.name, dist, f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()))
    for i, plugin in enumerate(extra or []):
        if pm.is_registered(plugin):
            continue  # an installed plugin's own tests pass its module too: once is enough
        name = getattr(plugin, "__name__", f"extra-{i}")
        pm.register(plugin, name=name)
        origins[name] = (getattr(plugin, "__distribution__", name), getattr(plugin, "__version__", "0"))
    _check_hook_names(pm, errors, origins)
    return pm, errors, origins


def _check_hook_names(pm: pluggy.PluginManager, errors: list[LoadError], origins: dict[str, tuple[str, str]]) -> None:
    """A hook implementation no hookspec knows (a typo) is a load error naming the plugin; the plugin is dropped."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            plugin = getattr(exc, "plugin", None)
            name = (pm.get_name(plugin) if plugin is not None else None) or "?"
            dist = origins.get(name, (name, "?"))[0]
            errors.append(LoadError(_entry_point_name(name), dist, _unknown_hooks_message(pm, plugin, exc),
                                    traceback=traceback.format_exc()))
            if plugin is None:
                return
            pm.unregister(plugin)


def _unknown_hooks_message(pm: pluggy.PluginManager, plugin: Any, exc: Exception) -> str:
    """'unknown hook 'on_candiate' (did you mean 'on_candidate'?)' for every hook no hookspec knows."""
    if plugin is None:
        return f"unknown hook: {exc}"
    known = [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "ecomforge_spec")]
    parts = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.spec is None:
            close = difflib.get_close_matches(caller.name, known, n=1)
            parts.append(f"unknown hook '{caller.name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return "; ".join(parts) or f"unknown hook: {exc}"


def _entry_point_name(registered: str) -> str:
    """'h3test' for the plugin registered as 'ecomforge-h3test:h3test': how every LoadError names its plugin."""
    return registered.split(":", 1)[-1]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def disabled_distributions() -> set[str]:
    """The distributions and entry points named in ``ECOMFORGE_DISABLE`` (normalised)."""
    return {_normalise(n.strip()) for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def build_registry(extra: list[Any] | None = None, *, entry_points: bool = True,
                   loaded: tuple[pluggy.PluginManager, list[LoadError], dict[str, tuple[str, str]]] | None = None) -> Registry:
    """Load plugins and collect every stage class they register, one hook implementation at a time."""
    pm, errors, origins = loaded or build_plugin_manager(extra, entry_points=entry_points)
    errors = list(errors)
    registry = Registry(errors=errors, pm=pm)
    for kind, hook_name in _HOOK_FOR_KIND.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            dist, version = origins.get(impl.plugin_name, (impl.plugin_name, "?"))

            def register(cls: type, _kind: str = kind, _dist: str = dist, _version: str = version) -> None:
                _register(registry, _kind, cls, _dist, _version)

            try:
                impl.function(register)
            except Exception as exc:
                errors.append(LoadError(_entry_point_name(impl.plugin_name), dist,
                                        f"{hook_name} failed: {type(exc).__name__}: {exc}",
                                        kind=kind, traceback=traceback.format_exc()))
    return registry


def _register(registry: Registry, kind: str, cls: type, dist: str, version: str) -> None:
    from .stages import STAGE_KINDS

    base = STAGE_KINDS[kind]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(f"{getattr(cls, '__name__', cls)!r} is not a {base.__name__} subclass")
    if not cls.name:
        raise PluginError(f"{cls.__name__} has no 'name'")
    info = PluginInfo(kind, cls.name, cls, dist, version)
    contested = registry.conflicts.get((kind, cls.name))
    existing = registry.plugins[kind].get(cls.name)
    if contested is not None:
        contested.append(info)
    elif existing is not None and existing.cls is not cls:
        # Neither wins: the name stays listed but using it is an error naming both distributions.
        registry.conflicts[(kind, cls.name)] = [existing, info]
        registry.errors.append(LoadError(cls.name, dist, f"two plugins claim {kind} '{cls.name}': "
                                                         f"{existing.distribution} and {dist}", kind=kind,
                                         conflict=True))
    else:
        registry.plugins[kind][cls.name] = info


_lock = threading.RLock()
_default: Registry | None = None
_loaded: tuple[pluggy.PluginManager, list[LoadError], dict[str, tuple[str, str]]] | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (entry points loaded, stage classes not yet imported)."""
    global _loaded
    with _lock:
        if _default is not None and _default.pm is not None:
            return _default.pm
        if _loaded is None:
            _loaded = build_plugin_manager()
        return _loaded[0]


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _default
    with _lock:
        if _default is None:
            get_plugin_manager()
            _default = build_registry(loaded=_loaded)
        return _default


def set_registry(registry: Registry | None) -> Registry | None:
    """Swap the process-wide registry (tests register temporary plugins this way); returns the old one."""
    global _default
    with _lock:
        old, _default = _default, registry
        return old
