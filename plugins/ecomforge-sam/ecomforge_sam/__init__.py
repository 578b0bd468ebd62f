"""Segment Anything maskers: the product by text (``sam-clip``) or by points, box or rough mask (``sam``),
plus the lighter CLIPSeg text masker (``clipseg``)."""
from __future__ import annotations

from ecomforge import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_maskers(register):
    """SAM with CLIP text matching, SAM with user prompts, and CLIPSeg."""
    from .clipseg import ClipSegMasker
    from .prompted import SamMasker
    from .text_prompted import SamClipMasker

    register(SamClipMasker)
    register(SamMasker)
    register(ClipSegMasker)
