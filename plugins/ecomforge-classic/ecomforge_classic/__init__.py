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
    """Colour-histogram and local-feature fidelity scores."""
    from .color import ColorScorer
    from .keypoints import KeypointsScorer

    register(ColorScorer)
    register(KeypointsScorer)


@hookimpl
def register_filters(register):
    """Minimum score, top-K and near-duplicate removal."""
    from .threshold import ThresholdFilter

    register(ThresholdFilter)
