"""The acquirer's image decode now lives in the core (``ecomforge.imaging.decode``), shared with the web server."""
from __future__ import annotations

from ecomforge.imaging.decode import DEFAULT_MAX_PIXELS, decode_image

__all__ = ["DEFAULT_MAX_PIXELS", "decode_image"]
