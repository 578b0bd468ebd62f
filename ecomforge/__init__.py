"""ecomforge: many faithful product images from a few reference photos."""
from __future__ import annotations

__version__ = "0.1.0"

from .hookspecs import hookimpl  # the one thing every plugin imports

__all__ = ["__version__", "hookimpl"]
