"""Learned fidelity scorers (CLIP-I, CLIP-T, DINOv2, LPIPS) and the fidelity benchmark command."""
from __future__ import annotations

from ecomforge import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_scorers(register):
    """clip-image, clip-text, dino and lpips."""
    from .scorers import ClipImageScorer, ClipTextScorer, DinoScorer, LpipsScorer

    for cls in (ClipImageScorer, ClipTextScorer, DinoScorer, LpipsScorer):
        register(cls)


@hookimpl
def register_commands(cli):
    """`ecomforge bench fidelity`: how well each scorer separates benign edits from product damage."""
    from .command import bench

    cli.add_command(bench)
