"""Untrusted uploads: size, count and pixel limits; the image type decided from the bytes, never the name."""
from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import InputError
from ..imaging.io import save_png

FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"}


class TooLarge(InputError):
    """An upload breaks a size or count limit (HTTP 413)."""


@dataclass(frozen=True)
class Limits:
    """What one request may upload."""

    max_file_bytes: int = 20 * 1024 * 1024
    max_files: int = 8
    max_pixels: int = 40_000_000
    max_side: int = 12_000
    max_recipe_bytes: int = 256 * 1024
    max_overrides_bytes: int = 64 * 1024
    max_text: int = 4000  # characters in a prompt

    @property
    def max_request_bytes(self) -> int:
        """Whole request body: every file at its limit, a recipe, a mask per reference, and the fields."""
        return (2 * self.max_files + 1) * self.max_file_bytes + self.max_recipe_bytes + 1024 * 1024


def check_size(data: bytes, what: str, limit: int) -> None:
    """Refuse a part that is larger than ``limit`` bytes."""
    if len(data) > limit:
        raise TooLarge(f"{what}: {len(data)} bytes is over the limit of {limit} bytes")


def decode_upload(data: bytes, what: str, limits: Limits) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode an uploaded image from its content: RGB uint8 and alpha; the size is checked before pixels."""
    from PIL import Image, ImageOps

    check_size(data, what, limits.max_file_bytes)
    if not data:
        raise InputError(f"{what}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in FORMATS:
                raise InputError(f"{what}: image type {image.format} is not accepted "
                                 f"({', '.join(sorted(FORMATS))})")
            w, h = image.size
            if w <= 0 or h <= 0:
                raise InputError(f"{what}: the image has no pixels")
            if w * h > limits.max_pixels or max(w, h) > limits.max_side:
                raise TooLarge(f"{what}: {w}x{h} pixels is over the limit ({limits.max_pixels} pixels, "
                               f"{limits.max_side} px a side)")
            image.load()
            image = ImageOps.exif_transpose(image)
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            rgba = image.convert("RGBA") if has_alpha else None
            rgb = np.asarray((rgba or image).convert("RGB"), dtype=np.uint8).copy()
            alpha = np.asarray(rgba.getchannel("A"), dtype=np.uint8).copy() if rgba is not None else None
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooLarge(f"{what}: too many pixels (limit {limits.max_pixels})") from None
    except Image.UnidentifiedImageError:
        raise InputError(f"{what}: not an image (content not recognised as {', '.join(sorted(FORMATS))})") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure on untrusted bytes is bad input
        raise InputError(f"{what}: truncated or corrupt image ({type(exc).__name__})") from None
    return rgb, alpha


def save_reference(data: bytes, folder: Path, index: int, limits: Limits) -> Path:
    """Validate an uploaded reference and store it re-encoded as ``ref-NN.png`` (a name we chose)."""
    rgb, alpha = decode_upload(data, f"reference {index + 1}", limits)
    pixels = rgb if alpha is None or int(alpha.min()) == 255 else np.dstack([rgb, alpha])
    path = folder / f"ref-{index + 1:02d}.png"
    save_png(path, pixels)
    return path


def save_mask(data: bytes, folder: Path, index: int, limits: Limits) -> Path:
    """Validate an uploaded mask and store it as ``masks/ref-NN.png`` (grey: the product is light)."""
    rgb, alpha = decode_upload(data, f"mask {index + 1}", limits)
    grey = alpha if alpha is not None and int(alpha.min()) < 255 else rgb.max(axis=2)
    path = folder / "masks" / f"ref-{index + 1:02d}.png"
    save_png(path, np.ascontiguousarray(grey))
    return path


def parse_recipe_upload(data: bytes, limits: Limits) -> dict[str, Any]:
    """An uploaded recipe file: YAML mapping, size-limited."""
    check_size(data, "recipe file", limits.max_recipe_bytes)
    try:
        parsed = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"recipe file:{where} not valid UTF-8 YAML") from None
    if not isinstance(parsed, dict):
        raise InputError(f"recipe file: a recipe must be a YAML mapping, got {type(parsed).__name__}")
    return parsed


def parse_overrides_json(text: str | None, limits: Limits) -> dict[str, Any]:
    """``overrides``: a JSON object of dotted recipe keys -> values."""
    if not text:
        return {}
    if len(text.encode()) > limits.max_overrides_bytes:
        raise TooLarge(f"overrides: over the limit of {limits.max_overrides_bytes} bytes")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"overrides: not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise InputError("overrides: expected a JSON object of dotted keys -> values, e.g. "
                         '{"generate.config.steps": 20}')
    for key in value:
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise InputError(f"overrides: bad key {key!r} (dotted recipe keys, e.g. generate.config.steps)")
    return value
