"""``ecomforge bench fidelity``: the scorer benchmark as a CLI command, with rich tables."""
from __future__ import annotations

import shlex
from pathlib import Path

import click

from ecomforge.errors import UsageError


@click.group()
def bench() -> None:
    """Benchmarks of installed plugins."""


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@bench.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-out/fidelity"),
              show_default=True, help="Folder for fidelity.json and contact-sheet.png.")
@click.option("--recipe", type=click.Path(dir_okay=False, path_type=Path),
              help="Recipe whose score: list (plugins, configs, weights) makes the weighted total "
                   "(default: recipes/quickstart.yaml of the repository).")
@click.option("--scorers", help="Comma-separated extra scorers reported on their own "
                                "(default: color,keypoints,parts,shape,texture,expansion,seams,duplicates,scene,framing).")
@click.option("--products", help="Comma-separated DreamBench product names (default: all ten).")
@click.option("--quick", is_flag=True, help="Four products, one photo each, fewer failures: a fast smoke run.")
@click.option("--views", default=6, show_default=True, type=click.IntRange(1, 6),
              help="Photos of each product used as the candidate, the others being its references "
                   "(6: every photo; a product with fewer uses all it has).")
@click.option("--masks", type=click.Choice(["boxes", "classic"]), default="boxes", show_default=True,
              help="Product masks: GrabCut in hand-drawn boxes, or the classic masker (box fallback).")
@click.option("--model", "models", multiple=True, metavar="SCORER=PATH",
              help="Model for a learned scorer, e.g. clip-image=ViT-B-32/laion2b_s34b_b79k or dino=/models/dinov2-small.")
@click.option("--tiny", is_flag=True, help="Use tiny RANDOM-weight CLIP/DINOv2 where no --model is given "
                                           "(checks the harness; the figures mean nothing).")
@click.option("--size", default=256, show_default=True, type=click.IntRange(64, 2048), help="Long side of the photos (px).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random failure parameters.")
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda or mps.")
@click.option("--failures", type=click.Choice(["benchmark", "alternate", "third"]), default="benchmark",
              show_default=True, help="Identity and integration failures: the benchmark's own, or the same kinds made "
              "another way (alternate, third: never used for tuning, so how far the figures carry over).")
def fidelity(out_dir: Path, recipe: Path | None, scorers: str | None, products: str | None, quick: bool, views: int,
             masks: str, models: tuple[str, ...], tiny: bool, size: int, seed: int, device: str, failures: str) -> None:
    """Score real re-shoots, clean composites, damaged products, bad scenes and other products; report AUROCs."""
    from .fidelity import run_fidelity

    chosen = {}
    for item in models:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise UsageError(f"--model {item!r}: expected SCORER=PATH")
        chosen[name.strip()] = path.strip()
    command = _command_line(click.get_current_context())
    result = run_fidelity(out_dir, _split(scorers), _split(products), recipe=recipe, quick=quick, views=views,
                          masks=masks, models=chosen, tiny=tiny, size=size, seed=seed, device=device,
                          failures=failures, command=command)
    print_tables(result)
    click.echo(f"wrote {out_dir / 'fidelity.json'} and {out_dir / 'contact-sheet.png'}")


def _command_line(ctx: click.Context) -> str:
    """The command as typed, rebuilt from the parsed options that differ from their defaults."""
    parts = ["ecomforge bench fidelity"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value in (None, False, ()) or value == param.default:
            continue
        flag = param.opts[0]
        for item in value if isinstance(value, tuple) else (value,):
            parts.append(flag if item is True else f"{flag} {shlex.quote(str(item))}")
    return " ".join(parts)


def print_tables(result: dict) -> None:
    """AUROC per scorer and failure group (all, tuning, held-out products), then per failure kind."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(110, Console().width))  # the tables need ~110 columns, also in logs
    columns = dict(result["scorers"])
    if result.get("total"):
        columns["total"] = result["total"]
    groups = ("identity", "integration", "cross-similar", "cross-other")
    for split in ("all", "tune", "held_out"):
        table = Table(title=f"Fidelity AUROC ({split.replace('_', '-')} products; total = recipe-weighted)")
        for head in ("scorer", "weight", "all", *groups):
            table.add_column(head, justify="left" if head == "scorer" else "right")
        for name, entry in columns.items():
            if split not in entry:
                continue
            got = entry[split]
            weight = "" if name == "total" else f"{result['weights'].get(name, 0):g}"
            table.add_row(name, weight, _fmt(got["auroc_all"]), *[_fmt(got["groups"].get(g)) for g in groups])
        console.print(table)
    kinds = Table(title="AUROC per failure kind (all products)")
    kinds.add_column("kind")
    for name in columns:
        kinds.add_column(name, justify="right")
    any_entry = next(iter(columns.values()), None)
    for kind, info in (any_entry or {}).get("all", {}).get("kinds", {}).items():
        if info["auroc"] is None or info["group"].startswith("cross"):  # benign rows; cross products: per group above
            continue
        kinds.add_row(kind, *[_fmt(columns[c]["all"]["kinds"][kind]["auroc"]) for c in columns])
    console.print(kinds)
    for line in _verdict_lines(result):
        console.print(line)
    for name, reason in result["skipped"].items():
        console.print(f"[dim]skipped {name}: {reason}[/dim]")
    if result.get("recipe_missing"):
        console.print(f"[yellow]recipe scorers not installed (left out of the total): "
                      f"{', '.join(result['recipe_missing'])}[/yellow]")


def _verdict_lines(result: dict) -> list[str]:
    """The targets per split (with a caveat where the cases are few), then what the recipe's filter would keep."""
    lines = []
    for split, goals in result.get("targets", {}).items():
        text = ", ".join(f"{g} {_fmt(v['auroc'])} (target {v['target']}{'' if v['met'] else ', NOT met'}"
                         f"{_few(v)})" for g, v in goals.items())
        lines.append(f"targets, {split}: {text}")
    if result.get("filter"):
        lines.append(_filter_line(result["filter"]))
    return lines


def _filter_line(filtered: dict) -> str:
    """What the recipe's threshold filter would keep of each group: the decision, beside the ranking."""
    rule = filtered["rule"]
    mins = ", ".join(f"{k} {v:g}" for k, v in rule["min_scores"].items())
    kept = filtered["all"]["groups"]
    return (f"the recipe's filter (total >= {rule['min_score']:g}{'; ' + mins if mins else ''}) would keep: "
            + ", ".join(f"{g} {e['share']:.0%}" for g, e in kept.items()))


def _few(goal: dict) -> str:
    """A caveat for an AUROC from too few cases to be a verdict."""
    if not goal.get("few"):
        return ""
    return f"; only {goal.get('benign', 0)} benign and {goal.get('failures', 0)} failure cases: an anecdote"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
