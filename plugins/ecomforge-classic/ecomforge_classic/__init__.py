"""Offline plugins that need no model weights: useful on their own for packshot work."""
from __future__ import annotations

from ecomforge import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_acquirers(register):
    """Local files, folders, globs and http(s) URLs."""
    from .acquire import LocalAcquirer

    register(LocalAcquirer)


@hookimpl
def register_maskers(register):
    """Plain-background segmentation and user-supplied masks."""
    from .maskers import ClassicMasker, UploadMasker

    register(ClassicMasker)
    register(UploadMasker)


@hookimpl
def register_generators(register):
    """Cut-out compositing and OpenCV inpainting."""
    from .composite import CompositeGenerator
    from .inpaint import CvInpaintGenerator

    register(CompositeGenerator)
    register(CvInpaintGenerator)


@hookimpl
def register_scorers(register):
    """Offline identity scores, each relative to how the references agree: colour, keypoints, parts, shape, texture."""
    from .color import ColorScorer
    from .keypoints import KeypointsScorer
    from .parts import PartsScorer
    from .shape import ShapeScorer
    from .texture import TextureScorer

    for scorer in (ColorScorer, KeypointsScorer, PartsScorer, ShapeScorer, TextureScorer):
        register(scorer)
    # Integration: how the product sits in its new scene (expansion, seams, duplicates, scene, framing).
    from .integration import SCORERS

    for scorer in SCORERS:
        register(scorer)


@hookimpl
def register_filters(register):
    """Minimum score, top-K and near-duplicate removal."""
    from .threshold import ThresholdFilter

    register(ThresholdFilter)
