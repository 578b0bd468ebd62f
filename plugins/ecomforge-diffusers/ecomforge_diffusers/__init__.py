"""Stable Diffusion generators (diffusers) and the ``ecomforge models`` commands."""
from __future__ import annotations

from ecomforge import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_generators(register):
    """sd-inpaint (repaint around the product) and sd-img2img (restyle the whole reference)."""
    from .generators import SdImg2ImgGenerator, SdInpaintGenerator

    register(SdInpaintGenerator)
    register(SdImg2ImgGenerator)


@hookimpl
def register_commands(cli):
    """``ecomforge models pull|list``."""
    from .commands import models_group

    cli.add_command(models_group)
