"""Untrusted uploads: size, count and pixel limits; the image type decided from the bytes, never the name."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import InputError
from ..imaging.io import save_png
from ..imaging.jpeg import MAX_JPEG_SCANS, jpeg_problem

# Types a request's image may be: what product photos are. Not TIFF: its tiles and strips are sized apart from
# the image, so a 64x64 TIFF can make the decoder fill a 16384x16384 tile (GBs) that no header size limit sees.
# Not GIF: Pillow joins a GIF's comment blocks by copying the whole comment for each, so a 3 MB file of one-byte
# comments takes a minute of CPU. Not BMP: Pillow decodes RLE BMPs in Python (18 s for 14 KB).
FORMATS = frozenset({"PNG", "JPEG", "WEBP"})
# Types refused by name, with a hint (from the first bytes): each would be "not recognised" otherwise.
REFUSED_TYPES = ((b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"),
                 (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"))


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
    max_request_pixels: int | None = None  # all images of one request together (default: 2 x max_pixels)
    max_candidates: int = 1000  # sweep points x seeds x references of one job
    max_sweep_points: int = 256
    max_seeds: int = 1000
    max_steps: int = 16  # scorers, and filters, of one job
    max_yaml_aliases: int = 16  # in an uploaded recipe; every alias is checked before anything expands
    max_yaml_nodes: int = 20_000  # values in an uploaded recipe once expanded
    max_batch_pixels: int | None = None  # output pixels of one generator call (default: 4 x max_pixels)
    max_depth: int = 32  # lists and mappings nested in an uploaded recipe or the overrides
    max_jpeg_scans: int = MAX_JPEG_SCANS  # scans of one JPEG (a progressive one has about 10); each is a pass over every pixel

    @property
    def batch_pixels(self) -> int:
        """The output pixels one generator batch may hold at once."""
        return self.max_batch_pixels if self.max_batch_pixels is not None else 4 * self.max_pixels

    @property
    def request_pixels(self) -> int:
        """The pixel budget of one request's images."""
        return self.max_request_pixels if self.max_request_pixels is not None else 2 * self.max_pixels

    @property
    def max_upload_bytes(self) -> int:
        """One upload to the UI (Gradio's upload route): every file at its limit, and the form around them."""
        return self.max_files * self.max_file_bytes + 1024 * 1024

    @property
    def max_request_bytes(self) -> int:
        """Whole request body: every file at its limit, a recipe, a mask per reference, and the fields."""
        return (2 * self.max_files + 1) * self.max_file_bytes + self.max_recipe_bytes + 1024 * 1024


def check_size(data: bytes, what: str, limit: int) -> None:
    """Refuse a part that is larger than ``limit`` bytes."""
    if len(data) > limit:
        raise TooLarge(f"{what}: {len(data)} bytes is over the limit of {limit} bytes")


def decode_upload(data: bytes, what: str, limits: Limits) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode an uploaded image from its content (the acquirer's decode): RGB uint8 and alpha; sizes before pixels."""
    from ..imaging.decode import TooManyPixels, decode_image

    image_header(data, what, limits)
    try:
        return decode_image(data, what=what, max_pixels=limits.max_pixels, max_side=limits.max_side,
                            formats=FORMATS)
    except TooManyPixels as exc:
        raise TooLarge(f"{what}: too many pixels (limit {limits.max_pixels} pixels, {limits.max_side} px a side)") from exc


def check_request_pixels(images: list[tuple[str, bytes]], limits: Limits) -> list[tuple[int, int]]:
    """Every image's header size, and their sum against the request's budget, before any is decoded; the sizes."""
    sizes = [image_header(data, what, limits) for what, data in images]
    total = sum(w * h for w, h in sizes)
    if total > limits.request_pixels:
        raise TooLarge(f"images: {total} pixels in this request is over the limit of {limits.request_pixels}")
    return sizes


def check_type(data: bytes, what: str) -> None:
    """Refuse, by name and with what to do instead, an image type uploads may not be (TIFF, GIF, BMP)."""
    for magic, name in REFUSED_TYPES:
        if data.startswith(magic):
            raise InputError(f"{what}: {name} images are not accepted; convert it to PNG, JPEG or WebP")


def check_jpeg_scans(data: bytes, what: str, limits: Limits) -> None:
    """Refuse, before it is decoded, a JPEG that libjpeg or Pillow would read at a cost out of all proportion
    (``imaging.jpeg.jpeg_problem``): too many scans is a 413, a broken or padded file a 400."""
    problem = jpeg_problem(data, limits.max_jpeg_scans)
    if problem is not None:
        too_many, message = problem
        raise (TooLarge if too_many else InputError)(f"{what}: {message}")


def image_header(data: bytes, what: str, limits: Limits) -> tuple[int, int]:
    """(width, height) from the image header only, refusing over-limit sizes before anything is decoded.

    Also refused here, from the bytes: a type uploads may not be (TIFF, GIF, BMP), and a JPEG that would cost
    out of proportion to read (too many scans, a broken segment, junk, overlapping metadata).
    """
    from PIL import Image

    check_size(data, what, limits.max_file_bytes)
    check_type(data, what)
    check_jpeg_scans(data, what, limits)
    try:
        with Image.open(io.BytesIO(data), formats=sorted(FORMATS)) as image:
            w, h = image.size
    except Exception:  # the full decode reports what is wrong with it
        return 0, 0
    if w * h > limits.max_pixels or max(w, h) > limits.max_side:
        raise TooLarge(f"{what}: {w}x{h} pixels is over the limit ({limits.max_pixels} pixels, "
                       f"{limits.max_side} px a side)")
    return w, h


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
    from ..recipe.safeyaml import NestingError, NumberTooLong, YAMLBudgetError, safe_load

    try:
        parsed = safe_load(data.decode("utf-8"), max_aliases=limits.max_yaml_aliases, max_nodes=limits.max_yaml_nodes,
                           max_depth=limits.max_depth)
    except NestingError as exc:  # a malformed file (400), not one over a size budget (413)
        mark = exc.problem_mark
        raise InputError(f"recipe file:{f' line {mark.line + 1}' if mark else ''} nested too deeply "
                         f"(limit {limits.max_depth} levels)") from exc
    except NumberTooLong as exc:  # a malformed value (400) too
        mark = exc.problem_mark
        raise InputError(f"recipe file:{f' line {mark.line + 1}' if mark else ''} {exc.problem}") from exc
    except YAMLBudgetError as exc:
        mark = exc.problem_mark
        raise TooLarge(f"recipe file:{f' line {mark.line + 1}' if mark else ''} {exc.problem}") from exc
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"recipe file:{where} not valid UTF-8 YAML") from exc
    except ValueError as exc:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise InputError(f"recipe file: {_digits_message(exc)}") from exc
    if not isinstance(parsed, dict):
        raise InputError(f"recipe file: a recipe must be a YAML mapping, got {type(parsed).__name__}")
    return parsed


def check_depth(value: Any, what: str, limits: Limits) -> None:
    """Refuse lists and mappings nested deeper than ``max_depth`` (what reads them next recurses: 500, not 400)."""
    stack = [(value, 0)]
    while stack:  # iterative: no recursion limit to hit here
        item, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth >= limits.max_depth:
                raise InputError(f"{what}: nested too deeply (limit {limits.max_depth} levels)")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))


def check_texts(data: Any, limits: Limits) -> None:
    """Every prompt of a job's recipe within ``max_text`` characters, wherever it came from.

    The form's fields are checked as they arrive; a prompt may also come from the overrides, an uploaded
    recipe or a step's settings (a scorer's own ``prompt``), so the recipe as it will run is checked too.
    """
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((f"{key}.{k}" if key else str(k), v) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{key}.{i}", v) for i, v in enumerate(item))
        elif isinstance(item, str) and len(item) > limits.max_text and _is_prompt(key):
            raise TooLarge(f"{key}: over {limits.max_text} characters")


def _is_prompt(key: str) -> bool:
    """A dotted key that names a prompt: ``inputs.prompt``, ``generate.sweep.negative_prompt.0``, ``...text``."""
    parts = [p for p in key.split(".") if not p.isdigit()]
    return bool(parts) and (parts[-1].endswith("prompt") or parts[-1] == "text")


def parse_overrides_json(text: str | None, limits: Limits) -> dict[str, Any]:
    """``overrides``: a JSON object of dotted recipe keys -> values."""
    if not text:
        return {}
    if len(text.encode()) > limits.max_overrides_bytes:
        raise TooLarge(f"overrides: over the limit of {limits.max_overrides_bytes} bytes")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"overrides: not valid JSON ({exc.msg} at character {exc.pos})") from exc
    except RecursionError as exc:
        raise InputError("overrides: nested too deeply") from exc
    except ValueError as exc:  # an integer of more digits than Python converts
        raise InputError(f"overrides: {_digits_message(exc)}") from exc
    if not isinstance(value, dict):
        raise InputError("overrides: expected a JSON object of dotted keys -> values, e.g. "
                         '{"generate.config.steps": 20}')
    check_depth(value, "overrides", limits)
    for key in value:
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise InputError(f"overrides: bad key {key!r} (dotted recipe keys, e.g. generate.config.steps)")
    return value


def _digits_message(exc: ValueError) -> str:
    """One line for a ValueError while parsing: Python refuses integers of over 4,300 digits."""
    import sys

    if "digits" in str(exc):
        return f"a number has more than {sys.get_int_max_str_digits()} digits"
    return f"not a valid value ({' '.join(str(exc).split())[:120]})"
