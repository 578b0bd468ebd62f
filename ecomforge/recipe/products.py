"""Per-product settings: template variables filled into prompts and string configs, catalogue overrides applied.

A template is ``{name}`` (``{{`` and ``}}`` for literal braces, other braces stay); it is filled in one pass, so a value
that itself contains braces is text, never a template. Settings that a plugin fills per reference
itself (image path patterns with ``{name}``/``{stem}``/``{product}``) are left to the plugin.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RecipeError, UsageError
from ..pathspec import PathField, path_fields, work_fields
from ..run import cancel
from .catalog import CatalogProduct, Problems, anchor, read_catalog

# Only ``{name}`` is a placeholder; other braces (``{}``, ``{a b}``, JSON-ish text) stay as written.
_TEMPLATE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclass
class ProductPlan:
    """One product as the runner sees it: references, prompts, and each step's config for it."""

    name: str
    references: list[str]
    prompt: str
    negative_prompt: str
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> raw config (templated, overridden)
    configs: dict[str, Any] = field(default_factory=dict)  # step -> validated config, only where it differs
    where: str = ""  # the catalogue row, or the recipe
    origins: dict[str, str] = field(default_factory=dict)  # catalogue override key -> the row that set it
    own: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> the recipe's raw config for it (no columns)
    reference_count: int | None = None  # the files and URLs its references name, where the acquirer can count them
    unmatched: list[str] = field(default_factory=list)  # its references that name no file (counted 0): it will fail


def fill(template: str, variables: dict[str, str], where: str) -> str:
    """Fill ``{variable}`` placeholders; an unknown one is an error naming ``where`` and the known names."""
    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok in ("{{", "}}"):
            return tok[0]
        name = m.group(1).strip()
        if name not in variables:
            known = ", ".join(sorted(variables)) or "none"
            raise RecipeError(where, f"unknown template variable {{{name}}} (known: {known}; "
                                     "write {{ and }} for literal braces)")
        return variables[name]
    return _TEMPLATE.sub(sub, template)


def has_template(value: Any, skip: AbstractSet[str] = frozenset(), loc: str = "") -> bool:
    """True when a raw config (or any string in it) holds a ``{variable}`` (settings in ``skip`` aside)."""
    if loc in skip:
        return False
    if isinstance(value, str):
        return any(m.group(1) is not None for m in _TEMPLATE.finditer(value))
    if isinstance(value, dict):
        return any(has_template(v, skip, f"{loc}.{k}" if loc else str(k)) for k, v in value.items())
    if isinstance(value, list):
        return any(has_template(v, skip, f"{loc}[]") for v in value)
    return False


def plugin_fills(cls: Any) -> set[str]:
    """Settings of a stage that hold placeholders the plugin fills itself (image path patterns)."""
    return {loc for loc, f in path_fields(cls.Config) if f.pattern}


def anchor_reference(spec: str, base_dir: Path) -> str:
    """A recipe's reference made absolute the way the acquirer reads it: current folder first, then the recipe's."""
    import glob
    import os

    expanded = os.path.expanduser(spec)
    if _URL.match(spec) or os.path.isabs(expanded):
        return spec
    for root in (Path.cwd(), Path(base_dir)):
        here = root / expanded
        if here.exists() or (re.search(r"[*?\[]", expanded) and glob.glob(str(here), recursive=True)):
            return str(here)
    return spec  # names nothing on disk: the acquirer reads it as it is (and says what is missing)


def _anchored_fields(cls: Any) -> dict[str, PathField]:
    """A stage's settings that name a file or folder it reads (``loc`` -> kind): a catalogue's cell for one is
    relative to the catalogue's folder. Models and output folders are not: a catalogue does not choose them."""
    return {loc.removesuffix("[]"): f for loc, f in path_fields(cls.Config) if f.kind in ("image", "file")}


def _anchor_path(value: Any, kind: PathField, base_dir: Path | None) -> Any:
    """A relative path (or each one of a list) made the catalogue folder's; colours, URLs and absolute paths stay."""
    if isinstance(value, list):
        return [_anchor_path(v, kind, base_dir) for v in value]
    if (not isinstance(value, str) or not value.strip() or base_dir is None or kind.is_literal(value)
            or _URL.match(value.strip()) or value.strip().startswith("~")):
        return value
    return str(Path(anchor(value, base_dir)))


def _at(where: str, key: str) -> str:
    return f"{where}: {key}" if where else key


def _steps(recipe: Any) -> dict[str, Any]:
    steps = {"acquire": recipe.acquire, "mask": recipe.mask, "generate": recipe.generate, **dict(recipe.filter_steps())}
    steps.update({f"score.{i}": s for i, s in enumerate(recipe.score)})
    return steps


def _fill_config(value: Any, variables: dict[str, str], where: str, skip: set[str], loc: str = "") -> Any:
    """Fill templates in every string of a raw config, except the settings the plugin fills itself."""
    if loc in skip:
        return value
    if isinstance(value, str):
        return fill(value, variables, where)
    if isinstance(value, dict):
        return {k: _fill_config(v, variables, where, skip, f"{loc}.{k}" if loc else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_config(v, variables, where, skip, f"{loc}[]") for v in value]
    return value


def _set(raw: dict[str, Any], parts: list[str], value: Any) -> None:
    node = raw
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value


def plan_products(recipe: Any, base_dir: Path, classes: dict[str, Any],
                  templated: AbstractSet[str] = frozenset(), problems: Problems | None = None) -> dict[str, ProductPlan]:
    """Every product's plan; templates and overrides are checked here, before any work.

    Steps in ``templated`` hold ``{variables}``: their config is validated per product only. Each product is
    checked on its own: its error is noted in ``problems`` (raised by the caller, with its own checks' errors)
    and it is left out; without ``problems`` they are raised here, up to ``MAX_REPORTED`` lines.
    """
    own = problems is None
    found = Problems() if problems is None else problems
    if recipe.inputs.catalog is not None:
        source = read_catalog(Path(recipe.inputs.catalog))
    else:
        source = [CatalogProduct(name, "", [anchor_reference(s, base_dir) for s in refs], {"product": name})
                  for name, refs in recipe.product_specs().items()]
    steps = _steps(recipe)
    skips = {step: plugin_fills(classes[step]) for step in steps}
    plans: dict[str, ProductPlan] = {}
    for prod in source:
        cancel.check()  # a large catalogue takes seconds to plan (the web worker plans inside its job's cancel scope)
        with found.each():
            plans[prod.name] = _plan(recipe, prod, steps, skips, classes, templated)
    if own:
        found.check()
    return plans


def _plan(recipe: Any, prod: CatalogProduct, steps: dict[str, Any], skips: dict[str, set[str]],
          classes: dict[str, Any], templated: AbstractSet[str]) -> ProductPlan:
    where, vars_ = prod.where, prod.variables
    prompt = prod.overrides.get("prompt")
    negative = prod.overrides.get("negative_prompt")
    plan = ProductPlan(
        prod.name, prod.references,
        prompt=str(prompt) if prompt is not None else fill(recipe.inputs.prompt, vars_, _at(where, "inputs.prompt")),
        negative_prompt=str(negative) if negative is not None else
        fill(recipe.inputs.negative_prompt, vars_, _at(where, "inputs.negative_prompt")), where=where,
        origins=dict(prod._origin))
    for step, spec in steps.items():
        raw = _fill_config(copy.deepcopy(spec.config), vars_, _at(where, f"{step}.config"), skips[step])
        plan.own[step] = copy.deepcopy(raw)
        paths = _anchored_fields(classes[step]) if prod.base_dir is not None else {}
        for key, value in prod.overrides.items():
            if key.startswith(f"{step}.config."):
                loc = key[len(step) + 8:]
                if loc in paths:  # a file a cell names is the catalogue folder's, as its references are
                    value = _anchor_path(value, paths[loc], prod.base_dir)
                _set(raw, loc.split("."), value)
        plan.raw[step] = raw
        if raw != spec.config or step in templated:
            try:
                plan.configs[step] = classes[step].parse_config(raw, path=f"{step}.config")
            except UsageError as exc:
                raise RecipeError(where, exc.message, hint=exc.hint) from exc
            if raw != plan.own[step]:
                _check_work(plan, step, classes[step])
    for key in prod.overrides:
        if key not in ("prompt", "negative_prompt") and key.split(".config.")[0] not in steps:
            raise RecipeError(where, f"column {key!r} names a step this recipe does not have")
    return plan


def _value_at(config: Any, loc: str) -> Any:
    for part in loc.split("."):
        config = getattr(config, part, None)
    return config


def _no_more(value: Any, bound: Any) -> bool:
    """True when ``value`` asks for no more work than ``bound``: a number no larger, a list no larger item by item."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if number(value) and number(bound):
        return bool(value <= bound)
    if isinstance(value, (list, tuple)) and isinstance(bound, (list, tuple)) and len(value) == len(bound):
        return all(_no_more(v, b) for v, b in zip(value, bound))
    return bool(value == bound)


def own_config(plan: ProductPlan, step: str, cls: Any) -> Any:
    """The step's config for this product as the recipe alone gives it (templates filled, no catalogue column)."""
    try:
        return cls.parse_config(plan.own[step], path=f"{step}.config")
    except UsageError as exc:
        raise RecipeError(plan.where, exc.message, hint=exc.hint) from exc


def _check_work(plan: ProductPlan, step: str, cls: Any) -> None:
    """A catalogue column may lower a setting declared as an amount of work (``json_schema_extra={"work": True}``),
    never raise it above the recipe's: how much work a run does is the recipe's and the operator's choice."""
    prefix = f"{step}.config."
    columns = [k for k in plan.origins if k.startswith(prefix)]
    locs = list(work_fields(cls.Config))
    if not columns or not locs:
        return
    own, mine = own_config(plan, step, cls), plan.configs[step]
    for loc in locs:
        column = next((k for k in columns if k[len(prefix):] == loc or k[len(prefix):].startswith(f"{loc}.")), None)
        if column is None:
            continue
        value, bound = _value_at(mine, loc), _value_at(own, loc)
        if not _no_more(value, bound):
            raise RecipeError(plan.origins[column], f"column {column!r} is {value!r}, more work than the recipe's "
                                                    f"{bound!r}: a catalogue may lower {prefix}{loc}, never raise it",
                              hint="raise it in the recipe, or remove the column")
