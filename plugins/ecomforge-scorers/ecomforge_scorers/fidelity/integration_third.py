"""A third, independent set of integration faults: ``ecomforge bench fidelity --failures third``.

Written blind (without seeing the scorers, their documentation, their figures or the other fault sets) and
measured once, as an unseen test of whether the integration scorers generalise. Every fault re-renders a
clean composite's parts (``compose()`` in scenes.py: background, product RGB crop, feathered alpha, layout)
with ONE thing wrong, imitating how a real generator (Stable Diffusion inpainting / outpainting, img2img,
careless background removal and compositing) produces it. Form and magnitude vary with ``rng`` (the only
source of randomness, so each fault is deterministic); magnitudes are meant to be a clear human reject.

Each is ``fn(parts, rng) -> (image uint8 RGB, mask uint8 0/255)``; the mask is what the generator reports:
the pasted product's mask (for expansion, blob and duplicate the original product's, since the generator
believes the product is only there).

Mechanisms:
- expansion: the product's own material regrown past its outline on one or two sides: an outer band of the
  product remapped (extruded) outward, a lobe filled with the product reflected about its edge, or its
  edge colours streaked outward over a wavy length; no shadow, no change to the reported mask.
- halo: a matting fringe from a loose alpha (dilated 2-6 px, unevenly along the outline) that carries the
  photo's ORIGINAL background (real crop pixels, extrapolated past the crop), a white studio fringe, or a
  thinner dark premultiplied-alpha rim; a form that would not stand out from the scene there is skipped.
- seam: an inpaint region (padded box or blobby dilation of the product) regenerated with a different
  exposure / white balance / sharpness / grain and sometimes a few pixels of misregistration, hard-edged
  (on a studio backdrop: exposure, sometimes white balance).
- duplicate: a second copy, resized 45-115 %, maybe mirrored, relit and softened, standing beside the
  product on the same floor line, maybe cut by the frame or partly behind the product.
- bg-black: the scene crushed to near black (dim remnant, tinted near-black with vignette, or black static).
- bg-flat: the scene collapsed to a featureless fill: its mean, a random colour, or a 2x2 smooth wash.
- bg-noise: latent-grid colour blotches, "fried" over-sharpened CFG texture with chroma noise, or static.
- bg-posterised: few-colour k-means palette, per-channel level quantisation, or smoothed luminance bands.
- bg-saturated: saturation pushed x3-5, exposure blown to clipped white, or per-channel contrast burn.
- blob: a shaded, gooey melted mass (warped, blurred product/scene colours), a flatter smudge, or a drip
  running down from the product, always overlapping its outline.
- cut: the product pushed 30-60 % past one frame edge (top, bottom, left or right).
- tiny: the product's long side 7-16 % of the frame, anywhere.
- huge: the product's long side 125-180 % of the frame, overflowing it.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from ecomforge.imaging.masks import bbox, dilate

from .scenes import Layout, place

# ---------------------------------------------------------------------------------------------- helpers

def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _geometry(rgb: np.ndarray, layout: Layout, H: int, W: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the product's resized crop in the frame, exactly as ``place`` computes them."""
    s = layout.height * H / rgb.shape[0]
    w, h = max(2, round(rgb.shape[1] * s)), max(2, round(rgb.shape[0] * s))
    return round(layout.cx * W - w / 2), round(layout.cy * H - h / 2), w, h


def _resized(rgb: np.ndarray, alpha: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    s = w / rgb.shape[1]
    top = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR).astype(np.float32)
    return top, cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def _to_frame(crop: np.ndarray, x: int, y: int, H: int, W: int) -> np.ndarray:
    """Paste an (h, w[, c]) float array at (x, y) into a zero frame, clipped."""
    out = np.zeros((H, W) + crop.shape[2:], np.float32)
    h, w = crop.shape[:2]
    ox0, oy0, ox1, oy1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if ox1 > ox0 and oy1 > oy0:
        out[oy0:oy1, ox0:ox1] = crop[oy0 - y:oy1 - y, ox0 - x:ox1 - x]
    return out


def _layer(rgb, alpha, layout, H, W):
    """Full-frame float product layer (H, W, 3) and alpha (H, W), aligned with ``place``."""
    x, y, w, h = _geometry(rgb, layout, H, W)
    top, a = _resized(rgb, alpha, w, h)
    return _to_frame(top, x, y, H, W), _to_frame(a, x, y, H, W)


def _over(base: np.ndarray, top: np.ndarray, a: np.ndarray) -> np.ndarray:
    a3 = a[:, :, None] if a.ndim == 2 else a
    return top * a3 + base.astype(np.float32) * (1 - a3)


def _smooth_noise(rng, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1] with about ``cells`` blobs across the long side."""
    g = rng.standard_normal((max(2, cells * h // max(h, w) + 2), max(2, cells * w // max(h, w) + 2))).astype(np.float32)
    n = cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
    return n / max(1e-6, float(np.abs(n).max()))


def _blob(H, W, cx, cy, rx, ry, rng, wobble=0.3, angle=0.0, soft=1.2) -> np.ndarray:
    """A soft irregular blob (float 0..1): an ellipse whose radius wanders with a few random harmonics."""
    t = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    r = np.ones_like(t)
    for k in range(2, 6):
        r += wobble / k * rng.uniform(0.3, 1.0) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    r = np.maximum(r, 0.35)
    px, py = rx * r * np.cos(t), ry * r * np.sin(t)
    ca, sa = np.cos(angle), np.sin(angle)
    pts = np.stack([cx + ca * px - sa * py, cy + sa * px + ca * py], 1)
    m = np.zeros((H, W), np.uint8)
    cv2.fillPoly(m, [np.rint(pts * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    b = m.astype(np.float32) / 255
    return cv2.GaussianBlur(b, (0, 0), soft) if soft > 0 else b


def _is_flat(background: np.ndarray) -> bool:
    """A studio backdrop (no content to show blur, grain or misregistration), not a photo scene."""
    g = cv2.cvtColor(background, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(g, cv2.CV_32F)).mean()) < 6 and float(g.std()) < 20


def _mask_of(parts) -> np.ndarray:
    background, rgb, alpha, layout = parts
    return place(background, rgb, alpha, layout)[1]


def _product_on(canvas, parts) -> tuple[np.ndarray, np.ndarray]:
    """The unchanged product pasted onto a (degenerate or edited) canvas, as the benign composite does."""
    _, rgb, alpha, layout = parts
    return place(_u8(canvas), rgb, alpha, layout)


# ---------------------------------------------------------------------------------------------- expansion

def _extrude(top, a, box, side, length, rng):
    """Remap the outer band of the product outward: its edge material stretched past the outline."""
    H, W = a.shape
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    map_x, map_y = xs.copy(), ys.copy()
    wob = _smooth_noise(rng, H, W, 4) * 0.25  # the growth's outer edge is not straight
    if side in ("top", "bottom"):
        band = max(3.0, (y1 - y0) * rng.uniform(0.12, 0.25))
        L = length * (1 + wob)
        k = (band + L) / band  # stretch factor of the band
        if side == "top":
            edge = y0 + band
            sel = ys < edge
            map_y[sel] = edge - (edge - ys[sel]) / k[sel]
        else:
            edge = y1 - band
            sel = ys > edge
            map_y[sel] = edge + (ys[sel] - edge) / k[sel]
    else:
        band = max(3.0, (x1 - x0) * rng.uniform(0.12, 0.25))
        L = length * (1 + wob)
        k = (band + L) / band
        if side == "left":
            edge = x0 + band
            sel = xs < edge
            map_x[sel] = edge - (edge - xs[sel]) / k[sel]
        else:
            edge = x1 - band
            sel = xs > edge
            map_x[sel] = edge + (xs[sel] - edge) / k[sel]
    t2 = cv2.remap(top, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a2 = cv2.remap(a, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return t2, a2


def _reflect_lobe(top, a, box, side, length, rng):
    """A lobe grown on one side, filled with the product reflected about its edge (texture continues)."""
    H, W = a.shape
    x0, y0, x1, y1 = box
    binary = a > 0.5
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    if side in ("left", "right"):
        rows = binary.any(1)
        idx = np.arange(W, dtype=np.float32)[None, :]
        edge = np.where(binary, idx, -1).max(1) if side == "right" else np.where(binary, idx, W + 1).min(1)
        edge = np.where(rows, edge, np.nan).astype(np.float32)
        edge = np.nan_to_num(edge, nan=float(x1 if side == "right" else x0))
        map_x = 2 * edge[:, None] - xs
        map_y = ys
        span = (y1 - y0)
        cy = rng.uniform(y0 + 0.2 * span, y1 - 0.2 * span)
        cx = (x1 + 0.35 * length) if side == "right" else (x0 - 0.35 * length)
        lobe = _blob(H, W, cx, cy, length, span * rng.uniform(0.22, 0.4), rng, 0.35, soft=1.0)
    else:
        cols = binary.any(0)
        idx = np.arange(H, dtype=np.float32)[:, None]
        edge = np.where(binary, idx, -1).max(0) if side == "bottom" else np.where(binary, idx, H + 1).min(0)
        edge = np.where(cols, edge, np.nan).astype(np.float32)
        edge = np.nan_to_num(edge, nan=float(y1 if side == "bottom" else y0))
        map_y = 2 * edge[None, :] - ys
        map_x = xs
        span = (x1 - x0)
        cx = rng.uniform(x0 + 0.2 * span, x1 - 0.2 * span)
        cy = (y1 + 0.35 * length) if side == "bottom" else (y0 - 0.35 * length)
        lobe = _blob(H, W, cx, cy, span * rng.uniform(0.22, 0.4), length, rng, 0.35, soft=1.0)
    mirrored = cv2.remap(top, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    ma = cv2.remap(a, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    ma = cv2.GaussianBlur(np.clip(ma * 1.5, 0, 1), (0, 0), 2.0)  # the lobe's end is rounded, not cut square
    grow = np.clip(lobe * ma, 0, 1) * (1 - a)
    # where the reflection runs out of product, fall back to the blurred product colours
    fill = np.where((ma > 0.3)[:, :, None], mirrored, cv2.GaussianBlur(mirrored, (0, 0), 3))
    t2 = top * a[:, :, None] + fill * grow[:, :, None]
    a2 = np.clip(a + grow, 0, 1)
    return t2 / np.maximum(a2, 1e-4)[:, :, None], a2


def _streak(top, a, box, side, length, rng):
    """Edge colours smeared outward (the rim's material dragged past the outline) over a wavy length."""
    H, W = a.shape
    binary = (a > 0.5).astype(np.uint8)
    core = cv2.erode(binary, np.ones((3, 3), np.uint8)) > 0  # skip the feathered rim itself
    # orient so the smear always runs towards +x, then undo
    def fwd(z):
        z = np.swapaxes(z, 0, 1) if side in ("top", "bottom") else z
        return z[:, ::-1] if side in ("left", "top") else z
    def back(z):
        z = z[:, ::-1] if side in ("left", "top") else z
        return np.swapaxes(z, 0, 1) if side in ("top", "bottom") else z
    c, t = fwd(core), fwd(top)
    h, w = c.shape
    cols = np.arange(w)[None, :]
    last = np.maximum.accumulate(np.where(c, cols, -1), axis=1)  # nearest core pixel behind each pixel
    dist = cols - last
    reach = np.clip(_smooth_noise(rng, h, w, 4) * 0.5 + 0.7, 0.15, 1.0) * length
    fade = np.clip((reach - dist) / 4.0, 0, 1) * (last >= 0) * ~c
    rows = np.arange(h)[:, None]
    src = np.clip(last - rng.integers(1, 3), 0, w - 1)
    col = t[rows, src]
    col, fade = back(col), back(fade.astype(np.float32))
    col, fade = np.ascontiguousarray(col), np.ascontiguousarray(fade)
    # smeared: long blur along the drag, a little across it, and the material's grain re-added
    kx, ky = (15, 3) if side in ("left", "right") else (3, 15)
    col = cv2.blur(col, (kx, ky)) + rng.normal(0, 3, col.shape).astype(np.float32)
    fade = cv2.GaussianBlur(cv2.blur(fade, (kx // 3 * 2 + 1, ky // 3 * 2 + 1)), (0, 0), 0.8)
    grow = np.clip(fade, 0, 1) * (1 - a)
    t2 = top * a[:, :, None] + col * grow[:, :, None]
    a2 = np.clip(a + grow, 0, 1)
    return t2 / np.maximum(a2, 1e-4)[:, :, None], a2


def expansion(parts, rng):
    """Object expansion: the product's material regrown past its outline on one or two sides."""
    background, rgb, alpha, layout = parts
    H, W = background.shape[:2]
    top, a = _layer(rgb, alpha, layout, H, W)
    mask = _mask_of(parts)
    box = bbox(mask) or (0, 0, W, H)
    bw, bh = box[2] - box[0], box[3] - box[1]
    sides = ["top", "left", "right", "bottom"]
    order = [sides[i] for i in rng.permutation(len(sides))]
    # a product resting on the floor rarely grows downwards: bottom goes last unless drawn (25 %)
    if rng.random() >= 0.25:
        order = [x for x in order if x != "bottom"] + ["bottom"]
    wanted = 1 + int(rng.random() < 0.35)
    form = rng.choice(["extrude", "lobe", "streak"], p=[0.4, 0.35, 0.25])
    # work in a window around the product, large enough for the growth (speed)
    pad = int(0.45 * max(bw, bh)) + 12
    wx0, wy0, wx1, wy1 = max(0, box[0] - pad), max(0, box[1] - pad), min(W, box[2] + pad), min(H, box[3] + pad)
    win = (slice(wy0, wy1), slice(wx0, wx1))
    t, aa = top[win].copy(), a[win].copy()
    area = max(1.0, float(aa.sum()))
    wbox = (box[0] - wx0, box[1] - wy0, box[2] - wx0, box[3] - wy0)
    for n, side in enumerate(order):
        grown = float(np.clip(aa - a[win], 0, None).sum()) / area
        if n >= wanted and grown >= 0.08:  # enough new material (a thin tip or antenna alone is not)
            break
        dim = max(bh if side in ("top", "bottom") else bw, 0.55 * max(bw, bh))  # thin products grow visibly too
        length = dim * rng.uniform(0.2, 0.4) / (1.3 if wanted > 1 else 1.0)
        length = max(8.0, length)
        if form == "extrude":
            t, aa = _extrude(t, aa, wbox, side, length, rng)
        elif form == "lobe":
            t, aa = _reflect_lobe(t, aa, wbox, side, length, rng)
        else:
            t, aa = _streak(t, aa, wbox, side, length, rng)
    out = background.astype(np.float32)
    out[win] = _over(out[win], t, aa)
    return _u8(out), mask


# ---------------------------------------------------------------------------------------------- halo

def _original_background(rgb, alpha, w, h, pad):
    """The photo's original background around the product, resized like the paste and extrapolated past the crop.

    Real crop pixels where the alpha is ~0; elsewhere a normalised-convolution estimate from them, at a fine
    then a coarse scale (a matting halo shows the old backdrop, not the product).
    """
    top, a = _resized(rgb, alpha, w, h)
    top = cv2.copyMakeBorder(top, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    a = cv2.copyMakeBorder(a, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=1)  # outside the crop: unknown
    inside = np.zeros(a.shape, np.float32)
    inside[pad:pad + h, pad:pad + w] = 1
    known = ((a < 0.03) * inside).astype(np.float32)
    known = cv2.erode(known, np.ones((3, 3), np.uint8))
    est = None
    for sigma in (3.0, 9.0, 30.0):
        num = cv2.GaussianBlur(top * known[:, :, None], (0, 0), sigma)
        den = cv2.GaussianBlur(known, (0, 0), sigma)[:, :, None]
        e = num / np.maximum(den, 1e-4)
        ok = np.clip(den / 0.15, 0, 1)
        est = e if est is None else e * ok + est * (1 - ok)
    if known.sum() < 10:  # product fills its crop: assume a light studio sweep it was shot on
        est = np.full_like(top, 225.0)
    return np.where(known[:, :, None] > 0, top, est), known


def halo(parts, rng):
    """A matting fringe along the paste edge: old backdrop, white studio fringe or a dark rim, uneven in width."""
    background, rgb, alpha, layout = parts
    H, W = background.shape[:2]
    x, y, w, h = _geometry(rgb, layout, H, W)
    top, a = _layer(rgb, alpha, layout, H, W)
    mask = _mask_of(parts)
    width = rng.uniform(2.5, 6.0)
    r = int(np.ceil(width)) + 2
    dist = cv2.distanceTransform(255 - mask, cv2.DIST_L2, 5)  # px outside the product
    # uneven: the loose matte is wider on some parts of the outline, tight on a few
    var = _smooth_noise(rng, H, W, 6)
    local = width * np.clip(0.75 + 0.6 * var, 0.15, 1.4)
    band = np.clip(local + 0.5 - dist, 0, 1) * (mask < 128)
    band = cv2.GaussianBlur(band, (0, 0), 0.7)
    band = np.maximum(band, 0) * (1 - a)
    scene_f = background.astype(np.float32)
    # the three ways a cut-out's edge goes wrong; each drawn here, the one used chosen below
    pad = r + 4
    orig, _ = _original_background(rgb, alpha, w, h, pad)
    backdrop = _to_frame(orig, x - pad, y - pad, H, W)  # the photo's old backdrop left in a loose matte
    tone, warm = rng.uniform(228, 252), rng.uniform(-6, 6)
    white = np.empty((H, W, 3), np.float32)  # a cut-out shot on white: a light studio fringe
    white[..., 0], white[..., 1], white[..., 2] = tone + warm, tone, tone - warm
    # premultiplied colour treated as straight (un-premultiplied over black): a thin dark rim
    thin = max(2.0, width * rng.uniform(0.6, 0.9))
    dark_band = np.clip(thin * np.clip(0.75 + 0.6 * var, 0.3, 1.4) + 0.5 - dist, 0, 1) * (mask < 128)
    dark_band = cv2.GaussianBlur(dark_band, (0, 0), 0.6) * (1 - a) * rng.uniform(0.8, 1.0)
    dark = cv2.GaussianBlur(top, (0, 0), 2.0) * rng.uniform(0.08, 0.3)
    options = {"backdrop": (backdrop, band), "white": (white, band), "dark": (dark, dark_band)}
    ring = band > 0.3
    luma = np.float32([0.299, 0.587, 0.114])
    def contrast(name):  # how far the fringe stands out from the scene it lies on (brightness and colour)
        fringe = options[name][0]
        if not ring.any():
            return 0.0
        d = fringe[ring] - scene_f[ring]
        return float(0.7 * np.abs(d @ luma).mean() + 0.3 * np.abs(d).mean())
    prefer = list(rng.choice(["backdrop", "white", "dark"], size=3, replace=False, p=[0.5, 0.25, 0.25]))
    lit = float((scene_f[ring] @ luma).mean()) if ring.any() else 0.0
    # a matte error that would not show is no test; a dark rim needs a scene light enough to show it
    shown = [n for n in prefer if contrast(n) >= 45 and (n != "dark" or lit > 85)]
    form = shown[0] if shown else max(prefer, key=contrast)
    fringe, band = options[form]
    out = _over(background, fringe, np.clip(band, 0, 1))
    out = _over(out, top, a)
    return _u8(out), mask


# ---------------------------------------------------------------------------------------------- seam

def seam(parts, rng):
    """An inpaint region around the product regenerated with another exposure / colour / sharpness / grain."""
    background, rgb, alpha, layout = parts
    H, W = background.shape[:2]
    mask = _mask_of(parts)
    x0, y0, x1, y1 = bbox(mask) or (W // 4, H // 4, 3 * W // 4, 3 * H // 4)
    if rng.random() < 0.55:  # the padded box an inpainting pipeline crops
        m = [int(rng.uniform(0.08, 0.3) * max(x1 - x0, y1 - y0)) + 4 for _ in range(4)]
        region = np.zeros((H, W), np.float32)
        region[max(0, y0 - m[1]):min(H, y1 + m[3]), max(0, x0 - m[0]):min(W, x1 + m[2])] = 1
    else:  # a blobby dilated mask
        grown = dilate(mask, int(rng.uniform(0.1, 0.25) * max(x1 - x0, y1 - y0)) + 5).astype(np.float32) / 255
        wob = _smooth_noise(rng, H, W, 7)
        region = (cv2.GaussianBlur(grown, (0, 0), 6) + 0.25 * wob > 0.5).astype(np.float32)
        region = np.maximum(region, (mask > 0).astype(np.float32))
    region = cv2.GaussianBlur(region, (0, 0), rng.uniform(0.4, 1.5))
    flat = _is_flat(background)
    scene_f = background.astype(np.float32)
    inside = scene_f.copy()
    if flat:  # a backdrop shows only a tone change: always exposure, sometimes a white-balance shift
        picks = ["exposure"] + (["colour"] if rng.random() < 0.5 else [])
    else:
        effects = ["exposure", "colour", "soft", "grain", "shift"]
        picks = list(rng.choice(effects, size=int(rng.integers(2, 4)), replace=False))
    if "shift" in picks:  # regenerated content drifts: lines break at the boundary
        dx, dy = rng.choice([-1, 1]) * rng.uniform(3, 7), rng.uniform(-3, 3)
        inside = cv2.warpAffine(inside, np.float32([[1, 0, dx], [0, 1, dy]]), (W, H), borderMode=cv2.BORDER_REFLECT)
    if "soft" in picks:  # decoded at lower resolution
        f = rng.uniform(2.5, 4.0)
        small = cv2.resize(inside, (max(2, int(W / f)), max(2, int(H / f))), interpolation=cv2.INTER_AREA)
        inside = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    if "exposure" in picks:
        g = rng.uniform(0.68, 0.82) if rng.random() < 0.5 else rng.uniform(1.22, 1.4)
        if flat and scene_f.mean() > 215:
            g = rng.uniform(0.7, 0.82)  # a bright backdrop cannot get visibly brighter
        lin = (inside / 255) ** 2.2 * g
        inside = 255 * np.clip(lin, 0, 1) ** (1 / 2.2) + rng.uniform(-4, 4)
    if "colour" in picks:
        hue = rng.uniform(0, 2 * np.pi)
        amt = rng.uniform(0.04, 0.09)
        gains = 1 + amt * np.cos(hue + np.array([0, 2.1, 4.2]))
        inside = inside * gains.astype(np.float32)
    if "grain" in picks:
        if rng.random() < 0.5:
            inside = inside + rng.normal(0, rng.uniform(7, 13), (H, W, 1)).astype(np.float32)
        else:
            inside = inside + rng.normal(0, rng.uniform(5, 9), (H, W, 3)).astype(np.float32)
    canvas = _over(scene_f, np.clip(inside, 0, 255), region)
    return _product_on(canvas, parts)


# ---------------------------------------------------------------------------------------------- duplicate

def duplicate(parts, rng):
    """A second copy beside the product: resized, maybe mirrored and relit, maybe cut by the frame or behind it."""
    background, rgb, alpha, layout = parts
    H, W = background.shape[:2]
    aspect = rgb.shape[1] / max(1, rgb.shape[0])
    wf = layout.height * aspect  # product width as a fraction of the frame
    scale = rng.uniform(0.45, 0.85) if rng.random() < 0.8 else rng.uniform(0.95, 1.15)
    dh = layout.height * scale
    dw = dh * aspect
    side = 1 if (layout.cx < 0.5) ^ (rng.random() < 0.2) else -1
    behind = rng.random() < 0.35
    if behind:  # partly hidden behind the product, at least 40-70 % of its width showing
        gap = wf / 2 - dw / 2 + dw * rng.uniform(0.4, 0.7)
    else:
        gap = (wf / 2 + dw / 2) * rng.uniform(1.02, 1.35)
    cx = layout.cx + side * gap
    v = float(rng.uniform(0.55, 0.85))
    edge_cx = 0.5 + side * (0.5 - v * dw + dw / 2)  # where it shows only a fraction v, cut by the frame
    if rng.random() < 0.3 or side * (cx - edge_cx) > 0:  # pushed to (or past) the frame edge: cut by it
        cx = edge_cx
    floor = layout.cy + layout.height / 2
    floor -= (1 - scale) * layout.height * rng.uniform(0.05, 0.35)  # smaller = a little further back
    cy = floor - dh / 2
    drgb = rgb[:, ::-1] if rng.random() < 0.5 else rgb
    dalpha = alpha[:, ::-1] if drgb is not rgb else alpha
    # a regenerated copy, not a pixel copy: relit, slightly softer, slightly recoloured
    d = drgb.astype(np.float32) * rng.uniform(0.82, 1.08) + rng.uniform(-8, 8, 3).astype(np.float32)
    d = cv2.GaussianBlur(d, (0, 0), rng.uniform(0.3, 1.1))
    dup = _u8(d)
    canvas, _ = place(background, dup, np.ascontiguousarray(dalpha), Layout(float(cx), float(cy), float(dh)))
    return place(canvas, rgb, alpha, layout)


# ---------------------------------------------------------------------------------------------- degenerate backgrounds

def _linear(x):
    return (np.clip(x, 0, 255) / 255.0) ** 2.2


def _srgb(x):
    return 255 * np.clip(x, 0, 1) ** (1 / 2.2)


def bg_black(parts, rng):
    """The scene crushed to near black: a dim remnant, a tinted near-black with vignette, or black static."""
    background = parts[0]
    H, W = background.shape[:2]
    form = rng.choice(["dim", "tinted", "static"])
    if form == "dim":  # the decoder's output scaled to almost nothing, content barely there
        canvas = _srgb(_linear(background) * rng.uniform(0.003, 0.012))
    elif form == "tinted":
        base = rng.uniform(4, 16) + rng.uniform(-5, 5, 3)
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        v = 1 - 0.6 * (((xx - W / 2) / W) ** 2 + ((yy - H / 2) / H) ** 2) * 2
        canvas = np.clip(base, 0, None)[None, None, :] * v[:, :, None] + rng.normal(0, 1.2, (H, W, 1))
    else:
        canvas = np.abs(rng.normal(0, rng.uniform(5, 10), (H, W, 1))) + rng.uniform(0, 6)
        canvas = np.repeat(canvas, 3, 2)
    return _product_on(canvas.astype(np.float32), parts)


def bg_flat(parts, rng):
    """The scene collapsed to a featureless fill: its mean colour, a random colour, or a smooth 2x2 wash."""
    background = parts[0]
    H, W = background.shape[:2]
    form = rng.choice(["mean", "colour", "wash"])
    if form == "mean":
        fill = background.reshape(-1, 3).mean(0).astype(np.float32) + rng.uniform(-10, 10, 3).astype(np.float32)
        canvas = np.broadcast_to(fill, (H, W, 3)).astype(np.float32)
    elif form == "colour":
        hsv = np.uint8([[[rng.integers(0, 180), rng.integers(40, 200), rng.integers(70, 235)]]])
        fill = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
        canvas = np.broadcast_to(fill, (H, W, 3)).astype(np.float32)
    else:
        small = cv2.resize(background, (2, 2), interpolation=cv2.INTER_AREA).astype(np.float32)
        small = cv2.resize(small, (8, 8), interpolation=cv2.INTER_LINEAR)
        canvas = cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.5), (W, H), interpolation=cv2.INTER_CUBIC)
    canvas = canvas + rng.normal(0, 0.8, (H, W, 1)).astype(np.float32)
    return _product_on(canvas, parts)


def bg_noise(parts, rng):
    """Noise for a scene: latent-grid colour blotches, "fried" over-sharpened texture, or static."""
    background = parts[0]
    H, W = background.shape[:2]
    scene_f = background.astype(np.float32)
    form = rng.choice(["latent", "fried", "static"])
    if form == "latent":  # an un-denoised latent decoded: colourful 8-px blotches with fine grit
        cell = int(rng.choice([4, 8, 8]))
        lat = rng.normal(0, 1, (H // cell + 1, W // cell + 1, 3)).astype(np.float32)
        up = cv2.resize(lat, (W // cell * cell + cell, H // cell * cell + cell), interpolation=cv2.INTER_CUBIC)[:H, :W]
        noise = 128 + rng.uniform(45, 70) * up + rng.normal(0, 18, (H, W, 3)).astype(np.float32)
        mix = rng.uniform(0.7, 0.95)
        canvas = scene_f * (1 - mix) + noise * mix
    elif form == "fried":  # too many steps at a huge guidance scale: crunchy over-sharpened speckle
        g = cv2.GaussianBlur(scene_f, (0, 0), 1.2)
        amount = rng.uniform(5, 9)
        canvas = scene_f + amount * (scene_f - g)
        canvas = canvas + rng.normal(0, rng.uniform(25, 40), (H, W, 3)).astype(np.float32)
        canvas = 128 + (canvas - 128) * 1.3
    else:  # static
        sigma = rng.uniform(55, 80)
        n = rng.normal(0, sigma, (H, W, 1)).astype(np.float32)
        if rng.random() < 0.5:
            n = n + rng.normal(0, sigma * 0.5, (H, W, 3)).astype(np.float32)
        mix = rng.uniform(0.55, 0.85)
        canvas = scene_f * (1 - mix) + (128 + n) * mix
    return _product_on(canvas, parts)


def _kmeans_palette(pixels: np.ndarray, k: int, rng, iters: int = 8) -> np.ndarray:
    sample = pixels[rng.choice(len(pixels), size=min(2500, len(pixels)), replace=False)]
    centres = sample[rng.choice(len(sample), size=k, replace=False)].copy()
    for _ in range(iters):
        d = ((sample[:, None, :] - centres[None]) ** 2).sum(2)
        lab = d.argmin(1)
        for j in range(k):
            sel = sample[lab == j]
            if len(sel):
                centres[j] = sel.mean(0)
    return centres


def bg_posterised(parts, rng):
    """The scene posterised: a k-means palette of few colours, per-channel levels, or smooth luminance bands."""
    background = parts[0]
    H, W = background.shape[:2]
    scene_f = background.astype(np.float32)
    form = rng.choice(["palette", "levels", "bands"])
    if form == "palette":
        k = int(rng.integers(3, 7))
        smooth = cv2.medianBlur(background, 5)
        centres = _kmeans_palette(smooth.reshape(-1, 3).astype(np.float32), k, rng)
        # nearest centre through a 16^3 colour table (fast): each pixel takes its bin's colour
        g = (np.arange(16, dtype=np.float32) * 16 + 8)
        bins = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
        table = centres[((bins[:, None, :] - centres[None]) ** 2).sum(2).argmin(1)]
        q = (smooth >> 4).astype(np.int32)
        canvas = table[(q[..., 0] << 8) | (q[..., 1] << 4) | q[..., 2]]
    elif form == "levels":
        n = int(rng.integers(3, 6))
        step = 255.0 / (n - 1)
        canvas = np.round(scene_f / step) * step
    else:
        lab = cv2.cvtColor(cv2.GaussianBlur(background, (0, 0), 1.5), cv2.COLOR_RGB2YCrCb).astype(np.float32)
        n = int(rng.integers(4, 7))
        step = 255.0 / n
        lab[..., 0] = (np.floor(lab[..., 0] / step) + 0.5) * step
        lab[..., 1:] = 128 + np.round((lab[..., 1:] - 128) / 12) * 12
        canvas = cv2.cvtColor(_u8(lab), cv2.COLOR_YCrCb2RGB).astype(np.float32)
    return _product_on(canvas, parts)


def bg_saturated(parts, rng):
    """The scene over-cooked: saturation pushed x3-5, exposure blown to clipped white, or a contrast burn."""
    background = parts[0]
    scene_f = background.astype(np.float32)
    form = rng.choice(["saturate", "blown", "burn"])
    if form == "saturate":
        hsv = cv2.cvtColor(background, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(3, 5) + 30, 0, 255)
        hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(1.1, 1.3), 0, 255)
        canvas = cv2.cvtColor(_u8(hsv), cv2.COLOR_HSV2RGB).astype(np.float32)
    elif form == "blown":
        canvas = _srgb(_linear(scene_f) * rng.uniform(3.0, 5.5)) + rng.uniform(0, 12)
    else:
        mean = scene_f.reshape(-1, 3).mean(0)
        canvas = mean + (scene_f - mean) * rng.uniform(2.5, 3.5)
        grey = canvas.mean(2, keepdims=True)
        canvas = grey + (canvas - grey) * rng.uniform(1.8, 2.6)
    return _product_on(canvas, parts)


# ---------------------------------------------------------------------------------------------- blob

def _shade(soft: np.ndarray, radius: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Lambert shading and a specular glint for a gooey mass whose height follows the blob's smoothed mask."""
    height = cv2.GaussianBlur(soft, (0, 0), max(1.5, radius / 4)) * radius * 0.6
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8
    n = np.stack([-gx, -gy, np.ones_like(gx)], 2)
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    ang = rng.uniform(np.pi * 1.05, np.pi * 1.45)  # light from the upper left to above
    light = np.array([np.cos(ang) * 0.55, -abs(np.sin(ang)) * 0.55, 0.8], np.float32)
    light /= np.linalg.norm(light)
    lam = np.clip((n * light).sum(2), 0, 1)
    half = light + np.float32([0, 0, 1])
    spec = np.clip((n * (half / np.linalg.norm(half))).sum(2), 0, 1) ** 30
    return 0.55 + 0.55 * lam, spec


def blob(parts, rng):
    """A large melted / smeared mass or a drip, overlapping the product's outline."""
    background, rgb, alpha, layout = parts
    H, W = background.shape[:2]
    base, mask = place(background, rgb, alpha, layout)
    x0, y0, x1, y1 = bbox(mask) or (W // 4, H // 4, 3 * W // 4, 3 * H // 4)
    size = max(x1 - x0, y1 - y0)
    # a point on the outline, on a side or the lower half
    edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    ys, xs = np.nonzero(edge)
    pick = (ys > y0 + 0.25 * (y1 - y0)) | (rng.random() < 0.3)
    ys, xs = (ys[pick], xs[pick]) if pick.any() else (ys, xs)
    i = int(rng.integers(len(xs))) if len(xs) else 0
    ax, ay = (float(xs[i]), float(ys[i])) if len(xs) else ((x0 + x1) / 2, (y0 + y1) / 2)
    ccx, ccy = (x0 + x1) / 2, (y0 + y1) / 2
    v = np.array([ax - ccx, ay - ccy], np.float32)
    v /= max(1e-3, float(np.linalg.norm(v)))
    form = rng.choice(["melt", "drip", "smudge"], p=[0.45, 0.2, 0.35])
    if form == "drip":  # melted material running down from the product's lower edge
        r = max(5.0, size * rng.uniform(0.09, 0.14))
        length = (y1 - y0) * rng.uniform(0.25, 0.45)
        lower = ys > y0 + 0.6 * (y1 - y0)
        if lower.any():
            k = int(rng.integers(int(lower.sum())))
            ax, ay = float(xs[lower][k]), float(ys[lower][k])
        ax = float(np.clip(ax, x0 + 1.5 * r, x1 - 1.5 * r)) if x1 - x0 > 3 * r else (x0 + x1) / 2
        shape = _blob(H, W, ax, ay - 0.2 * r, 2.2 * r, 0.9 * r, rng, 0.2, soft=0)  # where it leaves the product
        sway = rng.uniform(-0.5, 0.5) * r
        for t in np.linspace(0, 1, 20):
            rr = r * (1.0 - 0.45 * t)
            cv2.circle(shape, (round(ax + sway * t * t), round(ay + t * length)), max(2, round(rr)), 1.0, -1,
                       cv2.LINE_AA)
        cv2.circle(shape, (round(ax + sway), round(ay + length + 0.2 * r)), max(2, round(0.85 * r)), 1.0, -1,
                   cv2.LINE_AA)
        # merged like a liquid (metaball union), not stacked discs
        shape = (cv2.GaussianBlur(shape, (0, 0), 0.45 * r) > 0.45).astype(np.float32)
        soft = cv2.GaussianBlur(shape, (0, 0), 1.0)
        radius = r * 1.6
    else:
        radius = size * rng.uniform(0.24, 0.36)
        off = radius * rng.uniform(0.2, 0.6)
        cx, cy = ax + v[0] * off, ay + v[1] * off
        soft = _blob(H, W, cx, cy, radius * rng.uniform(0.8, 1.25), radius * rng.uniform(0.7, 1.1), rng,
                     0.45, angle=rng.uniform(0, np.pi), soft=1.5)
    # work in a window around the blob only (speed)
    bx0, by0, bx1, by1 = bbox((soft > 0.01).astype(np.uint8)) or (0, 0, W, H)
    m = int(radius) + 4
    bx0, by0, bx1, by1 = max(0, bx0 - m), max(0, by0 - m), min(W, bx1 + m), min(H, by1 + m)
    win = (slice(by0, by1), slice(bx0, bx1))
    img = base.astype(np.float32)
    sub, ssoft = img[win], soft[win]
    h, w = ssoft.shape
    # colours: the local product/scene material, warped and smeared into goo
    sm = max(2.0, radius / 3)
    disp = np.stack([_smooth_noise(rng, h, w, 3), _smooth_noise(rng, h, w, 3)], 2) * radius * 0.6
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    warped = cv2.remap(sub, gx + disp[..., 0], gy + disp[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    prod_mean = (rgb.astype(np.float32) * alpha[:, :, None]).reshape(-1, 3).sum(0) / max(1.0, float(alpha.sum()))
    if form == "smudge":  # a flat smear: no gloss, the colours dragged and blurred
        goo = cv2.GaussianBlur(warped, (0, 0), sm)
        goo = 0.6 * goo + 0.4 * prod_mean
        shade, _ = _shade(ssoft, radius, rng)
        shade, spec = 1 + 0.45 * (shade - 1), np.zeros_like(ssoft)  # a little relief, no gloss
    else:
        goo = cv2.GaussianBlur(warped, (0, 0), sm * 0.7)
        goo = 0.45 * goo + 0.55 * prod_mean * rng.uniform(0.7, 1.1)
        shade, spec = _shade(ssoft, radius, rng)
    goo = goo * shade[:, :, None] + 230 * spec[:, :, None] * rng.uniform(0.4, 0.9)
    img[win] = _over(sub, np.clip(goo, 0, 255), np.clip(ssoft * rng.uniform(0.88, 1.0), 0, 1))
    return _u8(img), mask


# ---------------------------------------------------------------------------------------------- framing

def cut(parts, rng):
    """The product pushed 30-60 % past one frame edge (outpainting/cropping that lost part of it)."""
    background, rgb, alpha, layout = parts
    aspect = rgb.shape[1] / max(1, rgb.shape[0])
    hf = float(rng.uniform(0.45, 0.72))
    hf = min(hf, 0.9 / max(aspect, 1e-3))
    wf = hf * aspect
    f = float(rng.uniform(0.3, 0.6))
    side = rng.choice(["left", "right", "top", "bottom"], p=[0.28, 0.28, 0.16, 0.28])
    cx, cy = float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.45, 0.62))
    if side == "left":
        cx = -f * wf + wf / 2
    elif side == "right":
        cx = 1 + f * wf - wf / 2
    elif side == "top":
        cy = -f * hf + hf / 2
    else:
        cy = 1 + f * hf - hf / 2
    return place(background, rgb, alpha, Layout(cx, cy, hf))


def tiny(parts, rng):
    """The product implausibly small: its long side 7-16 % of the frame, anywhere in it."""
    background, rgb, alpha, layout = parts
    aspect = rgb.shape[1] / max(1, rgb.shape[0])
    long_side = float(rng.uniform(0.07, 0.16))
    hf = long_side / max(1.0, aspect)
    if rng.random() < 0.5:
        cx, cy = float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.25, 0.85))
    else:
        cx, cy = float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.55, 0.75))
    return place(background, rgb, alpha, Layout(cx, cy, hf))


def huge(parts, rng):
    """The product implausibly large: its long side 125-180 % of the frame, overflowing it."""
    background, rgb, alpha, layout = parts
    aspect = rgb.shape[1] / max(1, rgb.shape[0])
    long_side = float(rng.uniform(1.25, 1.8))
    hf = long_side / max(1.0, aspect)
    cx, cy = float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.38, 0.68))
    return place(background, rgb, alpha, Layout(cx, cy, hf))


INTEGRATION_THIRD: dict[str, Callable] = {
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

# A flat fill, posterisation or saturation push changes nothing visible on a plain studio backdrop (the
# benign studio composite is itself nearly flat and neutral): these need a photo scene with content.
NEEDS_PHOTO_SCENE_THIRD: frozenset[str] = frozenset({"bg-flat", "bg-posterised", "bg-saturated"})
