"""LoRA and DreamBooth-LoRA fine-tuning on a product's references, and the ``ecomforge train`` command."""
from __future__ import annotations

from ecomforge import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_trainers(register):
    """``lora`` (instance images only) and ``dreambooth`` (LoRA with prior preservation)."""
    from .trainers import DreamBoothTrainer, LoraTrainer

    register(LoraTrainer)
    register(DreamBoothTrainer)


@hookimpl
def register_commands(cli):
    """``ecomforge train RECIPE``."""
    from .command import train_command

    cli.add_command(train_command)
