"""Mask files a user supplies: find one for a reference, read it, binarise it at the reference's size.

Shared by every masker that takes an uploaded mask (``upload``, the SAM maskers' rough mask), so
the rules are one: a pattern with ``{name}``/``{stem}``/``{product}`` (``{{``/``}}`` for a brace),
filled by plain substitution, looked up from the current folder and then the recipe's folder; alpha
carries the shape when it is really transparent. The web server checks patterns with the same parser
(``parse_pattern``), and confines what a filled pattern may reach at run time (``confine``).
"""
from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..types import Reference
from .decode import decode_image
from .masks import binarize, check_usable

PLACEHOLDERS = ("name", "stem", "product")
_TOKEN = re.compile(r"\{\{|\}\}|\{[^{}]*\}?|\}")
_SEPARATORS = re.compile(r"[\\/]")
# Set by a caller that must not trust the recipe (the web server's job worker): the folders mask files may be in.
_ROOTS: contextvars.ContextVar[tuple[Path, ...] | None] = contextvars.ContextVar("ecomforge_mask_roots", default=None)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def parse_pattern(pattern: str) -> list[tuple[str, str]]:
    """A mask path pattern as ('text', literal) and ('field', name) parts; InputError for anything else.

    Only the documented placeholders, exactly: no format spec, conversion, attribute or index
    (``str.format`` would run them, so a pattern could mean something else at run time than it looked).
    """
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in _TOKEN.finditer(pattern):
        if m.start() > pos:
            parts.append(("text", pattern[pos:m.start()]))
        token = m.group()
        if token in ("{{", "}}"):
            parts.append(("text", token[0]))
        elif token[1:-1] in PLACEHOLDERS and token.endswith("}"):
            parts.append(("field", token[1:-1]))
        else:
            raise InputError(f"mask path {_shown(pattern)}: bad pattern ({_shown(token)} is not a placeholder); use "
                             "{name}, {stem} or {product} exactly, and {{ or }} for a brace")
        pos = m.end()
    if pos < len(pattern):
        parts.append(("text", pattern[pos:]))
    return parts


def escape_pattern(text: str) -> str:
    """``text`` as a pattern that means exactly itself (braces doubled): a folder or file name put in a pattern."""
    return text.replace("{", "{{").replace("}", "}}")


def fill_pattern(pattern: str, values: dict[str, str]) -> str:
    """The pattern with its placeholders replaced by plain substitution.

    A value is one path part: one holding a separator or a NUL, or one that is only dots, could lead
    the filled path out of the folder the pattern names, so it is refused.
    """
    out = []
    for kind, text in parse_pattern(pattern):
        if kind == "text":
            out.append(text)
            continue
        value = str(values.get(text, ""))
        if _SEPARATORS.search(value) or "\x00" in value or (value and set(value) == {"."}):
            raise InputError(f"mask path {_shown(pattern)}: the reference's {text} {_shown(value)} cannot be "
                             "part of a file name")
        out.append(value)
    return "".join(out)


def neutral_fill(pattern: str) -> str:
    """The pattern with every placeholder as a plain name: what a path check judges before any reference exists."""
    return fill_pattern(pattern, dict.fromkeys(PLACEHOLDERS, "x"))


@contextmanager
def confine(roots: Iterable[str | Path]) -> Iterator[None]:
    """Within this block (and threads started in its context), mask files must lie inside ``roots``."""
    reset = _ROOTS.set(tuple(Path(os.path.realpath(r)) for r in roots))
    try:
        yield
    finally:
        _ROOTS.reset(reset)


def _allowed(path: Path, roots: tuple[Path, ...]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == r or real.is_relative_to(r) for r in roots)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a {0,255} mask to (width, height) smoothly, then re-binarise."""
    import cv2

    if (mask.shape[1], mask.shape[0]) == size:
        return mask
    resized = cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR)
    return np.where(resized >= 128, 255, 0).astype(np.uint8)


def find_mask_file(pattern: str, reference: Reference, roots: list[str | Path]) -> Path:
    """The mask file for ``reference``: the pattern filled in, the current folder first, then ``roots``.

    Under ``confine``, the filled path is checked again (links followed) before it is looked at: a
    file outside the allowed folders is refused the same way whether it exists or not.
    """
    stem = Path(reference.source.split("?")[0]).stem if reference.source else reference.name
    text = fill_pattern(pattern, {"name": reference.name, "stem": stem, "product": reference.product})
    if "\x00" in text:
        raise InputError(f"mask path {_shown(pattern)}: not a file name")
    candidate = _expand_home(pattern, text)
    dirs = [Path(r) for r in roots if r]
    looks = [candidate] if candidate.is_absolute() else [candidate, *(root / candidate for root in dirs)]
    allowed = _ROOTS.get()
    if allowed is not None:
        looks = [p for p in looks if _allowed(p, allowed)]
        if not looks:
            raise InputError(f"mask path {_shown(pattern)}: the mask for {reference.name} is not a file this run "
                             "may read (its own uploads or the server's presets)")
    for path in looks:
        if path.exists():
            return path
    if candidate.is_absolute():
        raise InputError(f"{candidate}: mask file not found")
    looked = " and ".join(dict.fromkeys(str(p.resolve()) for p in [Path.cwd(), *dirs]))  # each folder once
    raise InputError(f"{text}: mask file not found (looked in {looked})")


def _expand_home(pattern: str, text: str) -> Path:
    """``~`` or ``~user`` expanded only when the pattern spells it out (a filled-in value never names a home)."""
    parts = parse_pattern(pattern)
    kind, first = parts[0] if parts else ("field", "")
    spelled = kind == "text" and first.startswith("~") and (len(parts) == 1 or _SEPARATORS.search(first))
    return Path(text).expanduser() if spelled else Path(text)


def read_mask_file(path: Path, size: tuple[int, int], *, threshold: int = 128, invert: bool = False,
                   resize: bool = False, what: str = "reference") -> np.ndarray:
    """A mask file as uint8 {0,255} at ``size`` (width, height); a size mismatch is an error unless ``resize``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read mask ({exc.strerror or exc})") from exc
    rgb, alpha = decode_image(data, what=str(path))
    # A mask with real transparency carries its shape in alpha; otherwise the grey level does.
    grey = alpha if alpha is not None and int(alpha.min()) < 255 else rgb.max(axis=2)
    binary = binarize(grey, threshold)
    if invert:
        binary = 255 - binary
    width, height = size
    if binary.shape != (height, width):
        if not resize:
            raise InputError(f"{path}: mask is {binary.shape[1]}x{binary.shape[0]} but {what} is "
                             f"{width}x{height} (set resize: true)")
        binary = resize_mask(binary, (width, height))
    check_usable(binary, str(path))
    return binary
