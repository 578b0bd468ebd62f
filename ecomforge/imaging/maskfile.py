"""Mask files a user supplies: find one for a reference, read it, binarise it at the reference's size.

Shared by every masker that takes an uploaded mask (``upload``, the SAM maskers' rough mask), so
the rules are one: a pattern with ``{name}``/``{stem}``/``{product}``, looked up from the current
folder and then the recipe's folder; alpha carries the shape when it is really transparent.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..types import Reference
from .decode import decode_image
from .masks import binarize, check_usable


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a {0,255} mask to (width, height) smoothly, then re-binarise."""
    import cv2

    if (mask.shape[1], mask.shape[0]) == size:
        return mask
    resized = cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR)
    return np.where(resized >= 128, 255, 0).astype(np.uint8)


def find_mask_file(pattern: str, reference: Reference, roots: list[str | Path]) -> Path:
    """The mask file for ``reference``: the pattern filled in, the current folder first, then ``roots``."""
    stem = Path(reference.source.split("?")[0]).stem if reference.source else reference.name
    try:
        text = pattern.format(name=reference.name, stem=stem, product=reference.product)
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"mask path '{pattern}': bad pattern ({exc}); use {{name}}, {{stem}} or {{product}}") from exc
    candidate = Path(text).expanduser()
    if candidate.is_absolute() or candidate.exists():
        if not candidate.exists():
            raise InputError(f"{candidate}: mask file not found")
        return candidate
    dirs = [Path(r) for r in roots if r]
    for root in dirs:
        if (root / candidate).exists():
            return root / candidate
    looked = " and ".join(str(p) for p in [Path.cwd(), *dirs])
    raise InputError(f"{text}: mask file not found (looked in {looked})")


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
