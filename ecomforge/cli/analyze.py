"""``ecomforge compare`` and ``ecomforge export``."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .group import cli


@cli.command()
@click.argument("a", type=click.Path(exists=True, path_type=Path))
@click.argument("b", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Two run folders: where compare.json and report.html go (default: B/compare). Two recipes: the "
                   "folder of both runs and their compare/ (default: runs/compare-A-vs-B).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override both recipes' keys.")
@click.option("--device", default="auto", show_default=True, help="Device for recipe runs.")
def compare(a: Path, b: Path, out: Path | None, overrides: tuple[str, ...], device: str) -> None:
    """A/B: two run folders, or two recipes run on the same inputs and seeds."""
    from ..analysis.compare import compare_runs, write_compare

    if a.is_dir() != b.is_dir():
        raise UsageError("compare takes two run folders or two recipe files, not one of each")
    if a.is_file():
        from ..recipe import load_recipe
        from ..run.runner import run_recipe

        ra, rb = load_recipe(a, overrides), load_recipe(b, overrides)
        _check_overlap(a, b, ra.recipe, rb.recipe)
        base = out or Path("runs") / f"compare-{ra.recipe.name}-vs-{rb.recipe.name}"
        run_a = run_recipe(ra, out=base / "a", device=device).run_dir
        run_b = run_recipe(rb, out=base / "b", device=device).run_dir
        target = base / "compare"
    else:
        run_a, run_b = a, b
        target = out or (b / "compare")
    result = compare_runs(run_a, run_b)
    write_compare(result, target)
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{result['pairs']} pairs (same {', '.join(result['paired_on'])}); unpaired: "
               f"A {result['unpaired']['a']}, B {result['unpaired']['b']}")
    _echo_stats(result)
    if len(result["points"]) > 1:
        for point in result["points"]:
            label = ", ".join(f"{k}={v}" for k, v in point["params"].items())
            click.echo(f"at {label} ({point['pairs']} pairs):")
            _echo_stats(point, indent="  ")
    click.echo(f"report: {target / 'report.html'}")


def _echo_stats(summary: dict, indent: str = "") -> None:
    """One line per scorer (and the total): means, B − A with its interval, B's win rate."""
    for name, s in {**summary["scorers"], **({"total": summary["total"]} if "total" in summary else {})}.items():
        click.echo(f"{indent}{name:>12}: A {s['mean_a']:.3f}  B {s['mean_b']:.3f}  B−A {s['mean_diff']:+.3f} "
                   f"[{s['ci95'][0]:+.3f}, {s['ci95'][1]:+.3f}]  B wins {s['win_rate_b']:.0%} "
                   f"(ties {s['tie_rate']:.0%})")


def _check_overlap(a: Path, b: Path, ra, rb) -> None:
    """Refuse, before running anything, two recipes whose candidates could never be paired.

    Only seeds are checked here: references are matched by content after the runs, since two
    recipes may spell the same photo differently (relative to their own folders).
    """
    if not set(ra.generate.seed_list()) & set(rb.generate.seed_list()):
        raise UsageError(f"{a} and {b} share no seed: nothing could be compared")


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["imagefolder"]), default="imagefolder", show_default=True,
              help="Output layout.")
@click.option("--include", type=click.Choice(["kept", "all"]), default="kept", show_default=True,
              help="Kept candidates only, or every one that did not fail.")
def export(run_dir: Path, out_dir: Path, fmt: str, include: str) -> None:
    """Export a run's images with metadata.jsonl (a datasets imagefolder) for fine-tuning."""
    from ..analysis.export import export_imagefolder

    n = export_imagefolder(run_dir, out_dir, include=include)
    click.echo(f"{n} image(s) -> {out_dir} (metadata.jsonl)")
