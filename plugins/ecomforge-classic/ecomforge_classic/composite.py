"""The ``composite`` generator: the product cut out through its mask and placed on a new background."""
from __future__ import annotations

from typing import Annotated, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from ecomforge.imaging.masks import bbox
from ecomforge.imaging.paste import composite, paste_alpha
from ecomforge.pathspec import PathField
from ecomforge.stages import Generator, StageConfig
from ecomforge.types import Candidate, GenerationRequest

from . import backgrounds

# A colour or gradient spec, or else a photo file (a path the server checks).
Background = Annotated[str, PathField("image", literal=r"#?[0-9a-fA-F]{6}|(linear|radial):.*")]


class CompositeConfig(StageConfig):
    """How the cut-out product is placed."""

    background: Background = Field(default="#f4efe6", description="'#rrggbb', 'linear:#top:#bottom', 'radial:#centre:#edge', or a photo file.")
    size: tuple[int, int] | None = Field(default=None, description="Output [width, height] in px; default: the reference's size.")
    placement: Literal["center", "bottom"] = Field(default="center", description="Centre the product, or stand it on a floor line near the bottom.")
    position: tuple[float, float] | None = Field(default=None, description="Product centre as [x, y] fractions of the canvas (overrides placement).")
    scale: float | None = Field(default=0.72, gt=0, le=1, description="Product's bounding box as a fraction of the canvas (fit); null keeps native pixels, bit-exact.")
    padding: int = Field(default=16, ge=0, le=4096, description="Minimum margin between product and canvas edge, px.")
    shadow: float = Field(default=0.35, ge=0, le=1, description="Opacity of the soft contact shadow (0 = none).")
    shadow_blur: int = Field(default=18, ge=0, le=400, description="Softness of the shadow, px.")
    shadow_offset: tuple[int, int] = Field(default=(0, 6), description="Shadow offset [dx, dy] in px.")
    jitter: float = Field(default=0.0, ge=0, le=1, description="Seeded variation of position, scale and background hue (0 = every seed alike).")

    @field_validator("background")
    @classmethod
    def _background(cls, v: str) -> str:
        return backgrounds.check_spec(v)

    @field_validator("size")
    @classmethod
    def _size(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not all(16 <= x <= 8192 for x in v):
            raise ValueError("each side must be between 16 and 8192 px")
        return v


class CompositeGenerator(Generator):
    """Place the photographed product on a new background with a soft contact shadow (offline)."""

    name = "composite"
    Config = CompositeConfig

    @classmethod
    def work_pixels(cls, config: CompositeConfig, reference: tuple[int, int]) -> int:
        """The canvas: ``size``, else the reference's."""
        w, h = config.size or reference
        return w * h

    def check(self) -> None:
        """A background photo the recipe names must be there before any work (a catalogue row's or a sweep
        point's is found when its product runs, and fails that product only)."""
        backgrounds.check_photo(self.config.background, self.base_dir)

    def generate(self, request: GenerationRequest) -> list[Candidate]:
        """One composite per seed; the seed drives the jitter only."""
        return [self._one(request, seed) for seed in request.seeds]

    def _one(self, request: GenerationRequest, seed: int) -> Candidate:
        cfg: CompositeConfig = request.config
        ref, mask = request.reference, request.mask
        alpha = paste_alpha(mask.data, dilate_px=mask.dilate, feather_px=mask.feather)
        box = bbox(alpha)
        if box is None:
            from ecomforge.errors import InputError

            raise InputError(f"{ref.source}: the mask is empty, nothing to composite")
        x0, y0, x1, y1 = box
        product, a = ref.image[y0:y1, x0:x1], alpha[y0:y1, x0:x1]
        W, H = cfg.size or ref.size
        rng = np.random.default_rng(seed)
        j = cfg.jitter
        scale = cfg.scale
        info: dict = {}
        if scale is not None:
            room_w, room_h = max(1, W - 2 * cfg.padding), max(1, H - 2 * cfg.padding)
            s = scale * (1 + j * rng.uniform(-0.1, 0.1)) if j else scale
            f = min(s * W / product.shape[1], s * H / product.shape[0], room_w / product.shape[1], room_h / product.shape[0])
            nw, nh = max(1, round(product.shape[1] * f)), max(1, round(product.shape[0] * f))
            interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
            product = cv2.resize(product, (nw, nh), interpolation=interp)
            a = cv2.resize(a, (nw, nh), interpolation=cv2.INTER_LINEAR)
            info["resized"] = round(f, 4)
        ph, pw = a.shape
        if cfg.position is not None:
            cx, cy = cfg.position[0] * W, cfg.position[1] * H
        elif cfg.placement == "bottom":
            cx, cy = W / 2, H - cfg.padding - ph / 2 - 0.04 * H
        else:
            cx, cy = W / 2, H / 2
        if j:
            cx += j * rng.uniform(-0.08, 0.08) * W
            cy += j * rng.uniform(-0.05, 0.05) * H
        left = int(round(min(max(cx - pw / 2, min(cfg.padding, W - pw)), max(W - pw - cfg.padding, 0))))
        top = int(round(min(max(cy - ph / 2, min(cfg.padding, H - ph)), max(H - ph - cfg.padding, 0))))
        if "resized" not in info:  # native pixels: the product moved by a whole-pixel translation
            info["translate"] = [left - x0, top - y0]
        hue = float(rng.uniform(-25, 25)) * j if j else 0.0
        canvas = backgrounds.render(cfg.background, W, H, base_dir=self.base_dir, hue_shift=hue)
        full_alpha = np.zeros((H, W), np.uint8)
        full_prod = np.zeros((H, W, 3), np.uint8)
        _blit(full_alpha, a, left, top)
        _blit(full_prod, product, left, top)
        if cfg.shadow > 0:
            canvas = _contact_shadow(canvas, full_alpha, cfg)
        out = composite(full_prod, canvas, full_alpha)
        # params are exactly the config (so a record feeds back as a recipe); what the seed's jitter
        # resolved to (where the product landed, the hue shift) is derived, and goes in info.
        info.update({"placed_at": [round((left + pw / 2) / W, 4), round((top + ph / 2) / H, 4)],
                     "hue_shift": round(hue, 3)})
        return Candidate(image=out, seed=seed, params=cfg.model_dump(mode="json"), plugin=self.name, models={},
                         mask=np.where(full_alpha >= 128, 255, 0).astype(np.uint8), info=info)


def _blit(dst: np.ndarray, src: np.ndarray, left: int, top: int) -> None:
    """Copy ``src`` into ``dst`` at (left, top), clipped to ``dst``."""
    h, w = src.shape[:2]
    H, W = dst.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + w, W), min(top + h, H)
    if x1 > x0 and y1 > y0:
        dst[y0:y1, x0:x1] = src[y0 - top:y1 - top, x0 - left:x1 - left]


def _contact_shadow(canvas: np.ndarray, alpha: np.ndarray, cfg: CompositeConfig) -> np.ndarray:
    """Darken the background under the product: a flattened ellipse at its base plus a faint drop shadow."""
    H, W = alpha.shape
    ys, xs = np.nonzero(alpha > 127)
    if len(xs) == 0:
        return canvas
    base_y, x_lo, x_hi = ys.max(), xs.min(), xs.max()
    shade = np.zeros((H, W), np.float32)
    centre = (int((x_lo + x_hi) / 2 + cfg.shadow_offset[0]), int(base_y + cfg.shadow_offset[1] * 0.3))
    axes = (max(1, int((x_hi - x_lo) * 0.48)), max(1, int(max(3, (x_hi - x_lo) * 0.06))))
    cv2.ellipse(shade, centre, axes, 0, 0, 360, 1.0, -1)
    drop = np.zeros((H, W), np.float32)
    M = np.float32([[1, 0, cfg.shadow_offset[0]], [0, 1, cfg.shadow_offset[1]]])
    drop = cv2.warpAffine((alpha / 255.0).astype(np.float32), M, (W, H))
    k = max(1, cfg.shadow_blur)
    shade = cv2.GaussianBlur(shade, (0, 0), k * 0.6) * 0.8 + cv2.GaussianBlur(drop, (0, 0), k) * 0.35
    shade = np.clip(shade, 0, 1) * cfg.shadow
    out = canvas.astype(np.float32) * (1 - shade[..., None] * 0.85)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
