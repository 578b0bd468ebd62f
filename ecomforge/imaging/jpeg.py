"""A JPEG's marker segments walked by their lengths, before any decoder sees the file.

A few hundred bytes can make libjpeg or Pillow spend minutes (one scan repeated a thousand times, junk
between segments that Pillow walks byte by byte) or GBs (an EXIF or MPF directory of overlapping values).
``jpeg_problem`` says so from the bytes; the web server and the acquirer's downloads refuse such a file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .exif import ifd_load_bytes

# A JPEG marker that starts a segment (or ends the image): 0xFF then a byte that is not 0x00 (a stuffed 0xFF
# in entropy-coded data), 0xFF (fill), RST0-7 / SOI (0xD0-0xD8) or TEM (0x01), which carry no length.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\x01\xd0-\xd8\xff]")

MAX_JPEG_SCANS = 64  # scans of one JPEG (a progressive one has about 10); each is a pass over every pixel


@dataclass
class JpegWalk:
    """What the marker segments of a JPEG hold, as libjpeg reads them up to its end (EOI)."""

    scans: int = 0  # SOS segments
    junk: int = 0  # bytes between segments outside scan data (fill bytes included)
    broken: int | None = None  # offset of a segment whose length is under 2 or runs past the end
    exif: bytes = b""  # the APP1 Exif payloads joined (as Pillow joins them), "Exif\0\0" of the first kept
    mpf: bytes = b""  # the APP2 MPF payload (Pillow reads its IFD at open, to tell an MPO)


def walk_jpeg(data: bytes, max_segments: int = 4096) -> JpegWalk:
    """Walk a JPEG's marker segments by their lengths; an empty walk if it is not a JPEG.

    An EXIF thumbnail inside APP1 is skipped, as the decoder skips it; after each SOS its entropy-coded data
    runs to the next 0xFF followed by neither 0x00 (a stuffed byte) nor a restart marker; bytes between
    segments are skipped to the next marker, as libjpeg does, and counted as junk. The walk stops at EOI,
    at a broken length (libjpeg reads on there: the caller refuses the file), or after ``max_segments``
    segments (then ``scans`` is at least that many: no real JPEG comes close).
    """
    walk = JpegWalk()
    if not data.startswith(b"\xff\xd8\xff"):  # what Pillow's JPEG decoder accepts
        return walk
    pos, segments, in_scan = 2, 0, False
    exif: list[bytes] = []
    while (found := _JPEG_MARKER.search(data, pos)) is not None:
        at, marker = found.start(), data[found.start() + 1]
        if not in_scan:
            walk.junk += at - pos
        if marker == 0xD9:  # EOI: the decoder stops here
            break
        segments += 1
        if segments > max_segments:
            walk.scans = max(walk.scans, max_segments)
            break
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if length < 2 or at + 2 + length > len(data):
            walk.broken = at
            break
        in_scan = marker == 0xDA
        if in_scan:
            walk.scans += 1
        elif marker == 0xE1 and data.startswith(b"Exif\x00\x00", at + 4):
            exif.append(data[at + 4 + (6 if exif else 0):at + 2 + length])
        elif marker == 0xE2 and data.startswith(b"MPF\x00", at + 4):
            walk.mpf = data[at + 8:at + 2 + length]
        pos = at + 2 + length
    walk.exif = b"".join(exif)
    return walk


def jpeg_scans(data: bytes, max_segments: int = 4096) -> int:
    """How many scans (SOS segments) a JPEG holds before its end (EOI), as libjpeg would read them; 0 if not a JPEG.

    A file of more than ``max_segments`` segments counts as having that many scans (no real one comes close).
    """
    return walk_jpeg(data, max_segments).scans


MAX_JPEG_JUNK = 1024  # bytes between a JPEG's segments: Pillow's header reader walks them one at a time in Python


def jpeg_problem(data: bytes, max_scans: int = MAX_JPEG_SCANS) -> tuple[bool, str] | None:
    """(too many scans, what is wrong) for a JPEG that would cost out of all proportion to read, else None:

    - more than ``max_scans`` scans: each scan is a pass over the whole image (too many: True);
    - a marker segment whose length is under 2 or runs past the end: the scans behind it would not be
      counted, while libjpeg reads on;
    - more than ``MAX_JPEG_JUNK`` bytes between segments;
    - an EXIF or MPF block whose directory's values overlap: Pillow copies every value when it opens the
      file, so 64 KiB of overlapping values are hundreds of MB.
    """
    walk = walk_jpeg(data, max_segments=64 * max_scans)
    if walk.broken is not None:
        return False, f"not a valid JPEG (the marker segment at byte {walk.broken} has a broken length)"
    if walk.scans > max_scans:
        return True, (f"a JPEG of {walk.scans} scans is over the limit of {max_scans} "
                      "(save it again as a baseline or standard progressive JPEG)")
    if walk.junk > MAX_JPEG_JUNK:
        return False, f"not a valid JPEG ({walk.junk} bytes of junk between its segments, over {MAX_JPEG_JUNK}); save it again"
    for name, block in (("EXIF", walk.exif), ("MPF", walk.mpf)):
        if ifd_load_bytes(block) > max(2 * len(block), 1 << 20):
            return False, f"the JPEG's {name} metadata is malformed (its values overlap); save it again without metadata"
    return None
