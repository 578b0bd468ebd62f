"""``ecomforge run`` and ``ecomforge validate``."""
from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import EcomforgeError, UsageError
from ..hookspecs import hookimpl
from .group import cli

if TYPE_CHECKING:
    from ..run.context import RunContext

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
@click.option("--products", "only", metavar="NAME,...", help="Run only these products of the recipe or catalogue.")
@click.option("--limit", type=click.IntRange(min=1), help="Run only the first N products.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first product that fails (default: record it, go on).")
def run(recipe: Path, overrides: tuple[str, ...], out: Path | None, resume: Path | None, executor: str | None,
        address: str | None, device: str, progress: str, only: str | None, limit: int | None,
        fail_fast: bool) -> None:
    """Run RECIPE: acquire, mask, generate, score and filter into a new run folder.

    Exit code 0 when every product succeeded, 1 when some failed (listed in the run folder's failed.csv;
    --resume retries them; with --fail-fast the first one stops the run), 2 for bad usage or a bad recipe
    or catalogue (found before any work). A single-product run stops at its error, with that error's exit
    code. Ctrl-C stops the run with exit code 130 (SIGTERM: 143; a second one stops at once); it, and an error
    after work was kept, name the folder to finish with --resume (which keeps the run in that folder: no --out).
    A run folder is used by one run at a time: a second one is refused (exit 2).
    """
    from ..recipe import load_recipe

    if resume is not None and out is not None:
        raise UsageError("--out cannot be combined with --resume",
                         hint=f"a resumed run goes on in its own folder, {resume}; leave out --out")
    if executor:
        overrides = (*overrides, f"execute.plugin={executor}")
    if address:
        overrides = (*overrides, f"execute.config.address={address}")
    resolved = load_recipe(recipe, overrides)
    names = [n.strip() for n in only.split(",") if n.strip()] if only is not None else None
    if names == []:  # `--products ""` (an unset shell variable) would otherwise run every product
        raise UsageError("--products: no product named", hint="give NAME,... or leave --products out")
    resolved.select(names, limit)
    result = _run_watched(recipe, resolved, overrides, out=out, resume=resume, device=device,
                          observers=_progress(progress), fail_fast=fail_fast)
    s = result.summary
    click.echo(f"{s['total_candidates']} candidates, {s['total_kept']} kept -> {result.run_dir}")
    click.echo(f"report: {result.run_dir / 'report.html'}")
    for line in s.get("hook_warnings", []):
        click.echo(f"warning: {line}", err=True)
    failed = s.get("failed_products") or []
    if failed:
        click.echo(f"{len(failed)} product(s) failed (listed in {result.run_dir / 'failed.csv'}; "
                   "--resume retries them):", err=True)
        for f in failed[:20]:
            click.echo(f"  {f['product']}: {f['reason']}", err=True)
        if len(failed) > 20:
            click.echo(f"  ... and {len(failed) - 20} more", err=True)
        raise click.exceptions.Exit(1)


def _run_watched(recipe: Path, resolved: Any, overrides: tuple[str, ...], *, observers: list, **kwargs: Any) -> Any:
    """``run_recipe``, saying which folder to resume after Ctrl-C, and when the folder it named was removed."""
    from ..run.progress import PlainProgress
    from ..run.runner import run_recipe

    folder = _RunFolder()

    def resume_with() -> str:
        sets = "".join(f" --set {shlex.quote(o)}" for o in overrides)  # a resumed run must be the same recipe
        return f"resume with: ecomforge run {shlex.quote(str(recipe))}{sets} --resume {shlex.quote(str(folder.dir))}"

    try:
        return run_recipe(resolved, observers=[*observers, folder], **kwargs)
    except KeyboardInterrupt:
        from .signals import exit_code, received

        if folder.dir is None or not folder.dir.is_dir():
            raise  # stopped before the run folder was made: nothing to resume
        word = "terminated" if received() == signal.SIGTERM else "interrupted"
        click.echo(f"{word} ({resume_with()})", err=True)
        raise click.exceptions.Exit(exit_code() or 130) from None
    except Exception as exc:
        named = any(isinstance(o, PlainProgress) for o in observers)  # its first line named the run folder
        if named and folder.dir is not None and not folder.dir.exists():  # bad input, nothing written: removed
            click.echo(f"run folder {folder.dir} removed (nothing was written to it)", err=True)
        elif isinstance(exc, EcomforgeError) and folder.dir is not None and folder.dir.is_dir():  # work was kept
            exc.hint = "; ".join(h for h in (exc.hint, resume_with()) if h)
            if kwargs.get("fail_fast") and len(resolved.products) > 1:
                exc.exit_code = 1  # a product failed, as without --fail-fast; 2 is bad input found before work
        raise


class _RunFolder:
    """Observer that remembers the run folder once the runner has made (or opened) it."""

    def __init__(self) -> None:
        self.dir: Path | None = None

    @hookimpl
    def on_run_start(self, run: RunContext) -> None:
        """Note the folder."""
        self.dir = Path(run.dir)


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
@click.option("--ready", is_flag=True, help="Also fail (exit 2) where a recipe could not run on this machine: "
              "model weights or files missing, no such device.")
@click.option("--device", type=DEVICES, default="auto", show_default=True, help="Device the run would use.")
def validate(recipes: tuple[Path, ...], overrides: tuple[str, ...], ready: bool, device: str) -> None:
    """Check recipes and their plugin configs without loading any weights.

    Each valid recipe's stages are also asked whether they could run here (their model files on disk or
    downloadable, the device there): a recipe that could not is named with the reason, as a warning, or
    as an error with --ready.
    """
    from ..recipe import load_recipe
    from ..run.runner import Runner

    failed = 0
    for path in recipes:
        try:
            if _is_training_recipe(path):  # `ecomforge train` recipes are validated as such
                _validate_training(path, overrides)
                continue
            resolved = load_recipe(path, overrides)
        except EcomforgeError as exc:
            failed += 1
            for line in exc.lines():  # every line names its recipe first, whatever the error
                click.echo(f"error: {line}" if line.startswith(f"{path}:") else f"error: {path}: {line}", err=True)
            continue
        names = ", ".join(sorted({k.split(":", 1)[1] for k in resolved.versions}))
        click.echo(f"{path}: ok ({resolved.summary()}, plugins: {names})")
        # A photo that is not there fails its product when it runs, and the run goes on: a warning, also with
        # --ready (which is about whether this machine can run the recipe at all: models, device).
        photos, bad = resolved.photo_problems(_MAX_PHOTO_WARNINGS)
        for line in photos:
            click.echo(f"warning: {path}: {line}", err=True)
        if bad > len(photos):
            click.echo(f"warning: {path}: ... and {bad - len(photos)} more product(s) whose photos are missing",
                       err=True)
        missing: list[EcomforgeError]
        try:  # the checks a run makes before any work, every stage's: cheap, no weights load
            missing = [*Runner(resolved, device=device).readiness()]
        except EcomforgeError as refused:  # a stage refused its config when made (e.g. a device)
            missing = [refused]
        failed += ready and bool(missing)
        for error in missing:
            click.echo(f"{'error' if ready else 'warning'}: {path}: not ready to run here: {error.one_line()}",
                       err=True)
    if failed:
        raise click.exceptions.Exit(2)


_MAX_PHOTO_WARNINGS = 20  # lines of missing-photo warnings per recipe, then "... and N more"


def _is_training_recipe(path: Path) -> bool:
    """A train recipe names a ``trainer`` at its top level (and has no ``generate`` step)."""
    import yaml

    from ..recipe.safeyaml import safe_load

    try:
        data = safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # load_recipe reports what is wrong with it
    return isinstance(data, dict) and "trainer" in data and "generate" not in data


def _validate_training(path: Path, overrides: tuple[str, ...]) -> None:
    """Check a train recipe with the trainer plugin's own `train --check` (no weights loaded)."""
    from ..errors import UsageError

    ctx = click.get_current_context()
    train = cli.get_command(ctx, "train")
    if train is None:
        raise UsageError(f"{path}: a training recipe (trainer: ...)", hint="pip install ecomforge-train to validate it")
    ctx.invoke(train, recipe=path, overrides=overrides, resume=False, device=None, check=True, progress=None)
