"""Which presets can run right now: each stage's own pre-flight ``check()`` says whether its model files are here."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("ecomforge.web")
OFFLINE = "works offline"
NEEDS_WEIGHTS = "needs model weights"


@dataclass(frozen=True)
class Readiness:
    """A preset's label in the UI: ready to run offline, or what it still needs."""

    ready: bool
    detail: str = ""  # the steps that cannot run, e.g. "mask (sam-clip), generate (sd-img2img)"

    @property
    def label(self) -> str:
        """"works offline" or "needs model weights"."""
        return OFFLINE if self.ready else NEEDS_WEIGHTS


def _steps(preset: dict[str, Any]) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """(step, kind, plugin, config) of every stage a preset names."""
    steps = [("mask", "masker", preset.get("mask"), preset.get("mask_config") or {}),
             ("generate", "generator", preset.get("generate"), preset.get("generate_config") or {})]
    steps += [("score", "scorer", name, {}) for name in preset.get("score") or []]
    filters = preset.get("filter") or []
    for filt in filters if isinstance(filters, list) else [filters]:
        if isinstance(filt, dict):
            steps.append(("filter", "filter", filt.get("plugin"), filt.get("config") or {}))
    return [s for s in steps if s[2]]


@contextmanager
def _downloads_off():
    """Checks run as if offline, so a model that would be downloaded on first use counts as missing.

    Called while the UI is built, before the job workers start, so no job sees the changed environment.
    """
    old = os.environ.get("ECOMFORGE_OFFLINE")
    os.environ["ECOMFORGE_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ECOMFORGE_OFFLINE", None)
        else:
            os.environ["ECOMFORGE_OFFLINE"] = old


def preset_readiness(preset: dict[str, Any]) -> Readiness:
    """Build each stage of a preset (no weights load) and run its pre-flight check with downloads off."""
    with _downloads_off():
        return _check_steps(preset)


def _check_steps(preset: dict[str, Any]) -> Readiness:
    from ..plugins import get_registry

    registry = get_registry()
    missing = []
    for step, kind, plugin, config in _steps(preset):
        try:
            stage = registry.create(kind, plugin, config, path=f"{step}.config")
            stage.check()
        except Exception as exc:  # any failure means "not runnable here"; the log says why
            message = getattr(exc, "one_line", None)
            text = message() if callable(message) else f"{type(exc).__name__}: {exc}"
            # The full message (with the cache folders it looked in) is for the operator's log only.
            log.info("preset %s: %s (%s) cannot run here: %s", preset.get("name"), step, plugin, text)
            missing.append(f"{step} ({plugin})")
    return Readiness(not missing, ", ".join(missing))


def order_presets(presets: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Readiness]]:
    """Runnable presets first (the first one is the UI's default), then the rest; each group keeps its order."""
    rated = [(p, preset_readiness(p)) for p in presets if p.get("generate")]  # a training file is no preset
    return [r for r in rated if r[1].ready] + [r for r in rated if not r[1].ready]


def preset_choice(preset: dict[str, Any], readiness: Readiness) -> tuple[str, str]:
    """(shown label, value) of a preset in the dropdown."""
    return f"{preset['name']} — {readiness.label}", preset["name"]
