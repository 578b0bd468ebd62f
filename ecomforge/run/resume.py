"""``--resume``: the run folder's own recipe, checked against the one given on the command line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError
from ..plugins import Registry
from ..recipe.load import ResolvedRecipe, resolve_recipe
from .store import RECIPE, RunStore, check_run_folder, product_fingerprints


def stored_recipe_for(resolved: ResolvedRecipe, resume: Path, registry: Registry | None) -> ResolvedRecipe:
    """The run folder's stored recipe, re-resolved; refused when it differs from ``resolved`` in more than
    where and how jobs run, when an installed plugin is not the version the run was made with, or when the
    catalogue's products changed since. The selection of products (``--products``/``--limit``) is the caller's.

    Read only: the runner opens (and locks) the folder itself."""
    if not (Path(resume) / RECIPE).is_file():
        raise InputError(f"{resume}: not a run folder (no {RECIPE})")
    check_run_folder(Path(resume))  # its recipe, manifest and products.json are read here: none through a symlink
    store = RunStore(resume)
    stored = store.stored_recipe()
    if not isinstance(stored, dict):
        raise InputError(f"{resume / RECIPE}: not a recipe (a YAML mapping)")
    pins = stored.pop("plugins", None)
    again = resolve_recipe(stored, path=resolved.path, registry=registry)
    _same_plugins(resume, pins, again.versions)
    mine, theirs = resolved.to_dict(), again.to_dict()
    for d in (mine, theirs):  # where and how jobs run does not change the result
        for key in ("output", "plugins", "execute"):
            d.pop(key, None)
    _same_files(mine.get("inputs", {}), theirs.get("inputs", {}))
    if mine != theirs:
        diff = _differences(theirs, mine)
        shown = "; ".join(f"{k}: run folder {_short(a)}, given {_short(b)}" for k, a, b in diff[:3])
        more = f"; and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise UsageError(f"{resume}: this run folder was made by a different recipe (differs in {shown}{more})")
    _same_products(resume, store.stored_products(), product_fingerprints(again), set(resolved.products),
                   finished_products(resume))
    again.recipe = again.recipe.model_copy(update={"execute": resolved.recipe.execute})
    again.configs["execute"] = resolved.configs["execute"]
    again.products = {k: v for k, v in again.products.items() if k in resolved.products}  # --products/--limit
    return again


_MISSING = object()


def _differences(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) of every leaf where two recipes differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(key, _MISSING), b.get(key, _MISSING), f"{prefix}{key}.")
        return out
    return [] if a == b else [(prefix.rstrip(".") or "(recipe)", a, b)]


def _short(value: Any) -> str:
    if value is _MISSING:
        return "(not set)"
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _same_plugins(resume: Path, pins: Any, installed: dict[str, str]) -> None:
    """The plugins installed now are the versions the run was made with: another version makes other images."""
    if not isinstance(pins, dict):
        return  # a folder made before versions were pinned
    changed = [f"{key} was {was}, installed is {installed[key]}" for key, was in sorted(pins.items())
               if key in installed and installed[key] != was]
    if changed:
        raise UsageError(f"{resume}: the run was made with other plugin versions ({'; '.join(changed)})",
                         hint="install the versions the run was made with, or start a new run")


def _same_products(resume: Path, stored: dict[str, str] | None, now: dict[str, str], selected: set[str],
                   finished: set[str]) -> None:
    """The products the run finished have the inputs they had then: else the folder mixes two catalogues.

    A product that failed or never ran may change (take a bad photo out of its row, then --resume: the
    documented fix), and a product added to the catalogue is new work; neither mixes with records made
    from other inputs.
    """
    if stored is None:
        return  # a folder made before products were noted
    changed = [p for p in now if p in selected and p in finished and p in stored and stored[p] != now[p]]
    if changed:
        raise UsageError(f"{resume}: the catalogue is not the one this run was made from; products it finished "
                         f"changed since (photos, prompt or config): {_names(changed)}",
                         hint="undo the edit, or start a new run for the new catalogue")


def finished_products(run_dir: Path) -> set[str]:
    """The products whose every record is in the run folder's manifest (what --resume skips)."""
    from .store import _manifest_lines

    counts: dict[str, int] = {}
    expected: dict[str, int] = {}
    for _, rec in _manifest_lines(run_dir):
        if "product" in rec and rec.get("record") is None:
            counts[rec["product"]] = counts.get(rec["product"], 0) + 1
            expected[rec["product"]] = rec.get("product_candidates", -1)
    return {p for p, n in counts.items() if n == expected[p]}


def _names(names: list[str]) -> str:
    return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")


def _same_files(mine: dict[str, Any], stored: dict[str, Any]) -> None:
    """Let a reference relative to another working folder match the absolute path the run folder stored.

    The stored recipe holds absolute paths so that ``--resume`` works from anywhere; from another folder the
    same relative spec no longer resolves, and it is the same recipe when it is the tail of the stored path.
    """
    def align(a: list[Any], b: list[Any]) -> list[Any]:
        if len(a) != len(b):
            return a
        return [y if isinstance(x, str) and isinstance(y, str) and not Path(x).is_absolute()
                and y.endswith("/" + x.lstrip("./")) else x for x, y in zip(a, b)]
    if isinstance(mine.get("references"), list) and isinstance(stored.get("references"), list):
        mine["references"] = align(mine["references"], stored["references"])
    if isinstance(mine.get("products"), dict) and isinstance(stored.get("products"), dict):
        for name, refs in mine["products"].items():
            if isinstance(stored["products"].get(name), list):
                mine["products"][name] = align(refs, stored["products"][name])


