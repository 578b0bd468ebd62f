"""Load a recipe: YAML, ``--set`` overrides, schema and plugin-config validation, before any work."""
from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import EcomforgeError, InputError, PluginConflict, PluginContractError, RecipeError, UsageError
from ..plugins import Registry, get_registry
from ..stages import Filter, StageConfig, config_error, reads_problem
from .products import ProductPlan, anchor_reference, has_template, plan_products, plugin_fills
from .safeyaml import DuplicateKeyError, YAMLBudgetError, core_scalar, safe_load
from .schema import Recipe

_MAX_GRID = 100_000


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a recipe file into a dict; errors name the file (and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"{path}: recipe file not found") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a folder, not a recipe file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read recipe ({exc})") from exc
    try:
        data = safe_load(text)  # aliases, nesting and expansion budgeted before anything is built; no repeated key
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InputError(f"{path}:{where} {problem}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: a recipe must be a YAML mapping, got {type(data).__name__}")
    return data


def parse_overrides(items: list[str] | tuple[str, ...]) -> list[tuple[list[str], Any]]:
    """Parse ``key.path=value`` strings: ``[..]``/``{..}`` are YAML flow lists/mappings, a quoted value is that
    string, and any other value is a YAML 1.2 core-schema scalar (a decimal number, ``true``/``false``,
    ``null``/``~``) or else the text as typed: ``1:1``, ``#000000``, ``no`` and ``012`` stay text."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise RecipeError("--set", f"expected key.path=value, got {item!r}")
        text = raw.strip()
        value: Any = text
        if text.startswith(("[", "{")) or (len(text) > 1 and text[0] in "'\"" and text[-1] == text[0]):
            try:
                value = safe_load(text)
            except (YAMLBudgetError, DuplicateKeyError) as exc:
                raise RecipeError("--set", f"{key}: {exc.problem}") from exc
            except yaml.YAMLError:
                value = text  # "[new] tee" is text, not a broken list
            # Only a whole [..] / {..} makes a list or mapping, only a whole quoted value a string.
            if not isinstance(value, (dict, list) if text[0] in "[{" else str):
                value = text
        elif text:
            value = core_scalar(text)
        out.append((key.split("."), value))
    return out


def apply_overrides(data: dict[str, Any], overrides: list[tuple[list[str], Any]]) -> dict[str, Any]:
    """Set each override in a deep copy of the recipe dict; list items are addressed by index."""
    data = copy.deepcopy(data)
    for parts, value in overrides:
        node: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise RecipeError(where, f"no list item {part!r} (the list has {len(node)})")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise RecipeError(where, f"cannot set a key inside a {type(node).__name__}")
    return data


@dataclass
class ResolvedRecipe:
    """A validated recipe plus every plugin's validated config and the sweep grid."""

    recipe: Recipe
    path: Path | None
    base_dir: Path
    configs: dict[str, StageConfig] = field(default_factory=dict)  # step path -> config
    grid: list[dict[str, Any]] = field(default_factory=list)  # sweep points (overrides of the base config)
    versions: dict[str, str] = field(default_factory=dict)  # "kind:plugin" -> distribution==version
    products: dict[str, ProductPlan] = field(default_factory=dict)  # product -> its references, prompts, configs
    templated: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> raw config holding {variables}

    def select(self, names: list[str] | None = None, limit: int | None = None) -> None:
        """Keep only the named products (in catalogue order), then the first ``limit`` of them."""
        if names:
            unknown = [n for n in names if n not in self.products]
            if unknown:
                import difflib

                close = difflib.get_close_matches(unknown[0], list(self.products), n=1)
                raise UsageError(f"--products: no product {unknown[0]!r} in this recipe",
                                 hint=f"did you mean '{close[0]}'?" if close else f"{len(self.products)} products")
            wanted = set(names)
            self.products = {k: v for k, v in self.products.items() if k in wanted}
        if limit is not None:
            self.products = dict(list(self.products.items())[:limit])

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe: every default filled in, plugin versions pinned."""
        data = self.recipe.model_dump(mode="json")
        for step, cfg in self.configs.items():
            target: Any = data
            for part in step.split("."):
                target = target[int(part)] if isinstance(target, list) else target[part]
            target["config"] = cfg.model_dump(mode="json")
            raw = self.templated.get(step)
            if raw:  # store the templates themselves, not the first product's values
                target["config"].update({k: v for k, v in raw.items() if has_template(v)})
        data["plugins"] = dict(sorted(self.versions.items()))
        return data


def _sweep_grid(sweep: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(sweep)
    size = 1
    for values in sweep.values():
        size *= len(values)
    if size > _MAX_GRID:
        raise RecipeError("generate.sweep", f"the grid has {size} points (limit {_MAX_GRID})")
    return [dict(zip(keys, combo)) for combo in itertools.product(*(sweep[k] for k in keys))]


# Steps a recipe may leave out; the plugin they get is the one installed plugin that declares itself
# the default for its kind (``Stage.default``), so the core names no plugin.
DEFAULT_STEPS = {"acquire": "acquirer", "filter": "filter", "execute": "executor"}


def _with_default_steps(data: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """``data`` with every omitted default step filled in from the registry's declared defaults."""
    if not isinstance(data, dict) or all(key in data for key in DEFAULT_STEPS):
        return data
    filled = dict(data)
    for key, kind in DEFAULT_STEPS.items():
        if key not in filled:
            try:
                filled[key] = {"plugin": registry.default(kind)}
            except EcomforgeError as exc:
                raise RecipeError(key, exc.message, hint=exc.hint) from exc
    return filled


def resolve_recipe(data: dict[str, Any], *, path: Path | None = None, registry: Registry | None = None) -> ResolvedRecipe:
    """Validate the schema and every plugin config (each sweep point too); no weights load."""
    registry = registry or get_registry()
    data = _with_default_steps(data, registry)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, "", Recipe) from exc
    base_dir = (path.parent if path else Path.cwd()).resolve()
    recipe = _anchor_inputs(recipe, base_dir)
    resolved = ResolvedRecipe(recipe=recipe, path=path, base_dir=base_dir)
    steps: list[tuple[str, str, Any]] = [
        ("acquire", "acquirer", recipe.acquire), ("mask", "masker", recipe.mask),
        ("generate", "generator", recipe.generate), *((k, "filter", f) for k, f in recipe.filter_steps()),
        ("execute", "executor", recipe.execute),
    ] + [(f"score.{i}", "scorer", s) for i, s in enumerate(recipe.score)]
    for where, kind, step in steps:
        try:
            info = registry.get(kind, step.plugin)
        except PluginConflict as exc:
            raise RecipeError(f"{where}.plugin", exc.message, hint=exc.hint) from exc
        except Exception as exc:
            hint = getattr(exc, "hint", None)
            raise RecipeError(f"{where}.plugin", f"unknown {kind} plugin {step.plugin!r}", hint=hint) from exc
        if where != "execute" and has_template(step.config, plugin_fills(info.cls)):
            resolved.templated[where] = step.config  # its values are known per product: validated there
        else:
            resolved.configs[where] = info.cls.parse_config(step.config, path=f"{where}.config")
        resolved.versions[f"{kind}:{step.plugin}"] = f"{info.distribution}=={info.version}"
    gen_cls = registry.get("generator", recipe.generate.plugin).cls
    resolved.grid = _sweep_grid(recipe.generate.sweep)
    fields = gen_cls.Config.model_fields
    for key in recipe.generate.sweep:
        if key not in fields:
            import difflib

            close = difflib.get_close_matches(key, list(fields), n=1)
            raise RecipeError(f"generate.sweep.{key}", "not a setting of generator "
                              f"'{recipe.generate.plugin}'", hint=f"did you mean '{close[0]}'?" if close else None)
    base = recipe.generate.config
    seen: dict[str, dict[str, Any]] = {}
    for point in resolved.grid if "generate" not in resolved.templated else []:
        try:
            made = gen_cls.Config.model_validate({**base, **point})
        except ValidationError as exc:
            err = config_error(exc, "generate.sweep", gen_cls.Config)
            raise RecipeError("", f"{err.message} (sweep point {point})") from exc
        same = seen.setdefault(json.dumps(made.model_dump(mode="json"), sort_keys=True), point)
        if same is not point:  # [0.6, 0.6], [1, 1.0]: one image twice under one id
            raise RecipeError("generate.sweep", f"sweep points {same} and {point} are the same setting; "
                                                "list each value once")
    _plan(resolved, registry)
    _check_scores_read(resolved, registry)
    return resolved


def _check_scores_read(resolved: ResolvedRecipe, registry: Registry) -> None:
    """Every score a filter's config reads is one the recipe's scorers record (its ``name``, else its plugin).

    A filter declares them with ``Filter.reads_scores(config) -> {config key: score key}``; a misspelt
    key would otherwise pass validation and then drop every candidate as missing that score.
    """
    import difflib

    recipe = resolved.recipe
    keys = [s.key for s in recipe.score]
    for step, spec in recipe.filter_steps():
        cls = registry.get("filter", spec.plugin).cls
        if not issubclass(cls, Filter):
            continue
        reads = cls.reads_scores
        configs = [("", resolved.configs[step])] + [(plan.where, plan.configs[step])
                                                     for plan in resolved.products.values() if step in plan.configs]
        for where, config in configs:
            read = reads(config)
            if problem := reads_problem(read):  # a plugin's mistake, named as its own (exit 2, before any work)
                raise PluginContractError(spec.plugin, problem, kind="filter")
            for loc, key in read.items():
                if key in keys:
                    continue
                close = difflib.get_close_matches(key, keys, n=1)
                hint = (f"did you mean '{close[0]}'? " if close else "") + (
                    f"the recipe's scorers: {', '.join(keys)}" if keys else "the recipe has no scorers")
                path = f"{step}.config.{loc}"
                raise RecipeError(f"{where}: {path}" if where else path,
                                  f"no scorer in the recipe is named {key!r}", hint=hint)


def _anchor_inputs(recipe: Recipe, base_dir: Path) -> Recipe:
    """Relative references and the catalogue made absolute, so a stored recipe reads the same files from anywhere."""
    inputs = recipe.inputs
    update: dict[str, Any] = {}
    if inputs.references is not None:
        update["references"] = [anchor_reference(s, base_dir) for s in inputs.references]
    if inputs.products is not None:
        update["products"] = {k: [anchor_reference(s, base_dir) for s in v] for k, v in inputs.products.items()}
    if inputs.catalog is not None:
        update["catalog"] = str(Path(anchor_reference(inputs.catalog, base_dir)).resolve())
    return recipe.model_copy(update={"inputs": inputs.model_copy(update=update)})


def _plan(resolved: ResolvedRecipe, registry: Registry) -> None:
    """Each product's prompts and configs (catalogue columns, templates); its own sweep points checked too."""
    r = resolved.recipe
    kinds = {"acquire": "acquirer", "mask": "masker", "generate": "generator"}
    classes = {step: registry.get(kind, getattr(r, step).plugin).cls for step, kind in kinds.items()}
    classes.update({key: registry.get("filter", f.plugin).cls for key, f in r.filter_steps()})
    classes.update({f"score.{i}": registry.get("scorer", s.plugin).cls for i, s in enumerate(r.score)})
    resolved.products = plan_products(r, resolved.base_dir, classes, set(resolved.templated))
    first = next(iter(resolved.products.values()))
    for step in resolved.templated:  # the run's own stage for the step: the first product's (checks, model)
        resolved.configs[step] = first.configs[step]
    gen_cfg = classes["generate"].Config
    for plan in resolved.products.values():
        for key, origin in plan.origins.items():  # each sweep point would replace the column's value, silently
            name = key.split(".")[2] if key.startswith("generate.config.") else None
            if name in r.generate.sweep:
                raise RecipeError(origin, f"column {key!r} sets generate.config.{name}, which the recipe sweeps; "
                                          f"set generate.sweep.{name} in the recipe, or remove {name} from its sweep")
        if "generate" not in plan.configs:
            continue
        for point in resolved.grid:
            try:
                gen_cfg.model_validate({**plan.raw["generate"], **point})
            except ValidationError as exc:
                err = config_error(exc, "generate.sweep", gen_cfg)
                raise RecipeError(plan.where, f"{err.message} (sweep point {point})") from exc


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = (), *, registry: Registry | None = None) -> ResolvedRecipe:
    """Read, override and validate a recipe file."""
    path = Path(path)
    data = read_yaml(path)
    try:  # an override that does not fit this recipe names it too (compare loads two)
        data = apply_overrides(data, parse_overrides(list(overrides)))
        return resolve_recipe(data, path=path, registry=registry)
    except RecipeError as exc:
        raise RecipeError("", f"{path}: {exc.message}", hint=exc.hint) from exc
