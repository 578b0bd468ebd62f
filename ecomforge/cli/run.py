"""``ecomforge run`` and ``ecomforge validate``."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EcomforgeError
from .group import cli

DEVICES = click.Choice(["auto", "cpu", "cuda", "mps"])


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key (repeatable).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Parent folder of the run folder.")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), help="Finish an interrupted run folder.")
@click.option("--executor", help="Where generation runs: local (default) or ray.")
@click.option("--address", help="Ray cluster address for --executor ray (auto, or ray://host:port).")
@click.option("--device", type=DEVICES, default="auto", show_default=True, help="Where models run.")
@click.option("--progress", type=click.Choice(["auto", "rich", "plain", "none"]), default="auto",
              help="Progress display (auto: bars on a terminal, log lines otherwise).")
def run(recipe: Path, overrides: tuple[str, ...], out: Path | None, resume: Path | None, executor: str | None,
        address: str | None, device: str, progress: str) -> None:
    """Run RECIPE: acquire, mask, generate, score and filter into a new run folder."""
    from ..recipe import load_recipe
    from ..run.runner import run_recipe

    if executor:
        overrides = (*overrides, f"execute.plugin={executor}")
    if address:
        overrides = (*overrides, f"execute.config.address={address}")
    resolved = load_recipe(recipe, overrides)
    observers = _progress(progress)
    result = run_recipe(resolved, out=out, resume=resume, device=device, observers=observers)
    s = result.summary
    click.echo(f"{s['total_candidates']} candidates, {s['total_kept']} kept -> {result.run_dir}")
    click.echo(f"report: {result.run_dir / 'report.html'}")


def _progress(mode: str) -> list:
    from ..run.progress import PlainProgress, RichProgress

    if mode == "auto":
        mode = "rich" if sys.stderr.isatty() else "plain"
    if mode == "rich":
        return [RichProgress()]
    if mode == "plain":
        return [PlainProgress(lambda m: click.echo(m, err=True))]
    return []


@cli.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key (repeatable).")
def validate(recipes: tuple[Path, ...], overrides: tuple[str, ...]) -> None:
    """Check recipes and their plugin configs without loading any weights."""
    from ..recipe import load_recipe

    failed = 0
    for path in recipes:
        try:
            resolved = load_recipe(path, overrides)
        except EcomforgeError as exc:
            failed += 1
            click.echo(f"{path}: error: {exc.one_line()}", err=True)
            continue
        r = resolved.recipe
        click.echo(f"{path}: ok ({len(r.product_specs())} product(s), {len(resolved.grid)} sweep point(s) x "
                   f"{len(r.generate.seed_list())} seed(s), plugins: {', '.join(sorted(resolved.versions))})")
    if failed:
        raise click.exceptions.Exit(2)
