"""Decode untrusted image bytes into RGB uint8 plus an optional alpha, checking size before pixels.

The one decode path for images from outside: the acquirer's files and URLs, uploaded masks, background
photos and the web server's uploads all go through ``decode_image``, so every image mode (16-bit and
float greyscale, palettes with transparency, CMYK...) is converted the same way everywhere.
"""
from __future__ import annotations

import io
import re
import warnings

import numpy as np

from ecomforge.errors import InputError

from .exif import exif_transpose

DEFAULT_MAX_PIXELS = 40_000_000


class TooManyPixels(InputError):
    """The image's header announces more pixels than allowed (nothing was decoded)."""


# What an image from someone else (a download) may be: the types whose decoding costs what their pixels do.
UNTRUSTED_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})


def decode_image(data: bytes, *, what: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_side: int | None = None, formats: frozenset[str] | set[str] | None = None,
                 untrusted: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Bytes of any PIL-readable image -> (H×W×3 uint8 RGB, H×W uint8 alpha or None); bad input raises InputError.

    ``formats`` limits the accepted types (decided from the bytes, never a name); the pixel count and
    ``max_side`` are checked from the header before any pixel is decoded. ``untrusted`` (a downloaded file):
    only PNG, JPEG and WebP, and a JPEG that would cost out of proportion to read is refused before it is
    opened (``imaging.jpeg.jpeg_problem``: a repeated scan, a broken segment, junk, overlapping metadata).
    """
    from PIL import Image

    if not data:
        raise InputError(f"{what}: the file is empty")
    if untrusted:
        from .jpeg import jpeg_problem

        formats = UNTRUSTED_FORMATS if formats is None else frozenset(formats) & UNTRUSTED_FORMATS
        problem = jpeg_problem(data)
        if problem is not None:
            raise InputError(f"{what}: {problem[1]}")
    # Our limit is checked from the header, before any pixel is decoded. PIL's process-wide guard is
    # raised to at least ours (never lowered: other code in the process may open bigger images).
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # malformed-tag chatter; bad files still raise
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=sorted(formats) if formats else None)
            width, height = image.size
            if width <= 0 or height <= 0:
                raise InputError(f"{what}: the image has no pixels ({width}x{height})")
            if width * height > max_pixels or (max_side is not None and max(width, height) > max_side):
                side = f", {max_side} px a side" if max_side is not None else ""
                raise TooManyPixels(f"{what}: too many pixels ({width}x{height} = {width * height}, "
                                    f"limit {max_pixels}{side}: max_pixels)")
            image.load()
            return _to_rgb_alpha(exif_transpose(image), what)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = found.group(1) if found else "more"
        raise TooManyPixels(f"{what}: too many pixels ({count} pixels, limit {max_pixels}: max_pixels)") from exc
    except Image.UnidentifiedImageError as exc:
        accepted = f" as {', '.join(sorted(formats))}" if formats else ""
        raise InputError(f"{what}: not an image file (content not recognised{accepted})") from exc
    except Exception as exc:  # any decoder failure on untrusted bytes is bad input
        detail = " ".join(str(exc).split())[:120]
        raise InputError(f"{what}: truncated or corrupt image ({type(exc).__name__}: {detail})") from exc


def _to_rgb_alpha(image, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Any PIL mode -> RGB uint8 and alpha; 16/32-bit greyscale is scaled to its range, never clipped."""
    mode = image.mode
    alpha = None
    if mode in ("P", "L", "1", "RGB") and "transparency" in image.info:
        # A transparent palette index or colour key is an alpha channel in disguise.
        image = image.convert("RGBA")
        mode = image.mode
    try:
        if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            alpha = np.asarray(image.getchannel("A"), dtype=np.uint8).copy()
            rgb = np.asarray(image.convert("RGBA").convert("RGB"), dtype=np.uint8)
        elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            rgb = _wide_gray_to_rgb(image)
        else:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ValueError as exc:
        raise InputError(f"{what}: unsupported image mode {mode!r} ({exc})") from exc
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"{what}: unsupported image mode {mode!r}")
    return np.ascontiguousarray(rgb), alpha


def _wide_gray_to_rgb(image) -> np.ndarray:
    """16-bit / 32-bit greyscale -> uint8 RGB by the type's range (16-bit: ÷257), floats by 0..1 or their max."""
    arr = np.asarray(image)
    mode = image.mode
    if mode.startswith("I;16"):
        scaled = arr.astype(np.float64) / 257.0
    elif mode == "F":
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        hi = float(arr.max()) if arr.size else 0.0
        scaled = arr * (255.0 if hi <= 1.0 else 255.0 / hi)
    else:
        # Mode "I" is how PIL opens 16-bit PNGs: values up to 65535 are 16-bit data.
        arr = arr.astype(np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        scaled = arr / 257.0 if hi <= 65535 else arr * (255.0 / hi)
    gray = np.clip(np.round(scaled), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)
