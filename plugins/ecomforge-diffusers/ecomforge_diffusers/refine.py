"""The refine pass: the regenerated region repainted again, at low strength, at the output resolution.

A background generated at the model's size (512 for SD-1.5) and scaled up to a 2000 px
storefront image is soft beside the photographed product. Repainting it at ``refine_side``
adds detail at that size. Beyond ``refine_tile`` px it runs on overlapping tiles of that size
(the model sees the resolution it was trained at; memory stays bounded), blended with linear
ramps over the overlaps, every tile with the candidate's own seed.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import imageops
from .calls import run_pipeline


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets (multiples of 8) of tiles of ``tile`` px covering ``length`` px with ``overlap``."""
    if length <= tile:
        return [0]
    stride = max(8, (tile - overlap) // 8 * 8)
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(starts))


def _ramp(w: int, h: int, overlap: int) -> np.ndarray:
    """Blend weights of one tile: 1 inside, falling linearly to a small floor over ``overlap`` at each edge."""
    def axis(n: int) -> np.ndarray:
        ramp = np.ones(n, np.float32)
        k = min(overlap, n // 2)
        if k:
            edge = np.linspace(0.05, 1.0, k, dtype=np.float32)
            ramp[:k], ramp[n - k:] = edge, edge[::-1]
        return ramp
    return np.outer(axis(h), axis(w))


def _tiled(pipe: Any, cfg: Any, embeds: Any, negative: Any, crops: list[np.ndarray], region: np.ndarray,
           seeds: list[int], steps: int, image_prompt: Any, tile: int) -> tuple[list[np.ndarray], dict]:
    h, w = region.shape
    overlap = tile // 4
    acc = [np.zeros((h, w, 3), np.float32) for _ in crops]
    weight = np.zeros((h, w), np.float32)
    info: dict[str, Any] = {"tiles": 0}
    for ty in tile_starts(h, tile, overlap):
        for tx in tile_starts(w, tile, overlap):
            tw, th = min(tile, w - tx), min(tile, h - ty)
            part = region[ty:ty + th, tx:tx + tw]
            if not part.any():
                continue
            tiles = [np.ascontiguousarray(c[ty:ty + th, tx:tx + tw]) for c in crops]
            result = run_pipeline(pipe, cfg, embeds, negative, tiles, part, seeds, strength=cfg.refine_strength,
                                  size=(tw, th), steps=steps, image_prompt=image_prompt)
            ramp = _ramp(tw, th, overlap)
            for a, image in zip(acc, result.images):
                a[ty:ty + th, tx:tx + tw] += image * 255 * ramp[..., None]
            weight[ty:ty + th, tx:tx + tw] += ramp
            info["tiles"] += 1
    outs = []
    for a, c in zip(acc, crops):
        blended = np.where(weight[..., None] > 0, a / np.maximum(weight, 1e-6)[..., None], c.astype(np.float32))
        outs.append(np.clip(blended, 0, 255).round().astype(np.uint8))
    return outs, info


def refine_pass(pipe: Any, cfg: Any, embeds: Any, negative: Any, images: list[np.ndarray], region: np.ndarray,
                box: tuple[int, int, int, int], seeds: list[int],
                image_prompt: np.ndarray | None) -> tuple[list[np.ndarray], dict]:
    """Repaint ``region`` of each image at ``cfg.refine_side`` (tiled beyond ``cfg.refine_tile``)."""
    x0, y0, x1, y1 = box
    rw, rh = imageops.generation_size(x1 - x0, y1 - y0, cfg.refine_side)
    crops = [imageops.resize(np.ascontiguousarray(o[y0:y1, x0:x1]), (rw, rh)) for o in images]
    region_r = imageops.resize(region[y0:y1, x0:x1], (rw, rh), nearest=True)
    steps = max(cfg.steps, math.ceil(1 / cfg.refine_strength))  # at least one step survives the strength
    tile = getattr(cfg, "refine_tile", None)
    large = rw * rh > 1024 * 1024
    if tile and max(rw, rh) > tile:
        fine, info = _tiled(pipe, cfg, embeds, negative, crops, region_r, seeds, steps, image_prompt, tile)
    else:
        if large:  # the VAE decodes a big image in tiles so memory stays bounded
            pipe.vae.enable_tiling()
        try:
            result = run_pipeline(pipe, cfg, embeds, negative, crops, region_r, seeds,
                                  strength=cfg.refine_strength, size=(rw, rh), steps=steps, image_prompt=image_prompt)
        finally:
            if large:
                pipe.vae.disable_tiling()
        fine, info = [imageops.to_uint8(i) for i in result.images], {"vae_tiling": large, **result.info}
    inside = region[y0:y1, x0:x1, None] > 0
    outs = []
    for o, f in zip(images, fine):
        o = o.copy()
        o[y0:y1, x0:x1] = np.where(inside, imageops.resize(f, (x1 - x0, y1 - y0)), o[y0:y1, x0:x1])
        outs.append(o)
    return outs, {"size": [rw, rh], "strength": cfg.refine_strength, "tile": tile, **info}
