"""``ecomforge compare`` and ``ecomforge export``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from .group import cli
from .run import DEVICES


@cli.command()
@click.argument("a", type=click.Path(exists=True, path_type=Path))
@click.argument("b", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Two run folders: where compare.json and report.html go (default: B/compare). Two recipes: the "
                   "folder of both runs and their compare/ (default: runs/compare-A-vs-B).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override both recipes' keys.")
@click.option("--device", type=DEVICES, default="auto", show_default=True, help="Device for recipe runs.")
def compare(a: Path, b: Path, out: Path | None, overrides: tuple[str, ...], device: str) -> None:
    """A/B: two run folders, or two recipes run on the same inputs and seeds."""
    from ..analysis.compare import check_compare_out, compare_runs, write_compare

    if a.is_dir() != b.is_dir():
        raise UsageError("compare takes two run folders or two recipe files, not one of each")
    if a.is_dir() or out is not None:  # before any work; two recipes' default folder is made by the runs
        check_compare_out(out / "compare" if a.is_file() and out is not None else (out or b / "compare"))
    if a.is_file():
        from ..recipe import load_recipe

        ra, rb = load_recipe(a, overrides), load_recipe(b, overrides)
        _check_overlap(a, b, ra.recipe, rb.recipe)
        base = out or Path("runs") / f"compare-{ra.recipe.name}-vs-{rb.recipe.name}"
        run_a, run_b = _run_both([(a, ra, base / "a"), (b, rb, base / "b")], overrides, device, base / "compare")
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
    """One line per scorer (and the total): means, B − A with its interval, B's wins, losses and ties."""
    from ..analysis.compare import shares, signed, stat_lines

    lines = stat_lines(summary)
    width = max(12, *(len(name) for name in lines))
    for name, s in lines.items():
        click.echo(f"{indent}{name:>{width}}: A {s['mean_a']:.3f}  B {s['mean_b']:.3f}  B−A {signed(s['mean_diff'])} "
                   f"[{signed(s['ci95'][0])}, {signed(s['ci95'][1])}]  {shares(s)}")


def _run_both(runs: list[tuple[Path, Any, Path]], overrides: tuple[str, ...], device: str,
              target: Path) -> tuple[Path, Path]:
    """Run both recipes, each one's progress shown as `ecomforge run` shows it; Ctrl-C names both run folders,
    the --resume command of each one not finished, and the compare to run once they are."""
    import shlex
    import signal

    from ..cli.run import _progress
    from ..hookspecs import hookimpl
    from ..run.runner import run_recipe

    class Folder:
        """Notes the run folder once the runner has made it."""

        dir: Path | None = None

        @hookimpl
        def on_run_start(self, run: Any) -> None:
            """Note the folder."""
            self.dir = Path(run.dir)

    sets = "".join(f" --set {shlex.quote(o)}" for o in overrides)
    folders: list[Path] = []
    for label, (path, resolved, parent) in zip("AB", runs):
        click.echo(f"compare: running {label} ({path}) into {parent}/", err=True)
        folder = Folder()
        try:
            folders.append(run_recipe(resolved, out=parent, device=device,
                                      observers=[*_progress("auto"), folder]).run_dir)
        except KeyboardInterrupt:
            from .signals import exit_code, received

            word = "terminated" if received() == signal.SIGTERM else "interrupted"
            done = [f"{lab} finished in {f}" for lab, f in zip("AB", folders)]
            left = ([f"{label} in {folder.dir}: resume with: ecomforge run {shlex.quote(str(path))}{sets} "
                     f"--resume {shlex.quote(str(folder.dir))}"] if folder.dir is not None and folder.dir.is_dir()
                    else [f"{label} not started"])
            left += [f"B not started: ecomforge run {shlex.quote(str(runs[1][0]))}{sets} --out "
                     f"{shlex.quote(str(runs[1][2]))}"] if label == "A" else []
            then = "; then: ecomforge compare RUN_A RUN_B --out " + shlex.quote(str(target))
            click.echo(f"{word} ({'; '.join(done + left)}{then})", err=True)
            raise click.exceptions.Exit(exit_code() or 130) from None
    return folders[0], folders[1]


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
    from ..analysis.compare import incomplete_note
    from ..analysis.export import export_imagefolder

    n = export_imagefolder(run_dir, out_dir, include=include)
    click.echo(f"{n} image(s) -> {out_dir} (metadata.jsonl)")
    note = incomplete_note(run_dir)
    if note:  # what there is was exported; an export into the same folder later adds the rest
        click.echo(f"note: {note}; then export again into {out_dir} (it adds only what is new)", err=True)
