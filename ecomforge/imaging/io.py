"""Image files: PNG with generation parameters in a text chunk, written atomically."""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file through a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":")).replace(",", ";")
    return str(value)


# How our parameter names appear in AUTOMATIC1111's "PNG Info" line.
A1111_NAMES = {"steps": "Steps", "scheduler": "Sampler", "guidance_scale": "CFG scale",
               "strength": "Denoising strength", "model": "Model"}


def a1111_parameters(prompt: str, negative_prompt: str, params: dict[str, Any], *, seed: int,
                     size: tuple[int, int], extra: dict[str, Any] | None = None) -> str:
    """The ``parameters`` text chunk in the format AUTOMATIC1111's PNG Info reads."""
    lines = [prompt.strip()]
    if negative_prompt.strip():
        lines.append(f"Negative prompt: {negative_prompt.strip()}")
    fields: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        fields[A1111_NAMES.get(key, key.replace("_", " ").capitalize())] = value
    fields["Seed"] = seed
    fields["Size"] = f"{size[0]}x{size[1]}"
    fields.update(extra or {})
    lines.append(", ".join(f"{k}: {_fmt(v)}".replace("\n", " ") for k, v in fields.items()))
    return "\n".join(lines)
