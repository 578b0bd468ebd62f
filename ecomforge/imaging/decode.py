"""Decode untrusted image bytes into RGB uint8 plus an optional alpha, checking size before pixels.

The one decode path for images from outside: the acquirer's files and URLs, uploaded masks, background
photos and the web server's uploads all go through ``decode_image``, so every image mode (16-bit and
float greyscale, palettes with transparency, CMYK...) is converted the same way everywhere.
"""
from __future__ import annotations

import io
import re
import struct
import warnings
from collections.abc import Iterator

import numpy as np

from ecomforge.errors import InputError

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


# EXIF orientation (tag 0x0112) -> the transposition that shows the photo upright, as ImageOps.exif_transpose.
_ORIENTATION_TAG = 0x0112
_TRANSPOSE_NAMES = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
                    7: "TRANSVERSE", 8: "ROTATE_90"}
# Integer TIFF types a one-value Orientation may have, as Pillow decodes them: (struct code, bytes).
_INT_TYPES = {1: "B", 3: "H", 4: "L", 6: "b", 8: "h", 9: "l"}
# Bytes per value of every TIFF type Pillow's IFD loader reads (others it skips, as if the tag were absent).
_UNIT = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}
_XMP_ORIENTATION = rb'tiff:Orientation(="|>)([0-9])'


def _ifd0(exif: bytes | bytearray | memoryview | None) -> tuple[memoryview, int, str, int, int] | None:
    """(block, TIFF start, endian, first entry's offset, entry count) of a raw EXIF block's IFD0, or None.

    Leading ``Exif\0\0`` prefixes are skipped, as Pillow skips them; the count is cut to the entries the block
    holds (a truncated directory keeps what was read, as in Pillow).
    """
    if not exif:
        return None
    data = memoryview(exif)
    start = 0
    while data[start:start + 6] == b"Exif\x00\x00":
        start += 6
    head = bytes(data[start:start + 8])
    if len(head) < 8:
        return None
    if head[:4] == b"II*\x00":
        endian = "<"
    elif head[:4] == b"MM\x00*":
        endian = ">"
    else:  # BigTIFF or not TIFF: no photo writes its EXIF so
        return None
    (ifd,) = struct.unpack(endian + "L", head[4:8])
    at = start + ifd
    if ifd < 8 or at + 2 > len(data):
        return None
    (count,) = struct.unpack_from(endian + "H", data, at)
    return data, start, endian, at + 2, min(count, (len(data) - at - 2) // 12)


def _entries(exif: bytes | bytearray | memoryview | None) -> Iterator[tuple[memoryview, str, int, int, int, int]]:
    """(block, endian, entry offset, tag, type, value bytes) of each IFD0 entry Pillow's loader would read:
    a known type, a value inside the block (a value over 4 bytes is at an offset from the TIFF start)."""
    found = _ifd0(exif)
    if found is None:
        return
    data, start, endian, first, count = found
    for entry in range(count):
        pos = first + 12 * entry
        tag, typ, n = struct.unpack_from(endian + "HHL", data, pos)
        if typ not in _UNIT:
            continue  # Pillow skips a type it does not know
        size = n * _UNIT[typ]
        if size > 4:
            (offset,) = struct.unpack_from(endian + "L", data, pos + 8)
            if offset + size > len(data) - start:
                continue  # past the end of the block: skipped too
        if size:
            yield data, endian, pos, tag, typ, size


def ifd_load_bytes(exif: bytes | bytearray | memoryview | None) -> int:
    """The bytes Pillow's IFD loader copies to read a raw EXIF (or MPF) block's first directory: every value
    of over 4 bytes, each a copy of its own. Values that do not overlap sum to less than the block; thousands
    of tags that each span the whole block sum to GBs."""
    return sum(size for *_, size in _entries(exif) if size > 4)


def exif_orientation(exif: bytes | bytearray | memoryview | None) -> int | None:
    """The Orientation (0x0112) of a raw EXIF block's first IFD, or None when it has none or is malformed.

    Only the 8-byte TIFF header, the IFD0 entry count and its 12-byte entries are read, each bounds-checked
    against the block; no value is copied (Pillow's IFD loader copies every tag's value, so a small block of
    thousands of overlapping tags costs GBs). One integer is the orientation (the last tag wins, as in
    Pillow); a tag that holds a list, a rational or a float is returned as 0: present, but no orientation.
    """
    found: int | None = None
    for data, endian, pos, tag, typ, size in _entries(exif):
        if tag == _ORIENTATION_TAG:
            one = typ in _INT_TYPES and size == struct.calcsize(_INT_TYPES[typ])
            found = struct.unpack_from(endian + _INT_TYPES[typ], data, pos + 8)[0] if one else 0
    return found


def image_orientation(image) -> int:
    """The EXIF orientation of an opened image (1..8; 1 when none), from the same places Pillow's getexif reads:
    the EXIF block (JPEG APP1, PNG eXIf, WebP EXIF), a PNG's "Raw profile type exif" text, else the XMP's
    ``tiff:Orientation``."""
    info = image.info
    exif = info.get("exif")
    if exif is None and isinstance(info.get("Raw profile type exif"), str):
        try:
            exif = bytes.fromhex("".join(info["Raw profile type exif"].split("\n")[3:]))
        except ValueError:
            exif = None
    found = exif_orientation(exif) if isinstance(exif, (bytes, bytearray)) else None
    if found is None:
        xmp = info.get("XML:com.adobe.xmp") or info.get("xmp")
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8", "replace")
        match = re.search(_XMP_ORIENTATION, xmp) if isinstance(xmp, (bytes, bytearray)) else None
        found = int(match[2]) if match else None
    return found if found in _TRANSPOSE_NAMES else 1


def exif_transpose(image):
    """The image turned upright by its EXIF orientation, as ``ImageOps.exif_transpose`` turns it, without
    Pillow's EXIF parser; the orientation is dropped from the result so nothing applies it twice."""
    from PIL import Image

    orientation = image_orientation(image)
    if orientation == 1:
        return image
    out = image.transpose(getattr(Image.Transpose, _TRANSPOSE_NAMES[orientation]))
    for key in ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp"):
        out.info.pop(key, None)
    return out


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
