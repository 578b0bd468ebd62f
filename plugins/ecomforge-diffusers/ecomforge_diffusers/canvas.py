"""Storefront canvases: the product placed on a new canvas (1:1, 4:5, 16:9 or W×H) that the model fills.

The reference is laid onto the canvas (scaled when ``product_scale`` asks, else at its native
pixels, so the product stays the photographed pixels bit for bit), the product's bounding box
placed at the centre, on a rule-of-thirds line, or standing on a floor near the bottom. The
rest of the canvas starts as the reference's edges stretched outwards (a neutral start for any
strength) and is regenerated with the background: outpainting.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from ecomforge.imaging.masks import bbox
from ecomforge.types import GenerationRequest, Mask

CANVAS_RE = re.compile(r"^(?:(\d{1,2}):(\d{1,2})|(\d{2,5})x(\d{2,5}))$")


def check_canvas(spec: str | None) -> str | None:
    """Validate a canvas spec ('1:1', '4:5', '16:9', any 'a:b', or 'WxH' in px); ValueError says what is allowed."""
    if spec is None:
        return None
    m = CANVAS_RE.match(spec.strip().lower().replace(" ", ""))
    if not m:
        raise ValueError(f"canvas must be an aspect like '1:1', '4:5', '16:9' or a size like '1200x1200' (got {spec!r})")
    if m.group(1) and (int(m.group(1)) == 0 or int(m.group(2)) == 0):
        raise ValueError(f"canvas aspect sides must be positive (got {spec!r})")
    if m.group(3) and not all(64 <= int(v) <= 8192 for v in (m.group(3), m.group(4))):
        raise ValueError(f"canvas sides must be between 64 and 8192 px (got {spec!r})")
    return spec.strip().lower().replace(" ", "")


def canvas_size(spec: str, ref_w: int, ref_h: int, scale: float) -> tuple[int, int]:
    """(W, H) of the canvas: a pixel size as given; an aspect as the smallest canvas holding the (scaled) reference."""
    m = CANVAS_RE.match(spec)
    if m.group(3):
        return int(m.group(3)), int(m.group(4))
    aspect = int(m.group(1)) / int(m.group(2))
    w, h = ref_w * scale, ref_h * scale
    width = max(w, h * aspect)
    return int(round(width)), int(round(width / aspect))


@dataclass(frozen=True)
class Layout:
    """Where the reference lands on the canvas: its scale and the top-left offset of the scaled reference."""

    size: tuple[int, int]
    scale: float
    offset: tuple[int, int]


def plan_layout(mask: np.ndarray, cfg: Any) -> Layout:
    """Scale and offset that put the product's box at the configured placement, inside the canvas."""
    ref_h, ref_w = mask.shape
    x0, y0, x1, y1 = bbox(mask) or (0, 0, ref_w, ref_h)
    W, H = canvas_size(cfg.canvas, ref_w, ref_h, 1.0)
    room_w, room_h = W / (x1 - x0), H / (y1 - y0)
    if cfg.product_scale is not None:  # the product's box fills this fraction of the canvas's limiting side
        scale = cfg.product_scale * min(room_w, room_h)
    else:  # native pixels (bit-exact to the photo), shrunk only when the product would not fit
        scale = min(1.0, room_w, room_h)
    pw, ph = (x1 - x0) * scale, (y1 - y0) * scale
    if cfg.placement == "thirds":  # the vertical third line on the product's own side of the photo
        cx = W / 3 if (x0 + x1) / 2 < ref_w / 2 else 2 * W / 3
        cy = H / 2
    elif cfg.placement == "bottom":
        cx, cy = W / 2, H - cfg.floor * H - ph / 2
    else:
        cx, cy = W / 2, H / 2
    # the product box stays inside the canvas
    left = min(max(cx - pw / 2, 0), max(W - pw, 0))
    top = min(max(cy - ph / 2, 0), max(H - ph, 0))
    return Layout((W, H), scale, (int(round(left - x0 * scale)), int(round(top - y0 * scale))))


def _stretched(image: np.ndarray, size: tuple[int, int], offset: tuple[int, int]) -> np.ndarray:
    """The image on a canvas whose new area repeats its edge pixels, softened (what the model starts from)."""
    W, H = size
    h, w = image.shape[:2]
    ox, oy = offset
    pad = [max(0, oy), max(0, H - oy - h), max(0, ox), max(0, W - ox - w)]
    big = cv2.copyMakeBorder(image, *pad, borderType=cv2.BORDER_REPLICATE)
    big = big[max(0, -oy):max(0, -oy) + H, max(0, -ox):max(0, -ox) + W]
    blurred = cv2.GaussianBlur(big, (0, 0), sigmaX=max(2.0, 0.02 * max(W, H)))
    inside = np.zeros((H, W), bool)
    inside[max(0, oy):max(0, oy) + h, max(0, ox):max(0, ox) + w] = True
    return np.where(inside[..., None], big, blurred)


def _place(array: np.ndarray, layout: Layout, *, nearest: bool) -> np.ndarray:
    """``array`` scaled by the layout and pasted at its offset on an empty canvas (zeros), cropped to it."""
    W, H = layout.size
    if layout.scale != 1.0:
        h, w = array.shape[:2]
        size = (max(1, int(round(w * layout.scale))), max(1, int(round(h * layout.scale))))
        interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if layout.scale < 1 else cv2.INTER_CUBIC)
        array = cv2.resize(array, size, interpolation=interp)
    out = np.zeros((H, W) + array.shape[2:], array.dtype)
    ox, oy = layout.offset
    h, w = array.shape[:2]
    sx0, sy0 = max(0, -ox), max(0, -oy)
    dx0, dy0 = max(0, ox), max(0, oy)
    cw, ch = min(w - sx0, W - dx0), min(h - sy0, H - dy0)
    if cw > 0 and ch > 0:
        out[dy0:dy0 + ch, dx0:dx0 + cw] = array[sy0:sy0 + ch, sx0:sx0 + cw]
    return out


def on_canvas(request: GenerationRequest, cfg: Any) -> tuple[GenerationRequest, dict[str, Any] | None]:
    """The request laid out on the configured canvas (unchanged when there is none), and notes for info."""
    if not cfg.canvas:
        return request, None
    ref, mask = request.reference, request.mask
    product = (mask.data > 127).astype(np.uint8) * 255
    layout = plan_layout(product, cfg)
    src = ref.image
    if layout.scale != 1.0:
        h, w = src.shape[:2]
        size = (max(1, int(round(w * layout.scale))), max(1, int(round(h * layout.scale))))
        src = cv2.resize(src, size, interpolation=cv2.INTER_AREA if layout.scale < 1 else cv2.INTER_CUBIC)
    start = _stretched(src, layout.size, layout.offset)
    new_ref = replace(ref, image=np.ascontiguousarray(start),
                      alpha=None if ref.alpha is None else _place(ref.alpha, layout, nearest=True))
    new_mask = Mask(_place(product, layout, nearest=True), score=mask.score, label=mask.label,
                    feather=mask.feather, dilate=mask.dilate)
    notes = {"size": list(layout.size), "scale": round(layout.scale, 6), "offset": list(layout.offset),
             "placement": cfg.placement, "product_resampled": layout.scale != 1.0}
    return replace(request, reference=new_ref, mask=new_mask), notes

