"""``ecomforge plugins`` and ``ecomforge schema``."""
from __future__ import annotations

import json
from typing import Any

import click

from .group import cli


def plugin_table() -> dict[str, Any]:
    """Every plugin with its kind, distribution, version and config schema, plus load errors."""
    from ..plugins import get_registry

    reg = get_registry()
    rows = []
    for p in reg.all():
        # A contested name is listed with every claimant, so the table never shows it as usable.
        claimants = sorted({c.distribution for c in reg.conflicts.get((p.kind, p.name), [])})
        rows.append({"name": p.name, "kind": p.kind, "distribution": " / ".join(claimants) or p.distribution,
                     "version": p.version, "conflict": bool(claimants),
                     "doc": (p.cls.__doc__ or "").strip().splitlines()[0] if p.cls.__doc__ else "",
                     "config_schema": p.cls.Config.model_json_schema()})
    return {
        "plugins": rows,
        "observers": observer_table(reg),
        "errors": [{"plugin": e.plugin, "distribution": e.distribution, "kind": e.kind, "error": e.error,
                    "conflict": e.conflict, "traceback": e.traceback} for e in reg.errors],
    }


def observer_table(reg: Any) -> list[dict[str, Any]]:
    """Loaded plugins implementing run lifecycle hooks (``on_*``), with the hooks each implements."""
    if reg.pm is None:
        return []
    out = []
    for name, plugin in sorted(reg.pm.list_name_plugin(), key=lambda np: str(np[0])):
        hooks = sorted(c.name for c in reg.pm.get_hookcallers(plugin) or [] if c.name.startswith("on_"))
        if hooks:
            dist = name.split(":", 1)[0] if ":" in str(name) else str(name)
            out.append({"plugin": str(name).split(":", 1)[-1], "distribution": dist, "hooks": hooks})
    return out


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output, with config schemas.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List every installed plugin and any that failed to load (exit code 1 if any did)."""
    table = plugin_table()
    if as_json:
        click.echo(json.dumps(table, indent=2))
        ctx.exit(1 if table["errors"] else 0)
    _print_table(table, verbose=bool((ctx.find_root().obj or {}).get("verbose")))
    ctx.exit(1 if table["errors"] else 0)


def _print_table(table: dict[str, Any], *, verbose: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table("kind", "name", "distribution", "version", "description")
    for p in table["plugins"]:
        doc = "UNUSABLE: two plugins claim this name (see below)" if p["conflict"] else p["doc"]
        t.add_row(p["kind"], p["name"], p["distribution"], p["version"], doc)
    console = Console()
    console.print(t)
    for o in table["observers"]:
        console.print(f"observer {o['plugin']} ({o['distribution']}): {', '.join(o['hooks'])}",
                      markup=False, highlight=False)
    for e in table["errors"]:
        what = "name conflict:" if e["conflict"] else f"failed to load {e['plugin']} ({e['distribution']}):"
        console.print(f"[red]{what}[/red] {e['error']}", markup=True, highlight=False)
        if verbose and e["traceback"]:
            console.print(e["traceback"], markup=False, highlight=False)
    if table["errors"] and not verbose:
        console.print("(run 'ecomforge -v plugins' for tracebacks; set ECOMFORGE_DISABLE=<distribution> to skip a plugin)",
                      markup=False, highlight=False)


def recipe_schema() -> dict[str, Any]:
    """JSON schema of recipes, with each step's config tied to its plugin's own schema."""
    from ..plugins import get_registry
    from ..recipe.schema import Recipe

    schema = Recipe.model_json_schema()
    reg = get_registry()
    defs = schema.setdefault("$defs", {})
    kinds = {"acquire": "acquirer", "mask": "masker", "generate": "generator", "filter": "filter",
             "execute": "executor", "score": "scorer"}
    for step, kind in kinds.items():
        options = []
        for name, info in sorted(reg.plugins[kind].items()):
            key = f"{kind}:{name}"
            defs[key] = info.cls.Config.model_json_schema()
            options.append({"properties": {"plugin": {"const": name}, "config": {"$ref": f"#/$defs/{key}"}}})
        if options:
            schema.setdefault("properties", {}).setdefault(step, {})["x-plugins"] = sorted(reg.plugins[kind])
            target = schema["properties"][step]
            if step == "score":
                target["items"] = {"allOf": [{"$ref": "#/$defs/Score"}, {"anyOf": options}]}
            else:
                ref = {k: v for k, v in target.items() if k not in ("x-plugins",)}
                schema["properties"][step] = {"allOf": [ref, {"anyOf": options}], "x-plugins": target["x-plugins"],
                                              "description": target.get("description", "")}
    return schema


@cli.command()
def schema() -> None:
    """Print the JSON schema of recipes (for editors)."""
    click.echo(json.dumps(recipe_schema(), indent=2))
