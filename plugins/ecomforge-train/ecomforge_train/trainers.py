"""The ``lora`` and ``dreambooth`` Trainer plugins: references in, a diffusers-format LoRA file out."""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ecomforge.errors import InputError, UsageError
from ecomforge.stages import Trainer
from ecomforge.types import Mask, Reference

from .checkpoint import checkpoint_dirs
from .config import DreamBoothConfig, TrainConfig
from .data import Example, load_rgb


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class LoraTrainer(Trainer):
    """LoRA on the UNet (optionally the text encoder) of an SD-1.5-class model, inpainting or not."""

    name = "lora"
    Config: ClassVar[type[TrainConfig]] = TrainConfig

    def train(self, references: Sequence[Reference], output_dir: Path, *, masks: Sequence[Mask | None] | None = None,
              captions: Sequence[str | None] | None = None, resume: bool | Path = False, progress: bool = False,
              registry: Any = None, echo: Callable[[str], None] = _stderr) -> Path:
        """Train on ``references`` (with optional product masks and per-image captions); returns the LoRA file."""
        from ecomforge.plugins import get_registry

        from .engine import LoraEngine, require_bitsandbytes, run_training
        from .validation import class_images, make_scorers, plot_loss, validate

        cfg: TrainConfig = self.config
        if not references:
            raise InputError("references: no reference images to train on")
        masks = list(masks) if masks is not None else [None] * len(references)
        captions = list(captions) if captions is not None else [None] * len(references)
        if len(masks) != len(references) or len(captions) != len(references):
            raise InputError("masks/captions: one per reference expected")
        scorers = make_scorers(cfg.validation.scorers, registry or get_registry()) if cfg.validation.num_images else []
        if cfg.use_8bit_adam:
            require_bitsandbytes()  # before minutes of model loading
        output_dir = Path(output_dir)
        if not resume and checkpoint_dirs(output_dir):  # before minutes of model loading, too
            raise UsageError(f"output: {output_dir} already holds checkpoints",
                             hint="add --resume to continue them, or choose a new output folder")
        engine = LoraEngine(cfg, device=self.device)
        est = engine.memory_estimate()
        echo(f"device {engine.device}, {'inpainting' if engine.parts.inpaint else 'text-to-image'} UNet, "
             f"estimated peak memory ~{est['total_gib']:.2f} GiB (frozen weights {est['weights_gib']:.2f}, "
             f"{est['trainable_params_m']:.2f} M LoRA params + optimizer {est['optimizer_gib']:.3f}, "
             f"activations ~{est['activations_gib']:.2f})")
        examples = [Example(ref.image, prompt_for(cfg, caption), m.data if m is not None else None, ref.source)
                    for ref, m, caption in zip(references, masks, captions)]
        class_examples = None
        if cfg.prior_preservation:
            folder = Path(cfg.class_images) if cfg.class_images else output_dir / "class_images"
            if self.base_dir is not None and not folder.is_absolute() and cfg.class_images:
                folder = self.base_dir / folder
            files = class_images(engine.parts, cfg, folder, echo)  # before the LoRA: the base model's prior
            class_examples = [Example(load_rgb(p), cfg.class_prompt or "", None, str(p)) for p in files]
        for _, scorer in scorers:  # load scorer weights now, not after the first hundred steps
            scorer.ensure_setup()
        engine.add_lora()
        ref_masks = [m if m is not None else Mask(data=_full(r)) for r, m in zip(references, masks)]

        def on_checkpoint(step: int) -> dict[str, Any] | None:
            return validate(engine.parts, cfg, step, output_dir, scorers, references, ref_masks)

        if resume:
            found = [resume] if isinstance(resume, Path) else checkpoint_dirs(output_dir)
            if found:
                echo(f"resuming from step {int(found[-1].name.split('-')[1])} ({found[-1]})")
        with _ProgressBar(cfg.steps, enabled=progress) as bar:
            path = run_training(engine, examples, output_dir, class_examples=class_examples, resume=resume,
                                on_checkpoint=on_checkpoint, progress=bar.update)
        plot_loss(output_dir / "train_log.jsonl", output_dir / "loss.png")
        return path


class DreamBoothTrainer(LoraTrainer):
    """DreamBooth as LoRA: prior preservation on class images and a text-encoder LoRA on by default."""

    name = "dreambooth"
    Config: ClassVar[type[TrainConfig]] = DreamBoothConfig


def prompt_for(config: TrainConfig, caption: str | None) -> str:
    """The training prompt of one image: the instance prompt, followed by its caption when there is one."""
    if caption and config.use_captions:
        return f"{config.instance_prompt}, {caption}"
    return config.instance_prompt


def _full(reference: Reference) -> Any:
    import numpy as np

    return np.full(reference.image.shape[:2], 255, np.uint8)


class _ProgressBar:
    """A rich progress bar with the current loss and the ETA (a no-op when disabled)."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _ProgressBar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(),
                                      TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True))
            self._progress.__enter__()
            self._task = self._progress.add_task("train", total=self.total, loss=float("nan"))
        return self

    def update(self, step: int, loss: float) -> None:
        """Move the bar to ``step`` and show ``loss``."""
        if self._progress is not None:
            self._progress.update(self._task, completed=step, loss=loss)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
