"""A second, independent implementation of the integration fault kinds, for
``ecomforge bench fidelity --failures alternate``.

The benchmark's own integration faults (scenes.py) are one way to make each kind; a scorer tuned on
them can learn that way rather than the kind. These make the same 13 kinds differently, imitating how
real generators (Stable Diffusion inpainting, img2img, careless compositing) produce them:

- expansion: the product's outer band (base, side or top) is stretched outwards by 30-50 % of its
  size, slightly darker and softer, under the intact product: regrown product material (a longer base,
  a wider body).
- halo: the cut-out's mask was dilated by 2.5-5 px, so a ring of the source photo's own background
  (or a black/white premultiplication matte) comes along around the product; pushed to contrast
  with the scene where the two happen to match.
- seam: a box or an ellipse around the product is "regenerated": softer (VAE down/up-sampling), another
  exposure and white balance, another grain, with a near-hard boundary to the untouched scene.
- duplicate: a 45-70 % copy, maybe mirrored, slightly defocused and tinted to the scene, placed behind
  or beside the product (partly hidden or cut by the frame).
- bg-black: an exposure collapse: the scene at 5-10 % gain, vignetted, with coloured sensor noise.
- bg-flat: the whole scene replaced by one exactly uniform, coloured (never grey) fill.
- bg-noise: an undenoised sample: multi-octave coloured noise over a faint ghost of the scene.
- bg-posterised: CIELAB quantisation of a smoothed scene (few lightness bands, coarse chroma), or an
  ordered (Bayer) dither to 2-3 levels per channel.
- bg-saturated: a steep per-channel S tone curve with an exposure push, then CIELAB chroma doubled.
- blob: an irregular blob straddling the product's outline in which the picture is dragged towards the
  product, swirled by a smooth random field and blurred: a melted smear of product and scene.
- cut: the product (at 100-125 % of its size) placed so 35-55 % of its area lies beyond one side or a corner.
- tiny: the product at 6-12 % of the frame height, anywhere on the lower part of the frame.
- huge: the product's larger extent at 115-150 % of the frame, overflowing it.

Every function is ``fn(parts, rng) -> (image, mask)`` with ``parts`` as made by ``compose()``; all
randomness comes from ``rng``. The mask is the product's as a generator would report it: the original
product's mask for expansion, blob and duplicate (the generator believes the product is only there).
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from .scenes import Layout, place

__all__ = ["INTEGRATION_ALT", "NEEDS_PHOTO_SCENE_ALT"]


# --- helpers ------------------------------------------------------------------------------------------------

def _layers(shape: tuple[int, int], rgb: np.ndarray, alpha: np.ndarray, layout: Layout):
    """The cut-out as full-frame layers, with place()'s geometry: (rgb float32 HxWx3, alpha float32 HxW, crop rect)."""
    H, W = shape
    s = layout.height * H / rgb.shape[0]
    w, h = max(2, round(rgb.shape[1] * s)), max(2, round(rgb.shape[0] * s))
    top = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR).astype(np.float32)
    a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
    x, y = round(layout.cx * W - w / 2), round(layout.cy * H - h / 2)
    ox0, oy0, ox1, oy1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    full, fa, rect = np.zeros((H, W, 3), np.float32), np.zeros((H, W), np.float32), np.zeros((H, W), bool)
    if ox1 > ox0 and oy1 > oy0:
        full[oy0:oy1, ox0:ox1] = top[oy0 - y:oy1 - y, ox0 - x:ox1 - x]
        fa[oy0:oy1, ox0:ox1] = a[oy0 - y:oy1 - y, ox0 - x:ox1 - x]
        rect[oy0:oy1, ox0:ox1] = True
    return full, fa, rect


def _over(canvas: np.ndarray, top: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``top`` over ``canvas`` with alpha ``a`` (float)."""
    a3 = a[:, :, None]
    return top * a3 + canvas.astype(np.float32) * (1 - a3)


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _mask(a: np.ndarray) -> np.ndarray:
    return np.where(a > 0.5, 255, 0).astype(np.uint8)


def _box(m: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return 0, 0, m.shape[1], m.shape[0]
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int, channels: int = 1) -> np.ndarray:
    """A smooth random field (unit-ish std) from a ``cells``-per-side grid, bicubically upsampled."""
    H, W = shape
    grid = rng.normal(0, 1, (cells + 3, cells + 3, channels)).astype(np.float32)
    big = cv2.resize(grid, (W + W * 3 // cells, H + H * 3 // cells), interpolation=cv2.INTER_CUBIC)
    big = big.reshape(big.shape[0], big.shape[1], channels)
    oy, ox = (big.shape[0] - H) // 2, (big.shape[1] - W) // 2
    out = big[oy:oy + H, ox:ox + W]
    return out[:, :, 0] if channels == 1 else out


def _with_background(parts, background: np.ndarray):
    """The product pasted, as compose() does, onto another background."""
    _, rgb, alpha, layout = parts
    return place(background, rgb, alpha, layout)


# --- faults -------------------------------------------------------------------------------------------------

def expansion(parts, rng):
    """Stretch the product's outer band outwards: regrown product material beyond its outline."""
    bg, rgb, alpha, layout = parts
    H, W = bg.shape[:2]
    top, a, _ = _layers((H, W), rgb, alpha, layout)
    x0, y0, x1, y1 = _box(a > 0.5)
    room = {"down": (H - y1, y1 - y0), "up": (y0, y1 - y0), "left": (x0, x1 - x0), "right": (W - x1, x1 - x0)}
    order = [str(d) for d in rng.permutation(["down", "down", "left", "right", "up"])]
    frac = float(rng.uniform(0.3, 0.5))
    direction, best = order[0], -1.0
    for d in order:  # the first direction with room for the growth, else the roomiest
        space, extent = room[d]
        if space >= 0.8 * frac * extent:
            direction = d
            break
        if space / max(1, extent) > best:
            direction, best = d, space / max(1, extent)
    k = {"down": 0, "right": -1, "left": 1, "up": 2}[direction]  # rotate so the growth goes down
    rt, ra = np.ascontiguousarray(np.rot90(top, k)), np.ascontiguousarray(np.rot90(a, k))
    h, w = ra.shape
    _, ry0, _, ry1 = _box(ra > 0.5)
    extent = ry1 - ry0
    length = max(4, min(int(frac * extent), h - ry1 - 1))
    band = max(3, int(float(rng.uniform(0.18, 0.26)) * extent))
    ys = ry1 - band
    yy = np.arange(h, dtype=np.float32)
    src = np.where(yy < ys, yy, ys + (yy - ys) * band / (band + length)).astype(np.float32)
    src = np.where(yy >= ry1 + length, -10.0, src).astype(np.float32)  # nothing beyond the growth
    map_y = np.repeat(src[:, None], w, axis=1)
    map_x = np.repeat(np.arange(w, dtype=np.float32)[None, :], h, axis=0)
    ext = cv2.remap(rt, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    ext_a = cv2.remap(ra, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # Regrown material is a little softer and darker towards its end, as an inpainting model shades it.
    t = np.clip((yy - ry1) / max(1, length), 0, 1)[:, None, None]
    ext = cv2.GaussianBlur(ext, (0, 0), 0.8) * (1 - float(rng.uniform(0.08, 0.18)) * t)
    ext_a = cv2.GaussianBlur(ext_a, (0, 0), 0.8)
    ext, ext_a = np.rot90(ext, -k), np.rot90(ext_a, -k)
    out = _over(_over(bg, ext, ext_a), top, a)
    return _u8(out), _mask(a)


def halo(parts, rng):
    """A ring of the source photo's background (or a black/white matte) left around the cut-out."""
    bg, rgb, alpha, layout = parts
    H, W = bg.shape[:2]
    top, a, rect = _layers((H, W), rgb, alpha, layout)
    scale = H / 256
    r = max(2, round(float(rng.uniform(2.5, 5.0)) * scale))
    prod = (a > 0.5).astype(np.uint8)
    ring = cv2.dilate(prod, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    ring_a = cv2.GaussianBlur(ring.astype(np.float32), (0, 0), max(0.6, r / 4))
    # The old background: its own pixels inside the crop, a normalised-blur estimate beyond it.
    old = (rect & (a < 0.05)).astype(np.float32)
    colour = np.zeros((H, W, 3), np.float32)
    weight = np.zeros((H, W), np.float32)
    for sigma, d in ((3 * scale, 1), (10 * scale, 4), (40 * scale, 16)):  # wide blurs on a reduced copy (fast)
        num, den = top * old[:, :, None], old
        if d > 1:
            size = (max(2, W // d), max(2, H // d))
            num = cv2.resize(num, size, interpolation=cv2.INTER_AREA)
            den = cv2.resize(den, size, interpolation=cv2.INTER_AREA)
        num, den = cv2.GaussianBlur(num, (0, 0), sigma / d), cv2.GaussianBlur(den, (0, 0), sigma / d)
        if d > 1:
            num = cv2.resize(num, (W, H), interpolation=cv2.INTER_LINEAR)
            den = cv2.resize(den, (W, H), interpolation=cv2.INTER_LINEAR)
        take = (weight < 1e-3) & (den > 1e-3)
        colour[take] = num[take] / den[take][:, None]
        weight[take] = 1
    colour = np.where(old[:, :, None] > 0, 0.5 * top + 0.5 * colour, colour)
    if rng.random() < 0.35 or weight.max() == 0 or not old.any():  # a premultiplication matte instead
        colour = np.full((H, W, 3), 250.0 if rng.random() < 0.5 else 18.0, np.float32)
    sel = (ring > 0) & (prod == 0)
    if sel.any():  # where the fringe happens to match the scene, push it bright or dark so it shows
        lab_r = cv2.cvtColor(_u8(colour), cv2.COLOR_RGB2LAB)[sel].astype(np.float32).mean(axis=0)
        lab_s = cv2.cvtColor(bg, cv2.COLOR_RGB2LAB)[sel].astype(np.float32).mean(axis=0)
        if np.linalg.norm(lab_r - lab_s) < 35:
            target = 250.0 if lab_s[0] < 140 else 15.0
            colour = colour * 0.3 + target * 0.7
    out = _over(_over(bg, colour, ring_a), top, a)
    return _u8(out), _mask(a)


def seam(parts, rng):
    """A regenerated box or ellipse around the product: softer, other exposure, white balance and grain."""
    bg, rgb, alpha, layout = parts
    H, W = bg.shape[:2]
    _, a, _ = _layers((H, W), rgb, alpha, layout)
    prod = (a > 0.5).astype(np.uint8)
    x0, y0, x1, y1 = _box(prod)
    ext = max(x1 - x0, y1 - y0)
    region = np.zeros((H, W), np.uint8)
    if rng.random() < 0.5:  # the inpainting box, padded around the product
        p = [int(float(rng.uniform(0.14, 0.3)) * ext) for _ in range(4)]
        region[max(0, y0 - p[1]):min(H, y1 + p[3]), max(0, x0 - p[0]):min(W, x1 + p[2])] = 1
    else:  # an ellipse around the product's box
        pad = float(rng.uniform(0.2, 0.35)) * ext
        axes = (round((x1 - x0) / 2 * 1.15 + pad), round((y1 - y0) / 2 * 1.15 + pad))
        cv2.ellipse(region, (round((x0 + x1) / 2), round((y0 + y1) / 2)), axes, float(rng.uniform(-10, 10)),
                    0, 360, 1, -1)
    soft = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 0.8)
    f = bg.astype(np.float32)
    d = float(rng.uniform(2.5, 4.0))  # VAE-like softness
    small = cv2.resize(f, (max(2, round(W / d)), max(2, round(H / d))), interpolation=cv2.INTER_AREA)
    regen = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    mean = float(f[region > 0].mean()) if region.any() else 128.0
    sign = -1 if mean > 170 else (1 if mean < 80 else (1 if rng.random() < 0.5 else -1))
    gain = 1 + sign * float(rng.uniform(0.13, 0.24))
    wb = float(rng.uniform(0.05, 0.1)) * (1 if rng.random() < 0.5 else -1)
    regen = regen * gain * np.float32([1 + wb, 1.0, 1 - wb])
    regen += rng.normal(0, float(rng.uniform(2.5, 5.0)), (H, W, 1)).astype(np.float32)
    out = _over(f, regen, soft)
    return _with_background(parts, _u8(out))


def duplicate(parts, rng):
    """A second, smaller copy of the product (maybe mirrored, defocused, partly hidden) elsewhere."""
    bg, rgb, alpha, layout = parts
    H, W = bg.shape[:2]
    _, a_main, _ = _layers((H, W), rgb, alpha, layout)
    main = a_main > 0.5
    scale = float(rng.uniform(0.45, 0.7))
    c_rgb, c_alpha = (rgb[:, ::-1].copy(), alpha[:, ::-1].copy()) if rng.random() < 0.5 else (rgb, alpha)
    hf = layout.height * scale
    wf = hf * rgb.shape[1] / max(1, rgb.shape[0]) * H / W
    best, best_score = None, -1.0
    for _ in range(16):
        cx = float(rng.uniform(wf * 0.2, 1 - wf * 0.2))
        cy = float(rng.uniform(max(0.15, hf * 0.3), min(0.88, 1 - hf * 0.2)))
        lay = Layout(cx, cy, hf)
        _, a, _ = _layers((H, W), c_rgb, c_alpha, lay)
        area = float((cv2.resize(c_alpha, (max(2, round(c_alpha.shape[1] * hf * H / c_alpha.shape[0])),
                                           max(2, round(hf * H)))) > 0.5).sum())
        visible = float(((a > 0.5) & ~main).sum()) / max(1.0, area)
        score = 1.0 - abs(visible - 0.8)  # mostly visible, a little hidden or cut is fine
        if visible >= 0.55 and visible <= 0.97:
            best = lay
            break
        if score > best_score:
            best, best_score = lay, score
    # Defocus and tint the copy toward the scene, as a generator blends a repeated object in.
    tint = bg.reshape(-1, 3).astype(np.float32).mean(axis=0)
    k = float(rng.uniform(0.1, 0.2))
    crop_to_frame = max(hf * H / rgb.shape[0], 1e-3)  # the blur is given in frame pixels, applied to the crop
    soft = cv2.GaussianBlur(c_rgb.astype(np.float32), (0, 0), float(rng.uniform(0.4, 1.0)) / crop_to_frame)
    c_rgb2 = _u8(soft * (1 - k) + tint * k)
    canvas, _ = place(bg, c_rgb2, c_alpha, best)
    return _with_background(parts, canvas)


def bg_black(parts, rng):
    """An exposure collapse: the scene at 5-10 % gain, vignetted, with coloured sensor noise."""
    bg = parts[0]
    H, W = bg.shape[:2]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r2 = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2
    vignette = np.clip(1 - float(rng.uniform(0.4, 0.7)) * r2 / 2, 0, 1)[:, :, None]
    dark = bg.astype(np.float32) * float(rng.uniform(0.05, 0.1)) * vignette + float(rng.uniform(2, 6))
    dark += rng.normal(0, float(rng.uniform(1.2, 2.5)), (H, W, 3)).astype(np.float32)
    return _with_background(parts, _u8(dark))


def bg_flat(parts, rng):
    """The whole scene replaced by one exactly uniform, coloured (never grey) fill."""
    bg = parts[0]
    hue, sat, val = int(rng.integers(0, 180)), int(rng.uniform(0.35, 0.7) * 255), int(rng.uniform(0.4, 0.85) * 255)
    hsv = np.uint8([[[hue, sat, val]]])
    colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return _with_background(parts, np.broadcast_to(colour, bg.shape).copy())


def bg_noise(parts, rng):
    """An undenoised sample: multi-octave coloured noise over a faint ghost of the scene."""
    bg = parts[0]
    H, W = bg.shape[:2]
    fine = rng.normal(0, 1, (H, W, 3)).astype(np.float32)
    mid = _smooth_field(rng, (H, W), max(2, W // 8), 3)
    low = _smooth_field(rng, (H, W), 6, 3)
    n = 0.6 * fine + 0.6 * mid / max(1e-3, float(mid.std())) + 0.5 * low / max(1e-3, float(low.std()))
    n /= max(1e-3, float(n.std()))
    ghost = float(rng.uniform(0.1, 0.25))
    out = ghost * bg.astype(np.float32) + (1 - ghost) * (128 + float(rng.uniform(45, 60)) * n)
    return _with_background(parts, _u8(out))


_BAYER4 = np.float32([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16 + 1 / 32


def bg_posterised(parts, rng):
    """The scene quantised in CIELAB after smoothing (few bands), or ordered-dithered to 2-3 levels per channel."""
    bg = parts[0]
    H, W = bg.shape[:2]
    if rng.random() < 0.5:
        smooth = cv2.bilateralFilter(cv2.medianBlur(bg, 5), 7, 40, 7)
        lab = cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB).astype(np.float32)
        lstep = 255 / int(rng.integers(4, 6))
        cstep = float(rng.uniform(18, 28))
        lab[..., 0] = (np.floor(lab[..., 0] / lstep) + 0.5) * lstep
        lab[..., 1:] = 128 + np.round((lab[..., 1:] - 128) / cstep) * cstep
        out = cv2.cvtColor(_u8(lab), cv2.COLOR_LAB2RGB)
    else:
        levels = int(rng.integers(2, 4))
        cell = 2 if H >= 200 else 1  # dither cells of 2 px so the pattern reads at benchmark size
        thr = np.kron(_BAYER4, np.ones((cell, cell), np.float32))
        thr = np.tile(thr, (H // thr.shape[0] + 1, W // thr.shape[1] + 1))[:H, :W, None]
        f = bg.astype(np.float32) / 255 * (levels - 1)
        out = _u8(np.clip(np.floor(f + thr), 0, levels - 1) / (levels - 1) * 255)
    return _with_background(parts, out)


def bg_saturated(parts, rng):
    """A steep per-channel S tone curve with an exposure push, then CIELAB chroma doubled: a blown, garish scene."""
    bg = parts[0]
    f = bg.astype(np.float32) / 255 * float(rng.uniform(1.25, 1.5))
    k = float(rng.uniform(7, 10))

    def curve(v):
        return 1 / (1 + np.exp(-k * (v - 0.5)))

    f = (curve(f) - curve(np.float32(0))) / (curve(np.float32(1.5)) - curve(np.float32(0)))
    lab = cv2.cvtColor(np.clip(f, 0, 1).astype(np.float32), cv2.COLOR_RGB2LAB)
    lab[..., 1:] *= float(rng.uniform(1.8, 2.4))
    out = np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 0, 1) * 255
    return _with_background(parts, _u8(out))


def blob(parts, rng):
    """A melted smear straddling the product's outline: picture dragged to the product, swirled and blurred."""
    bg, rgb, alpha, layout = parts
    H, W = bg.shape[:2]
    image, mask = place(bg, rgb, alpha, layout)
    prod = (mask > 0).astype(np.uint8)
    x0, y0, x1, y1 = _box(prod)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ext = max(x1 - x0, y1 - y0)
    edge = prod - cv2.erode(prod, np.ones((3, 3), np.uint8))
    ys, xs = np.nonzero(edge)
    inside = (xs > 4) & (xs < W - 5) & (ys > 4) & (ys < H - 5)
    if inside.any():
        ys, xs = ys[inside], xs[inside]
    if len(xs) == 0:
        ys, xs = np.array([int(cy)]), np.array([int(cx)])
    i = int(rng.integers(len(xs)))
    px, py = float(xs[i]), float(ys[i])
    r = float(rng.uniform(0.2, 0.3)) * ext
    vx, vy = px - cx, py - cy
    norm = max(1e-3, float(np.hypot(vx, vy)))
    bx, by = px + 0.3 * r * vx / norm, py + 0.3 * r * vy / norm  # straddle the outline, a bit outside
    theta = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    wobble = np.zeros_like(theta)
    for harmonic in (2, 3, 5):
        wobble += float(rng.normal(0, 0.12)) * np.cos(harmonic * theta + float(rng.uniform(0, 2 * np.pi)))
    rad = r * np.clip(1 + wobble, 0.55, 1.5)
    pts = np.stack([bx + rad * np.cos(theta) * float(rng.uniform(0.8, 1.25)), by + rad * np.sin(theta)], axis=1)
    shape = np.zeros((H, W), np.uint8)
    cv2.fillPoly(shape, [np.round(pts).astype(np.int32)], 1)
    w = cv2.GaussianBlur(shape.astype(np.float32), (0, 0), max(1.0, r / 6))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    swirl = _smooth_field(rng, (H, W), max(3, int(W / max(8.0, r))), 2) * (0.35 * r)
    pull = float(rng.uniform(0.35, 0.55))
    map_x = xx + w * ((cx - xx) * pull * 0.5 + swirl[..., 0])
    map_y = yy + w * ((cy - yy) * pull * 0.5 + swirl[..., 1] - 0.25 * r)  # and it drips: sample from above
    smear = cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REFLECT_101)
    smear = cv2.GaussianBlur(smear.astype(np.float32), (0, 0), max(1.0, r / 7))
    return _u8(_over(image, smear, w)), mask


def cut(parts, rng):
    """The product, at 100-125 % of its size, placed so 35-55 % of its area lies beyond one side or a corner."""
    bg, rgb, alpha, layout = parts
    H, W = bg.shape[:2]
    height = min(0.8, layout.height * float(rng.uniform(1.0, 1.25)))
    aspect = rgb.shape[1] / max(1, rgb.shape[0])
    hf, wf = height, height * aspect * H / W
    side = int(rng.integers(8))  # 0 left, 1 right, 2 top, 3 bottom, 4-7 corners
    cx0, cy0 = float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.45, 0.62))
    target = float(rng.uniform(0.35, 0.55))
    _, a, _ = _layers((H, W), rgb, alpha, Layout(0.5, 0.5, height))
    total = max(1.0, float((a > 0.5).sum()))  # (a product larger than the frame is cut anyway)

    def at(f: float) -> Layout:
        cx, cy = cx0, cy0
        if side in (0, 4, 6):
            cx = wf * (0.5 - f)
        if side in (1, 5, 7):
            cx = 1 - wf * (0.5 - f)
        if side in (2, 4, 5):
            cy = hf * (0.5 - f)
        if side in (3, 6, 7):
            cy = 1 - hf * (0.5 - f)
        if side < 2:  # the other axis stays inside
            cy = float(np.clip(cy, hf / 2, 1 - hf / 2)) if hf < 1 else 0.5
        if side in (2, 3):
            cx = float(np.clip(cx, wf / 2, 1 - wf / 2)) if wf < 1 else 0.5
        return Layout(cx, cy, height)

    lo, hi = 0.0, 0.9  # how far beyond the edge (a fraction of the extent), found by bisection on the area lost
    for _ in range(10):
        mid = (lo + hi) / 2
        _, a, _ = _layers((H, W), rgb, alpha, at(mid))
        lost = 1 - float((a > 0.5).sum()) / total
        lo, hi = (mid, hi) if lost < target else (lo, mid)
    return place(bg, rgb, alpha, at((lo + hi) / 2))


def tiny(parts, rng):
    """The product at 6-12 % of the frame height, anywhere on the lower part of the frame."""
    bg, rgb, alpha, _ = parts
    return place(bg, rgb, alpha, Layout(float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.45, 0.85)),
                                        float(rng.uniform(0.06, 0.12))))


def huge(parts, rng):
    """The product's larger extent at 115-150 % of the frame, overflowing it."""
    bg, rgb, alpha, _ = parts
    H, W = bg.shape[:2]
    aspect = rgb.shape[1] / max(1, rgb.shape[0]) * H / W
    rel = float(rng.uniform(1.15, 1.5))
    height = rel / max(1.0, aspect)
    return place(bg, rgb, alpha, Layout(float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.4, 0.6)), height))


INTEGRATION_ALT: dict[str, Callable] = {
    "expansion": expansion,
    "halo": halo,
    "seam": seam,
    "duplicate": duplicate,
    "bg-black": bg_black,
    "bg-flat": bg_flat,
    "bg-noise": bg_noise,
    "bg-posterised": bg_posterised,
    "bg-saturated": bg_saturated,
    "blob": blob,
    "cut": cut,
    "tiny": tiny,
    "huge": huge,
}
"""The integration faults made another way, in report order: ``fn(parts, rng) -> (image, mask)``."""

NEEDS_PHOTO_SCENE_ALT: frozenset[str] = frozenset({"bg-posterised", "bg-saturated"})
"""Kinds that only show on a photo scene with content: a plain backdrop has no detail to band and no colour to
push (a posterised or saturated grey sweep is still a plain sweep)."""
