"""Backgrounds for the compositor: a solid colour, a linear or radial gradient, or a photo."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from ecomforge.errors import InputError

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
_FORMS = "'#rrggbb', 'linear:#top:#bottom', 'radial:#centre:#edge' or an image file"
MAX_PHOTO_BYTES = 50_000_000  # as the acquirer's max_bytes: a background is a photo, not a dump


def parse_colour(text: str) -> np.ndarray:
    """'#rrggbb' as an RGB float array."""
    m = _HEX.match(text.strip())
    if not m:
        raise InputError(f"background colour {text!r} is not '#rrggbb'")
    h = m.group(1)
    return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], np.float32)


def check_spec(spec: str) -> str:
    """``spec`` if it is a background ``render`` can draw (a photo file's existence aside), else a ValueError.

    The config's validator: a bad spec fails ``ecomforge validate`` (every sweep point), not the run at that point.
    """
    t = spec.strip()
    if t.startswith("#") or _HEX.match(t):
        if not _HEX.match(t):
            raise ValueError(f"background colour {spec!r} is not '#rrggbb'")
    elif t.startswith(("linear:", "radial:")):
        kind, *cols = t.split(":")
        if len(cols) != 2 or not all(_HEX.match(c.strip()) for c in cols):
            raise ValueError(f"background {spec!r}: expected '{kind}:#rrggbb:#rrggbb'")
    elif not Path(t).suffix:  # 'red', 'bogus:#1': no file name (whether the file exists is the run's to find)
        raise ValueError(f"background {spec!r} is not {_FORMS} (colours are written '#rrggbb', not by name; "
                         "a photo's file name has its extension)")
    return spec


def is_spec(text: str) -> bool:
    """True for a colour or gradient spec (anything else names a photo file)."""
    t = text.strip()
    return bool(_HEX.match(t)) or t.startswith(("linear:", "radial:"))


def render(spec: str, width: int, height: int, *, base_dir: Path | None = None, hue_shift: float = 0.0) -> np.ndarray:
    """An H×W×3 uint8 background: '#rrggbb', 'linear:#top:#bottom', 'radial:#centre:#edge' or a photo path."""
    t = spec.strip()
    if t.startswith(("linear:", "radial:")):
        kind, *cols = t.split(":")
        if len(cols) != 2:
            raise InputError(f"background {spec!r}: expected '{kind}:#rrggbb:#rrggbb'")
        a, b = parse_colour(cols[0]), parse_colour(cols[1])
        yy, xx = np.mgrid[:height, :width].astype(np.float32)
        if kind == "linear":
            w = yy / max(height - 1, 1)
        else:
            d = np.hypot((xx - width / 2) / (width / 2), (yy - height / 2) / (height / 2))
            w = np.clip(d / np.sqrt(2), 0, 1)
        img = a * (1 - w[..., None]) + b * w[..., None]
        # Dither so 8-bit gradients do not band.
        img += np.random.default_rng(0).uniform(-0.5, 0.5, img.shape).astype(np.float32)
    elif _HEX.match(t):
        img = np.broadcast_to(parse_colour(t), (height, width, 3)).astype(np.float32)
    else:
        img = _photo(t, width, height, base_dir).astype(np.float32)
    out = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if hue_shift:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV_FULL)
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(round(hue_shift / 360 * 256))) % 256
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    return out


def check_photo(spec: str, base_dir: Path | None) -> None:
    """If ``spec`` names a photo, it must be a file of at most MAX_PHOTO_BYTES (InputError otherwise)."""
    if not is_spec(spec):
        _photo_path(spec.strip(), base_dir)


def _photo_path(path_text: str, base_dir: Path | None) -> Path:
    path = Path(path_text).expanduser()
    if not path.is_absolute() and not path.exists() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        raise InputError(f"background {path_text!r}: no such image file (a relative name is looked for in the "
                         "current folder, then the recipe's)")
    if path.stat().st_size > MAX_PHOTO_BYTES:  # checked before the file is read, not after
        raise InputError(f"background {path_text!r}: the file is over {MAX_PHOTO_BYTES} bytes")
    return path


def _photo(path_text: str, width: int, height: int, base_dir: Path | None) -> np.ndarray:
    from .decode import decode_image

    path = _photo_path(path_text, base_dir)
    rgb, _ = decode_image(path.read_bytes(), what=str(path))
    h, w = rgb.shape[:2]
    s = max(width / w, height / h)  # cover: fill the canvas, crop the overflow
    nw, nh = max(width, round(w * s)), max(height, round(h * s))
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    x0, y0 = (nw - width) // 2, (nh - height) // 2
    return resized[y0:y0 + height, x0:x0 + width]
