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
from ..stages import Filter, StageConfig, candidate_pixels, config_error, reads_problem
from .catalog import Problems, RowErrors
from .products import ProductPlan, anchor_reference, has_template, own_config, plan_products, plugin_fills
from .safeyaml import DuplicateKeyError, YAMLBudgetError, core_scalar, safe_load
from .schema import Recipe

_MAX_GRID = 100_000
# Candidates one product may make (sweep points x seeds): each factor is capped, and so is their product.
MAX_CANDIDATES = 100_000
# Reference sizes (width, height) a catalogue row's generator settings are weighed at against the recipe's own:
# the references are not read yet when the catalogue is checked, so a square photo and a long one either way up.
_WEIGH_AT = ((1024, 1024), (4096, 1024), (1024, 4096))


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a recipe file into a dict; errors name the file (and line)."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        raise InputError(f"{path}: not a regular file (a device, a pipe or a socket), not a recipe file")
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
    if data is None:
        raise InputError(f"{path}: the recipe file is empty", hint="a recipe is a YAML mapping: name, inputs, mask, "
                                                                  "generate, ...; see docs/recipes.md")
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
            try:
                value = core_scalar(text)
            except ValueError as exc:  # an int longer than Python converts
                raise RecipeError("--set", f"{key}: {exc}") from exc
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
    warnings: list[str] = field(default_factory=list)  # e.g. a pinned plugin version that differs from the installed

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

    def summary(self) -> str:
        """'3 product(s), 7 reference(s), 42 candidate(s)': what validate reports (references counted where the
        acquirer can say without reading them)."""
        gen = self.recipe.generate
        seeds = len(gen.seeds) if isinstance(gen.seeds, list) else gen.seeds.count
        counts = [p.reference_count for p in self.products.values()]
        known = [c for c in counts if c is not None]
        refs = sum(known)
        per = sum((c if gen.sources == "all" else min(c, 1)) for c in known)
        text = f"{len(self.products)} product(s)"
        if len(known) == len(counts):
            text += f", {refs} reference(s), {per * len(self.grid) * seeds} candidate(s)"
        return text + f"; {len(self.grid)} sweep point(s) x {seeds} seed(s) per reference"

    def photo_problems(self, limit: int = 20) -> tuple[list[str], int]:
        """One line for each product (up to ``limit``) whose references name no file, folder match or URL, and how
        many such products there are: known from counting them, no photo read. Such a product fails when it runs
        (the run records it and goes on), so these are warnings, not errors."""
        bad = [p for p in self.products.values() if p.unmatched]
        lines = []
        for plan in bad[:limit]:
            at = f" ({plan.where})" if plan.where else ""
            lines.append(f"product {plan.name!r}{at}: " + "; ".join(_names_nothing(s) for s in plan.unmatched[:5])
                         + (f"; and {len(plan.unmatched) - 5} more" if len(plan.unmatched) > 5 else ""))
        return lines, len(bad)

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


def _names_nothing(spec: str) -> str:
    """What a reference that counted 0 is: a pattern, an empty folder or a missing file (one stat, no walk)."""
    import os
    import re

    if re.match(r"^[a-z][a-z0-9+.-]*://", spec, re.IGNORECASE):
        return f"{spec} names no photo"
    if os.path.isdir(spec):
        return f"the folder {spec} holds no photos"
    if re.search(r"[*?\[]", spec):
        return f"the pattern {spec} matches no photos"
    return f"no such file {spec}"


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
    def bare(step: Any) -> bool:  # left out, or given settings but no plugin (--set acquire.config.timeout=5)
        return step is None or (isinstance(step, dict) and "plugin" not in step)

    if not isinstance(data, dict) or not any(bare(data.get(key)) for key in DEFAULT_STEPS):
        return data
    filled = dict(data)
    for key, kind in DEFAULT_STEPS.items():
        if bare(filled.get(key)):
            try:
                filled[key] = {**(filled.get(key) or {}), "plugin": registry.default(kind)}
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
    _check_pins(resolved)
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
    _check_candidates(resolved)
    problems = Problems()  # each product's errors, from planning and counting together: up to MAX_REPORTED lines
    _plan(resolved, registry, problems)
    _count_references(resolved, registry, problems)
    problems.check()
    _check_scores_read(resolved, registry)
    return resolved


def _check_pins(resolved: ResolvedRecipe) -> None:
    """A stored recipe's ``plugins:`` pins against what is installed: each difference is one warning line (the run
    goes on; resuming a run refuses it)."""
    import logging

    for key, pinned in sorted(resolved.recipe.plugins.items()):
        installed = resolved.versions.get(key)
        if installed is not None and installed != pinned:
            kind, _, name = key.partition(":")
            line = f"{kind} '{name}': the recipe was made with {pinned}, installed is {installed}"
            resolved.warnings.append(line)
            logging.getLogger("ecomforge").warning("warning: %s", line)


def _check_candidates(resolved: ResolvedRecipe) -> None:
    gen = resolved.recipe.generate
    seeds = len(gen.seeds) if isinstance(gen.seeds, list) else gen.seeds.count
    total = len(resolved.grid) * seeds
    if total > MAX_CANDIDATES:
        raise RecipeError("generate", f"generate.sweep ({len(resolved.grid)} point(s)) x generate.seeds ({seeds}) "
                                      f"is {total} candidates per product, over the limit of {MAX_CANDIDATES}",
                          hint="sweep fewer values or use fewer seeds")


def _count_references(resolved: ResolvedRecipe, registry: Registry, problems: Problems) -> None:
    """Each product's references counted (no file read), against ``inputs.max_references``; the references that
    count 0 are kept in ``plan.unmatched`` (the product will fail when it runs: validate warns of it)."""
    from ..run import cancel

    r = resolved.recipe
    limit = r.inputs.max_references
    acquirer = registry.create("acquirer", r.acquire.plugin, resolved.configs["acquire"])
    for name, plan in resolved.products.items():
        cancel.check()
        where = f"{plan.where}: " if plan.where else ""
        with problems.each():
            try:
                n = _count_each(acquirer, plan, resolved.base_dir, limit)
            except InputError as exc:
                raise RecipeError("", f"{where}product {name!r}: {exc.message}", hint=exc.hint) from exc
            plan.reference_count = n
            if n is not None and n > limit:
                raise RecipeError("", f"{where}product {name!r} names more than {limit} references (the limit, "
                                      "inputs.max_references)", hint="name fewer photos, or raise "
                                                                     "inputs.max_references in the recipe")
            _check_product_candidates(resolved, name, where, n)


def _count_each(acquirer: Any, plan: ProductPlan, base_dir: Path, limit: int) -> int | None:
    """The count of ``Acquirer.count``, asked one reference at a time (the same look-ups as all at once), so the
    references that name nothing are known; None where the acquirer cannot count."""
    total = 0
    for spec in plan.references:
        n = acquirer.count([spec], base_dir=base_dir, limit=limit - total)
        if n is None:
            plan.unmatched = []
            return None
        if n == 0:
            plan.unmatched.append(spec)
        total += n
        if total > limit:
            break
    return total


def _check_product_candidates(resolved: ResolvedRecipe, name: str, where: str, references: int | None) -> None:
    """A product's candidates (references x sweep points x seeds; one reference with ``generate.sources: first``)
    against ``MAX_CANDIDATES``: the per-reference check alone lets 64 references x 25,000 seeds through."""
    if references is None:
        return
    gen = resolved.recipe.generate
    seeds = len(gen.seeds) if isinstance(gen.seeds, list) else gen.seeds.count
    used = references if gen.sources == "all" else min(references, 1)
    total = used * len(resolved.grid) * seeds
    if total > MAX_CANDIDATES:
        raise RecipeError("", f"{where}product {name!r}: its references ({used}) x generate.sweep "
                              f"({len(resolved.grid)} point(s)) x generate.seeds ({seeds}) is {total} candidates, "
                              f"over the limit of {MAX_CANDIDATES} per product",
                          hint="name fewer references, sweep fewer values, use fewer seeds, or set "
                               "generate.sources: first")


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


def _plan(resolved: ResolvedRecipe, registry: Registry, problems: Problems) -> None:
    """Each product's prompts and configs (catalogue columns, templates); its own sweep points checked too.

    A product's errors are noted in ``problems`` and the next product goes on; one that fails is left out."""
    r = resolved.recipe
    kinds = {"acquire": "acquirer", "mask": "masker", "generate": "generator"}
    classes = {step: registry.get(kind, getattr(r, step).plugin).cls for step, kind in kinds.items()}
    classes.update({key: registry.get("filter", f.plugin).cls for key, f in r.filter_steps()})
    classes.update({f"score.{i}": registry.get("scorer", s.plugin).cls for i, s in enumerate(r.score)})
    resolved.products = plan_products(r, resolved.base_dir, classes, set(resolved.templated), problems)
    if not resolved.products:  # every product failed: nothing more to check
        problems.check()
    first = next(iter(resolved.products.values()))
    for step in resolved.templated:  # the run's own stage for the step: the first product's (checks, model)
        resolved.configs[step] = first.configs[step]
    failed: list[str] = []
    for name, plan in resolved.products.items():
        before = problems.total
        with problems.each():
            _check_sweep(resolved, classes, plan)
        if problems.total > before:
            failed.append(name)
    for name in failed:
        del resolved.products[name]


def _check_sweep(resolved: ResolvedRecipe, classes: dict[str, Any], plan: ProductPlan) -> None:
    """A product's columns against the recipe's sweep: no swept setting, every sweep point valid, no bigger."""
    r = resolved.recipe
    gen_cfg = classes["generate"].Config
    for key, origin in plan.origins.items():  # each sweep point would replace the column's value, silently
        name = key.split(".")[2] if key.startswith("generate.config.") else None
        if name in r.generate.sweep:
            raise RecipeError(origin, f"column {key!r} sets generate.config.{name}, which the recipe sweeps; "
                                      f"set generate.sweep.{name} in the recipe, or remove {name} from its sweep")
    if "generate" not in plan.configs:
        return
    columns = [k for k in plan.origins if k.startswith("generate.config.")]
    for point in resolved.grid:
        try:
            made = gen_cfg.model_validate({**plan.raw["generate"], **point})
        except ValidationError as exc:
            err = config_error(exc, "generate.sweep", gen_cfg)
            raise RecipeError(plan.where, f"{err.message} (sweep point {point})") from exc
        if columns:
            _check_pixels(classes["generate"], made, plan, point, columns)


def _check_pixels(cls: Any, made: Any, plan: ProductPlan, point: dict[str, Any], columns: list[str]) -> None:
    """A row's generator settings may not make a candidate cost more pixels than the recipe's own do at that point."""
    own = own_config(plan, "generate", cls)
    if point:
        own = cls.Config.model_validate({**plan.own["generate"], **point})
    for size in _WEIGH_AT:
        mine, bound = candidate_pixels(cls, made, size), candidate_pixels(cls, own, size)
        if mine > bound:
            at = f" at sweep point {point}" if point else ""
            shown = ", ".join(repr(c) for c in columns)
            raise RecipeError(plan.origins[columns[0]],
                              f"column(s) {shown} make a candidate {mine} pixels from a {size[0]}x{size[1]} photo, "
                              f"more than the recipe's own {bound}{at}: a catalogue may not ask for more work "
                              "than the recipe", hint="raise it in the recipe, or remove the column")


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = (), *, registry: Registry | None = None) -> ResolvedRecipe:
    """Read, override and validate a recipe file."""
    path = Path(path)
    data = read_yaml(path)
    try:  # an override that does not fit this recipe names it too (compare loads two)
        data = apply_overrides(data, parse_overrides(list(overrides)))
        return resolve_recipe(data, path=path, registry=registry)
    except RowErrors as exc:
        raise exc.prefixed(f"{path}: ") from exc
    except RecipeError as exc:
        raise RecipeError("", f"{path}: {exc.message}", hint=exc.hint) from exc
