"""``--resume``: the run folder's own recipe, checked against the one given on the command line."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..plugins import Registry
from ..recipe.load import ResolvedRecipe, resolve_recipe
from .store import RunStore


def stored_recipe_for(resolved: ResolvedRecipe, resume: Path, registry: Registry | None) -> ResolvedRecipe:
    """The run folder's stored recipe, re-resolved; refused when it differs from ``resolved`` in more than
    where and how jobs run. The selection of products (``--products``/``--limit``) is the caller's."""
    stored = RunStore.open(resume).stored_recipe()
    stored.pop("plugins", None)
    again = resolve_recipe(stored, path=resolved.path, registry=registry)
    mine, theirs = resolved.to_dict(), again.to_dict()
    for d in (mine, theirs):  # where and how jobs run does not change the result
        for key in ("output", "plugins", "execute"):
            d.pop(key, None)
    _same_files(mine.get("inputs", {}), theirs.get("inputs", {}))
    if mine != theirs:
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise UsageError(f"{resume}: this run folder was made by a different recipe (differs in: {', '.join(diff)})")
    again.recipe = again.recipe.model_copy(update={"execute": resolved.recipe.execute})
    again.configs["execute"] = resolved.configs["execute"]
    again.products = {k: v for k, v in again.products.items() if k in resolved.products}  # --products/--limit
    return again


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


