"""Image files: PNG (text chunks), JPEG and WebP (EXIF UserComment, sRGB profile), written atomically."""
from __future__ import annotations

import io
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

_UMASK_LOCK = threading.Lock()
IMAGE_FORMATS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


def _file_mode() -> int:
    """0666 less the process umask: what ``open()`` would have given (mkstemp gives 0600)."""
    with _UMASK_LOCK:  # reading the umask means setting it; keep other writer threads out meanwhile
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file through a temporary file in the same folder, then rename it into place (umask honoured)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def png_bytes(image: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """Encode an RGB/RGBA/L uint8 array as PNG with tEXt/iTXt chunks."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value) if not value.isascii() else info.add_text(key, value)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", pnginfo=info, compress_level=1)  # speed over size: a run writes many large PNGs
    return buf.getvalue()


def save_png(path: Path, image: np.ndarray, text: dict[str, str] | None = None) -> None:
    """Write a PNG atomically, with metadata text chunks."""
    atomic_write_bytes(path, png_bytes(image, text))


def read_png(path: Path) -> tuple[np.ndarray, dict[str, str]]:
    """Read a PNG's pixels (as stored) and text chunks."""
    with Image.open(path) as im:
        im.load()
        text = dict(getattr(im, "text", {}) or {})
        return np.asarray(im).copy(), text


def srgb_profile() -> bytes:
    """An sRGB ICC profile, so storefronts and browsers show the colours as generated."""
    global _SRGB
    if _SRGB is None:
        from PIL import ImageCms

        _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return _SRGB


_SRGB: bytes | None = None
_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286


def encode_image(image: np.ndarray, fmt: str = "png", *, quality: int = 92,
                 text: dict[str, str] | None = None) -> bytes:
    """Encode as PNG (text chunks), or JPEG/WebP with the ``parameters`` text in EXIF UserComment (as A1111 does)."""
    if fmt == "png":
        return png_bytes(image, text)
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r} (known: {', '.join(IMAGE_FORMATS)})")
    im = Image.fromarray(np.ascontiguousarray(image))
    if fmt == "jpeg" and im.mode not in ("RGB", "L"):
        im = im.convert("RGB")  # JPEG has no alpha
    exif = Image.Exif()
    params = (text or {}).get("parameters")
    if params:
        exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = b"UNICODE\0" + params.encode("utf-16-be")
    buf = io.BytesIO()
    extra = {"optimize": True, "progressive": True} if fmt == "jpeg" else {"method": 4}
    im.save(buf, format=fmt.upper(), quality=int(quality), icc_profile=srgb_profile(), exif=exif.tobytes(), **extra)
    return buf.getvalue()


def read_parameters(path: Path) -> str | None:
    """The ``parameters`` text of a PNG, JPEG or WebP written by ``encode_image`` (None if absent)."""
    with Image.open(path) as im:
        text = (getattr(im, "text", None) or {}).get("parameters")
        if text is not None:
            return text
        raw = im.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
    if not raw:
        return None
    if isinstance(raw, str):
        return raw
    if raw.startswith(b"UNICODE\0"):
        body = raw[8:]
        # some writers use little-endian despite EXIF's default; a BOM-less guess by the NUL byte position
        return body.decode("utf-16-le" if body[1:2] == b"\0" and body[:1] != b"\0" else "utf-16-be")
    return raw.split(b"\0", 1)[-1].decode("utf-8", "replace")


def a1111_parameters(prompt: str, negative_prompt: str, params: dict[str, Any], *, seed: int,
                     size: tuple[int, int], extra: dict[str, Any] | None = None) -> str:
    """The ``parameters`` text chunk in AUTOMATIC1111's infotext format, from a generator's params (no paths)."""
    from .infotext import generic_fields, infotext

    fields = generic_fields(params, seed=seed, size=size)
    fields.update(extra or {})
    return infotext(prompt, negative_prompt, fields)
