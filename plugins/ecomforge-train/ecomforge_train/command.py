"""``ecomforge train RECIPE``: read a train recipe, gather images and masks, run the trainer plugin."""
from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Any

import click

DEVICES = click.Choice(["auto", "cpu", "cuda", "mps"])


def _local(value: str, base_dir: Path) -> str:
    """A relative path as given when it exists from the current folder, else from the recipe's folder."""
    path = Path(os.path.expanduser(value))
    if path.is_absolute() or path.exists() or not (base_dir / path).exists():
        return value
    return str(base_dir / path)


def gather_references(specs: list[str], base_dir: Path, registry: Any) -> tuple[list[Any], list[str | None]]:
    """References and their captions: imagefolders (metadata.jsonl) directly, anything else via 'local'."""
    import hashlib

    from ecomforge.errors import InputError, PluginNotFound
    from ecomforge.types import Reference

    from .data import is_imagefolder, load_rgb, read_imagefolder

    refs: list[Any] = []
    captions: list[str | None] = []
    plain: list[str] = []
    for spec in specs:
        folder = Path(_local(spec, base_dir))
        if is_imagefolder(folder):
            for path, text in read_imagefolder(folder):
                data = path.read_bytes()
                refs.append(Reference(image=load_rgb(path), source=str(path), sha256=hashlib.sha256(data).hexdigest(),
                                      name=f"r{len(refs):03d}"))
                captions.append(text or None)
        else:
            plain.append(spec)
    if plain:
        try:
            acquirer = registry.create("acquirer", "local")
        except PluginNotFound as exc:
            raise InputError(f"references: reading {plain[0]} needs the 'local' acquirer", hint=exc.hint) from exc
        found = acquirer.acquire(plain, product="train", base_dir=base_dir)
        refs += found
        captions += [None] * len(found)
    if not refs:
        raise InputError(f"references: no images found in {', '.join(specs)}")
    return refs, captions


def product_masks(references: list[Any], spec: Any, registry: Any, echo: Any) -> list[Any] | None:
    """Product masks from the masker plugin (default 'classic' when installed); None where it finds nothing."""
    from ecomforge.errors import NothingFound

    if spec is None:
        if "classic" not in registry.plugins["masker"]:
            return None
        plugin, config = "classic", {}
    else:
        plugin, config = spec.plugin, spec.config
    masker = registry.create("masker", plugin, config, path="mask.config")
    masker.ensure_setup()
    masks = []
    for ref in references:
        try:
            masks.append(masker.mask(ref))
        except NothingFound:
            masks.append(None)
    missed = [ref.source for ref, m in zip(references, masks) if m is None]
    if missed:
        echo(f"note: masker '{plugin}' found no product in {len(missed)} of {len(references)} images "
             f"(e.g. {missed[0]}): those train with random masks only")
    return masks


@click.command("train")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key (repeatable).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in the output folder.")
@click.option("--device", type=DEVICES, default=None, help="Where to train (overrides the recipe's device).")
@click.option("--check", is_flag=True, help="Validate the recipe and plugin names only; load no weights.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def train_command(recipe: Path, overrides: tuple[str, ...], resume: bool, device: str | None, check: bool,
                  progress: bool | None) -> None:
    """Fine-tune a LoRA on a product's references as RECIPE says (LoRA / DreamBooth-LoRA)."""
    import sys

    from ecomforge.errors import RecipeError
    from ecomforge.models import check_device
    from ecomforge.plugins import get_registry

    from .config import load_train_recipe
    from .model import preflight
    from .validation import make_scorers

    head, config, base_dir = load_train_recipe(recipe, overrides)
    registry = get_registry()
    try:
        info = registry.get("trainer", head.trainer)
    except Exception as exc:  # PluginNotFound with its hint
        raise RecipeError(f"{recipe}: trainer", f"unknown trainer {head.trainer!r}", hint=getattr(exc, "hint", None)) from exc
    make_scorers(config.validation.scorers, registry)
    if head.mask is not None:
        registry.create("masker", head.mask.plugin, head.mask.config, path="mask.config")
    if check:
        click.echo(f"{recipe}: ok (training recipe: trainer {head.trainer}, {config.steps} steps, output {head.output})")
        return
    update = {"base_model": _local(config.base_model, base_dir)}
    if config.class_images:
        update["class_images"] = _local(config.class_images, base_dir)
    config = config.model_copy(update=update)

    def echo(message: str) -> None:
        click.echo(message, err=True)

    _quiet_libraries()
    # every cheap check before any output or weight loading
    check_device(device or head.device, "--device" if device else f"{recipe}: device:")
    check_output(Path(head.output), resume)
    if config.use_8bit_adam:
        from .engine import require_bitsandbytes

        require_bitsandbytes()
    _, inpaint = preflight(config.base_model, config.variant)
    references, captions = gather_references(head.references, base_dir, registry)
    masks = product_masks(references, head.mask, registry, echo) if inpaint else None
    trainer = info.cls(config, device=device or head.device)
    trainer.base_dir = base_dir
    show = sys.stderr.isatty() if progress is None else progress
    echo(f"training {head.trainer} on {len(references)} images for {config.steps} steps -> {head.output}")
    started = time.time()
    try:
        path = trainer.train(references, Path(head.output), masks=masks, captions=captions, resume=resume,
                             progress=show, registry=registry, echo=echo)
    except KeyboardInterrupt:
        sets = "".join(f" --set {shlex.quote(o)}" for o in overrides)
        again = f"ecomforge train {shlex.quote(str(recipe))}{sets}" + (f" --device {device}" if device else "")
        echo(interrupted_line(Path(head.output), config.checkpoint_every, started, again))
        raise click.exceptions.Exit(130) from None
    click.echo(f"LoRA: {path}")
    click.echo(f"log: {Path(head.output) / 'train_log.jsonl'}  loss curve: {Path(head.output) / 'loss.png'}")


def check_output(output: Path, resume: bool) -> None:
    """--resume needs a checkpoint, and a fresh run an output folder without one: say so before any loading."""
    from ecomforge.errors import UsageError

    from .checkpoint import CHECKPOINTS, checkpoint_dirs

    found = checkpoint_dirs(output)
    if resume and not found:
        raise UsageError(f"--resume: no checkpoint in {output / CHECKPOINTS}",
                         hint="leave out --resume to start training there")
    if not resume and found:
        raise UsageError(f"output: {output} already holds checkpoints",
                         hint="add --resume to continue them, or choose a new output folder")


def interrupted_line(output: Path, every: int, started: float, command: str) -> str:
    """What Ctrl-C cost: the steps done since the last checkpoint (lost), and how to resume from it."""
    import json

    from .checkpoint import checkpoint_dirs

    step = 0
    log = output / "train_log.jsonl"
    if log.is_file() and log.stat().st_mtime >= started:  # this run's log, not one left from an earlier run
        for line in log.read_text(encoding="utf-8").splitlines():
            record = json.loads(line) if line.strip() else {}
            if "loss" in record:
                step = int(record["step"])
    found = checkpoint_dirs(output)
    saved = int(found[-1].name.split("-")[1]) if found else 0
    if not found:
        lost = f"{step} step(s) lost" if step else "no step was finished"
        return f"interrupted at step {step}: {lost}, and no checkpoint exists yet (checkpoint_every: {every})"
    lost = max(0, step - saved)
    return (f"interrupted at step {max(step, saved)}: {lost} step(s) since the checkpoint at step {saved} lost "
            f"(resume with: {command} --resume)")


def _quiet_libraries() -> None:
    """Silence diffusers/transformers loading bars and notices: the command prints its own progress."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    for log in (dlog, tlog):
        log.set_verbosity_error()
        log.disable_progress_bar()
