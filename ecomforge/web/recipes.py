"""Recipe presets (a folder of YAML files) and the recipe a job actually runs."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError
from ..recipe.load import apply_overrides, read_yaml

PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# Keys a request may not set: the server decides where references come from and where runs go.
PROTECTED = ("inputs", "output", "execute", "acquire")
# ...except the prompts: every other input (references, products, a catalogue file) is the server's to set.
OPEN_INPUTS = ("prompt", "negative_prompt")


class PresetNotFound(UsageError):
    """No preset of that name (HTTP 404)."""


def preset_path(recipes_dir: Path, name: str) -> Path:
    """The preset file for ``name``; the name is checked against a strict pattern and must stay in the folder."""
    if not PRESET_NAME.fullmatch(name or ""):
        raise InputError(f"recipe: {name!r} is not a preset name (letters, digits, '_' and '-')")
    root = Path(recipes_dir).resolve()
    for suffix in (".yaml", ".yml"):
        path = (root / f"{name}{suffix}").resolve()
        if path.parent == root and path.is_file():
            return path
    raise PresetNotFound(f"recipe: no preset named {name!r} in {root.name}/ (GET /api/recipes lists them)")


def list_presets(recipes_dir: Path) -> list[dict[str, Any]]:
    """Every readable preset with its plugins and key parameters (broken files are listed with their error)."""
    root = Path(recipes_dir)
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
        if not PRESET_NAME.fullmatch(path.stem):
            continue
        try:
            data = read_yaml(path)
        except InputError as exc:
            out.append({"name": path.stem, "error": exc.one_line()})
            continue
        gen = data.get("generate") or {}
        out.append({
            "name": path.stem,
            "title": data.get("name", path.stem),
            "description": (data.get("description") or _first_comment(path)).strip(),
            "mask": (data.get("mask") or {}).get("plugin"),
            "mask_config": (data.get("mask") or {}).get("config") or {},
            "generate": gen.get("plugin"),
            "generate_config": gen.get("config") or {},
            "sweep": gen.get("sweep") or {},
            "seeds": gen.get("seeds", [0]),
            "score": [s.get("plugin") for s in data.get("score") or [] if isinstance(s, dict)],
            "filter": data.get("filter"),  # one step, a list, or None for the installed default
            "prompt": (data.get("inputs") or {}).get("prompt", ""),
            "negative_prompt": (data.get("inputs") or {}).get("negative_prompt", ""),
        })
    return out


def _first_comment(path: Path) -> str:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines)


def job_recipe(base: dict[str, Any], *, references: list[Path], prompt: str | None, negative_prompt: str | None,
               overrides: dict[str, Any], mask_dir: Path | None = None) -> dict[str, Any]:
    """The recipe a job runs: the preset, the request's overrides, then its uploaded references and prompts."""
    for key in overrides:
        if key in (f"inputs.{k}" for k in OPEN_INPUTS):
            continue
        if any(key == p or key.startswith(p + ".") for p in PROTECTED):
            raise InputError(f"overrides: {key!r} cannot be set through the API (the server decides it)")
    data = apply_overrides(base, [(k.split("."), v) for k, v in overrides.items()])
    raw_inputs = data.get("inputs")
    given: dict[str, Any] = raw_inputs if isinstance(raw_inputs, dict) else {}
    inputs = {k: v for k, v in given.items() if k in OPEN_INPUTS}  # no products, catalogue or other files
    inputs["references"] = [str(p) for p in references]
    if prompt is not None:
        inputs["prompt"] = prompt
    if negative_prompt is not None:
        inputs["negative_prompt"] = negative_prompt
    data["inputs"] = inputs
    data.pop("output", None)
    data.pop("execute", None)
    if mask_dir is not None:  # masks were uploaded: one per reference, named after it (the folder taken literally)
        from ..imaging.maskfile import escape_pattern

        data["mask"] = uploaded_mask_step(dict(data.get("mask") or {}), f"{escape_pattern(str(mask_dir))}/{{stem}}.png")
    return data


def uploaded_mask_step(mask: dict[str, Any], pattern: str | Path) -> dict[str, Any]:
    """The mask step for uploaded masks, from what maskers declare (``Masker.accepts["mask"]``), no names.

    The recipe's masker keeps its settings when it takes a mask file (a rough mask to refine); otherwise
    the first masker that needs nothing but the file is used, with the recipe's refine settings.
    """
    from ..imaging.refine import RefineConfig
    from ..plugins import get_registry

    maskers = get_registry().plugins.get("masker", {})
    takes = {n: dict(getattr(p.cls, "accepts", {}) or {}) for n, p in maskers.items()}
    takes = {n: a for n, a in takes.items() if "mask" in a}
    config = dict(mask.get("config") or {})
    name = mask.get("plugin")
    if name not in takes:
        name = min(takes, key=lambda n: (set(takes[n]) != {"mask"}, n), default=None)
        if name is None:
            raise InputError("masks: no installed masker takes an uploaded mask file")
        config = {k: v for k, v in config.items() if k in RefineConfig.model_fields}
    return {"plugin": name, "config": {**config, takes[name]["mask"]: str(pattern)}}
