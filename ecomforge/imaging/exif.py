"""EXIF orientation and metadata size, read by a small bounds-checked reader of the first directory only.

Pillow's own EXIF parser copies every tag's value: a 144 KB file of thousands of overlapping tags cost
1.9 GB. ``decode_image`` turns photos upright with ``exif_transpose``; ``imaging.jpeg`` refuses a JPEG whose
EXIF or MPF block would make Pillow copy out of proportion (``ifd_load_bytes``).
"""
from __future__ import annotations

import re
import struct
from collections.abc import Iterator

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
