"""A third set of identity failures, made a third way: `ecomforge bench fidelity --failures third`.

Written after the scorers and their weights were fixed, by someone who had seen neither set's figures, and
measured once: no scorer setting or weight was chosen on it, so it is an unseen test of how the identity
figures carry over (docs/scorers.md).

Each failure is ``fn(image, mask, rng, severity=1.0) -> (image, mask)`` (image uint8 RGB HxWx3, mask uint8
0/255 of the product) and imitates a way a real generator (SD inpainting / img2img, DreamBooth) damages a
product. The mask returned is what the generator would report: unchanged where it believes the product is still
whole, moved with the pixels where the outline itself changed (clone-part, donor-part, elastic, taper).

Mechanisms, colour spaces and donors differ from both IDENTITY and ALTERNATE: k-means parts tinted in YCrCb,
a white-balance cast in linear light, mean-shift "waxy" denoising, row-wise glyph shuffling, another DreamBench
product's photo as donor, cv2.putText logos, self-clones along the outline, push-pull (pyramid) hole filling, a
smooth random displacement field and a keystone taper.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ecomforge.errors import InputError

from .data import find_samples
from .transforms import Variant, _box


# ----------------------------------------------------------------------------------------------- helpers
def _feather(binary: np.ndarray, sigma: float) -> np.ndarray:
    """A float alpha in [0, 1] from a 0/1 (or 0/255) map, softened by a Gaussian of ``sigma`` px."""
    a = (binary > 0).astype(np.float32) if binary.dtype != np.float32 else binary
    return np.clip(cv2.GaussianBlur(a, (0, 0), max(sigma, 0.3)), 0, 1) if sigma > 0 else a


def _blend(base: np.ndarray, top: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[:, :, None].astype(np.float32)
    return np.clip(base.astype(np.float32) * (1 - a) + top.astype(np.float32) * a + 0.5, 0, 255).astype(np.uint8)


def _in_product(image, changed, mask, sigma=0.8):
    """``changed`` inside the product (its edge softened a little), the original elsewhere."""
    alpha = _feather(mask, sigma) * (mask > 127)  # never bleeds outside the outline
    return _blend(image, changed, alpha)


def _push_pull(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill the pixels where ``known`` is 0 by a push-pull pyramid (Gortler et al.): each level averages the known
    pixels below it, its confidence saturating (min(1, 4 x coverage)) so that near surroundings dominate far ones;
    the unknown pixels get a smooth blur of what is around them."""
    img = image.astype(np.float32)
    w = (known > 0).astype(np.float32)
    levels = []
    cur_a, cur_c = img, w  # the average colour and its confidence at each level
    while min(cur_c.shape) > 2:
        levels.append((cur_a, cur_c))
        num = cv2.pyrDown(cur_a * cur_c[:, :, None])
        den = cv2.pyrDown(cur_c)
        cur_a = num / np.maximum(den, 1e-6)[:, :, None]
        cur_c = np.clip(4 * den, 0, 1)
    fill = cur_a
    for avg, conf in reversed(levels):
        up = cv2.resize(fill, (conf.shape[1], conf.shape[0]), interpolation=cv2.INTER_LINEAR)
        up = cv2.GaussianBlur(up, (0, 0), 1.0)
        fill = avg * conf[:, :, None] + up * (1 - conf[:, :, None])
    fill = fill + _borrowed_grain(img, known)
    out = np.where((known > 0)[:, :, None], img, fill)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _borrowed_grain(img: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The fine grain (image minus its blur) of known pixels one hole-width away, for each unknown pixel, so a
    push-pull fill is not a featureless blur on a textured scene."""
    h, w = known.shape
    ok = known > 0
    hp = img - cv2.GaussianBlur(img, (0, 0), 1.5)
    if ok.any():  # grain, not edges: clip at twice the scene's typical grain
        lim = 2 * np.median(np.abs(hp[ok]), axis=0) + 1e-3
        hp = np.clip(hp, -lim, lim)
    ys, xs = np.nonzero(~ok)
    out = np.zeros_like(img)
    if len(xs) == 0:
        return out
    span = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    todo = np.ones(len(xs), bool)
    for scale in (0.6, 0.9, 1.3):
        for ang in np.arange(8) * np.pi / 4:
            if not todo.any():
                break
            dx, dy = int(round(np.cos(ang) * span * scale)), int(round(np.sin(ang) * span * scale))
            sx, sy = xs + dx, ys + dy
            inb = todo & (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
            good = np.zeros(len(xs), bool)
            good[inb] = ok[sy[inb], sx[inb]]
            out[ys[good], xs[good]] = hp[sy[good], sx[good]]
            todo &= ~good
    return out


def _reshape(image, mask, map_x, map_y):
    """Move the product (pixels and outline) through a backward map; where it left, push-pull the background."""
    moved = cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
    moved_mask = cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    moved_mask = np.where(moved_mask > 127, 255, 0).astype(np.uint8)
    # the background: the old product (a little dilated, to drop its halo) is unknown, filled from around it
    x0, y0, x1, y1 = _box(mask)
    r = max(3, int(0.04 * max(x1 - x0, y1 - y0)))
    halo = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    background = _push_pull(image, 255 - halo)
    alpha = _feather(moved_mask, 0.7) * np.clip(cv2.GaussianBlur(moved_mask.astype(np.float32) / 255, (0, 0), 0.7) * 1.6, 0, 1)
    return _blend(background, moved, np.clip(alpha, 0, 1)), moved_mask


def _blob(h, w, cx, cy, rx, ry, rng, wobble=0.25):
    """A filled irregular blob (an ellipse whose radius wobbles smoothly), 0/1 uint8."""
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    k = rng.uniform(-1, 1, size=(3, 2))
    r = 1 + wobble * sum(k[i, 0] * np.cos((i + 2) * t) + k[i, 1] * np.sin((i + 2) * t) for i in range(3)) / 3
    pts = np.stack([cx + rx * r * np.cos(t), cy + ry * r * np.sin(t)], 1).round().astype(np.int32)
    out = np.zeros((h, w), np.uint8)
    cv2.fillPoly(out, [pts], 1)
    return out


def _point_in(mask, rng, x0, y0, x1, y1, margin=0.2):
    """A random product pixel, preferring the inner part of the box."""
    bw, bh = x1 - x0, y1 - y0
    inner = np.zeros_like(mask)
    inner[int(y0 + margin * bh):int(y1 - margin * bh) + 1, int(x0 + margin * bw):int(x1 - margin * bw) + 1] = 1
    ys, xs = np.nonzero((mask > 127) & (inner > 0))
    if len(xs) == 0:
        ys, xs = np.nonzero(mask > 127)
    if len(xs) == 0:
        return (x0 + x1) / 2, (y0 + y1) / 2
    i = int(rng.integers(len(xs)))
    return float(xs[i]), float(ys[i])


def _srgb_to_linear(x):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x):
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


# ----------------------------------------------------------------------------------------------- colour
def part_tint(image, mask, rng, severity=1.0):
    """Recolour ONE part of the product (a k-means colour region, 10-45 % of it) by a YCrCb chroma offset."""
    m = mask > 127
    n = int(m.sum())
    if n < 20:
        return image.copy(), mask
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    ys, xs = np.nonzero(m)
    x0, y0, x1, y1 = _box(mask)
    size = max(x1 - x0, y1 - y0)
    feats = np.concatenate([lab[ys, xs], 40 * np.stack([xs, ys], 1).astype(np.float32) / size], 1)
    k = 4
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(int(rng.integers(1 << 30)))
    _, labels, _ = cv2.kmeans(np.ascontiguousarray(feats), k, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    shares = np.bincount(labels, minlength=k) / n
    ok = [i for i in range(k) if 0.10 <= shares[i] <= 0.45] or [int(np.argmin(np.abs(shares - 0.25)))]
    pick = int(rng.choice(ok))
    part = np.zeros(mask.shape, np.uint8)
    part[ys[labels == pick], xs[labels == pick]] = 1
    r = max(1, size // 60)
    part = cv2.morphologyEx(part, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    part &= m.astype(np.uint8)
    ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    amp = severity * rng.uniform(45, 60)
    # pull the part's own chroma halfway towards neutral, then push it in a new direction
    ycc[..., 1] = 128 + 0.5 * (ycc[..., 1] - 128) + amp * np.cos(angle)
    ycc[..., 2] = 128 + 0.5 * (ycc[..., 2] - 128) + amp * np.sin(angle)
    ycc[..., 0] = ycc[..., 0] * (1 + severity * rng.uniform(-0.12, 0.12))
    ycc[..., 0] = np.clip(ycc[..., 0], 16, 235)
    ycc[..., 1:] = np.clip(ycc[..., 1:], 16, 240)
    tinted = cv2.cvtColor(ycc.astype(np.uint8), cv2.COLOR_YCrCb2RGB)
    alpha = _feather(part, 1.2) * m
    return _blend(image, tinted, alpha), mask


def cast(image, mask, rng, severity=1.0):
    """White balance and exposure of the product alone drift: per-channel gains in linear light (a warm, cool,
    green or magenta cast of 1.7-2x between channels), exposure 0.7x or 1.35x, saturation pushed."""
    lin = _srgb_to_linear(image.astype(np.float32) / 255)
    hue = rng.uniform(0, 2 * np.pi)
    amp = severity * rng.uniform(0.45, 0.6)
    # a direction in log-chroma space orthogonal to grey (1, 1, 1)
    u = np.array([np.cos(hue), np.cos(hue - 2 * np.pi / 3), np.cos(hue + 2 * np.pi / 3)])
    gains = np.exp(amp * u * 2 / 3)
    exposure = rng.choice([0.7, 1.35]) ** severity
    out = lin * gains * exposure
    grey = out.mean(axis=2, keepdims=True)
    out = grey + (out - grey) * (1 + 0.35 * severity)
    srgb = (_linear_to_srgb(out) * 255 + 0.5).astype(np.uint8)
    return _in_product(image, srgb, mask, 1.0), mask


# ----------------------------------------------------------------------------------------------- detail
def waxy(image, mask, rng, severity=1.0):
    """Over-denoised, diffusion-like surface: mean-shift filtering flattens the print and texture into waxy
    plateaus, then a bilateral pass smooths what edges are left (shape and colours kept)."""
    x0, y0, x1, y1 = _box(mask)
    size = max(x1 - x0, y1 - y0)
    pad = 8
    ya, yb, xa, xb = max(0, y0 - pad), min(image.shape[0], y1 + pad), max(0, x0 - pad), min(image.shape[1], x1 + pad)
    crop = np.ascontiguousarray(image[ya:yb, xa:xb])
    sp = max(3, int(severity * max(5, size * 0.06)))
    sr = max(8, int(severity * rng.uniform(30, 38)))
    flat = cv2.pyrMeanShiftFiltering(crop, sp, sr, maxLevel=1)
    flat = cv2.bilateralFilter(flat, 0, 20, max(2.0, size * 0.02))
    out = image.copy()
    out[ya:yb, xa:xb] = flat
    return _in_product(image, out, mask, 0.8), mask


def gibberish(image, mask, rng, severity=1.0):
    """Print turned to gibberish: in the most detailed band of the product (about half its box
    wide, a third high) the rows of print are cut into glyph-sized pieces that are shuffled along their row, some mirrored,
    and cross-faded back together (letters that look like letters but spell nothing)."""
    h, w = mask.shape
    x0, y0, x1, y1 = _box(mask)
    bw, bh = x1 - x0, y1 - y0
    rw, rh = max(8, int(bw * 0.5 * severity ** 0.5)), max(8, int(bh * 0.34 * severity ** 0.5))
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    r = max(2, int(0.06 * min(bw, bh)))  # print, not the outline: the edge band of the product is left out
    core = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 127
    energy = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3)) * core
    score = cv2.boxFilter(energy, -1, (rw, rh), normalize=True, borderType=cv2.BORDER_CONSTANT)
    cover = cv2.boxFilter((mask > 127).astype(np.float32), -1, (rw, rh), normalize=True, borderType=cv2.BORDER_CONSTANT)
    score = score * (cover > 0.85)
    if score.max() <= 0:
        score = cover
    best = np.argsort(score.ravel())[::-1][:max(1, int(0.01 * score.size))]  # among the 1 % most detailed
    cy, cx = np.unravel_index(int(best[int(rng.integers(len(best)))]), score.shape)
    rx0, ry0 = int(np.clip(cx - rw // 2, 0, w - rw)), int(np.clip(cy - rh // 2, 0, h - rh))
    region = image[ry0:ry0 + rh, rx0:rx0 + rw].astype(np.float32)
    row_h = max(3, int(bh * rng.uniform(0.06, 0.09)))
    piece_w = max(3, int(bw * rng.uniform(0.045, 0.07)))
    ox, oy = max(1, piece_w // 3), max(1, row_h // 4)  # cross-fade widths, across and along the rows

    def ramp(n, o):
        r = np.ones(n + 2 * o, np.float32)
        r[:2 * o] = np.linspace(0.05, 1, 2 * o)
        r[-2 * o:] = np.minimum(r[-2 * o:], np.linspace(1, 0.05, 2 * o))
        return r

    acc = np.zeros_like(region)
    wsum = np.zeros(region.shape[:2], np.float32)
    for top in range(-oy, rh, row_h):
        t0, t1 = max(0, top), min(rh, top + row_h + 2 * oy)
        if t1 <= t0:
            continue
        ry_w = ramp(row_h, oy)[t0 - top:t1 - top]
        shift = int(rng.integers(-piece_w // 3, piece_w // 3 + 1))  # rows slip a little against each other
        slots = list(range(-ox, rw, piece_w))
        # a local shuffle: pieces move at most ~4 places along the row
        order = np.argsort(np.arange(len(slots)) + rng.uniform(0, 5, len(slots)))
        for dst, k in zip(slots, order):
            src = int(np.clip(slots[k] + shift, 0, max(0, rw - piece_w - 2 * ox)))
            piece = region[t0:t1, src:src + piece_w + 2 * ox]
            if rng.random() < 0.3:
                piece = piece[:, ::-1]
            d0, d1 = max(0, dst), min(rw, dst + piece.shape[1])
            if d1 <= d0:
                continue
            p = piece[:, d0 - dst:d1 - dst]
            wgt = ry_w[:, None] * ramp(piece_w, ox)[d0 - dst:d1 - dst][None, : p.shape[1]]
            acc[t0:t1, d0:d0 + p.shape[1]] += p * wgt[:, :, None]
            wsum[t0:t1, d0:d0 + p.shape[1]] += wgt
    out = np.where(wsum[:, :, None] > 1e-3, acc / np.maximum(wsum, 1e-3)[:, :, None], region)
    out = cv2.GaussianBlur(out, (0, 0), 0.5)
    changed = image.copy()
    changed[ry0:ry0 + rh, rx0:rx0 + rw] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    box = np.zeros((h, w), np.float32)
    box[ry0 + 1:ry0 + rh - 1, rx0 + 1:rx0 + rw - 1] = 1
    alpha = _feather(box, 1.5) * (mask > 127)
    return _blend(image, changed, alpha), mask


# ----------------------------------------------------------------------------------------------- foreign parts
@lru_cache(maxsize=None)
def _product_views() -> tuple:
    """(product, view thumbnail 32x32 float, 256-px image, product box in px) for every DreamBench photo."""
    from .boxes import BOXES

    out: list = []
    samples = find_samples()
    if samples is None:
        return ()
    for folder in sorted(p for p in samples.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.jpg")):
            img = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            s = 256 / max(img.shape[:2])
            if s < 1:
                img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
            bx = BOXES.get(f"{folder.name}/{path.stem}", (0.15, 0.12, 0.85, 0.88))
            hh, ww = img.shape[:2]
            box = (int(bx[0] * ww), int(bx[1] * hh), int(bx[2] * ww), int(bx[3] * hh))
            thumb = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
            out.append((folder.name, thumb, img, box))
    return tuple(out)


def _own_product(image) -> str | None:
    """The DreamBench product this image is a photo of (the nearest thumbnail), to keep it out of the donors."""
    views = _product_views()
    if not views:
        return None
    thumb = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    d = [np.abs(v[1] - thumb).mean() for v in views]
    return views[int(np.argmin(d))][0]


def donor_part(image, mask, rng, severity=1.0):
    """A part of ANOTHER product grafted on: the middle of another DreamBench product's photo, a soft-edged
    blob about a fifth of the product's area, set over one side of the product and partly past its outline."""
    h, w = mask.shape
    x0, y0, x1, y1 = _box(mask)
    bw, bh = x1 - x0, y1 - y0
    own = _own_product(image)
    donors = [v for v in _product_views() if v[0] != own]
    if not donors:
        raise InputError("donor-part takes its parts from samples/dreambench, which is not found")
    _, _, dimg, (dx0, dy0, dx1, dy1) = donors[int(rng.integers(len(donors)))]
    rx, ry = max(3, bw * 0.25 * severity ** 0.5), max(3, bh * 0.25 * severity ** 0.5)
    # centre: a product pixel 15-30 % of the box in from one side, whose blob lies mostly (>= 55 %) on the product
    inside = mask > 127
    ys, xs = np.nonzero(inside)
    fx, fy = (xs - x0) / max(bw, 1), (ys - y0) / max(bh, 1)
    cx, cy, best = (x0 + x1) / 2, (y0 + y1) / 2, -1.0
    for _ in range(8):
        side = int(rng.integers(4))
        along = [fx, 1 - fx, fy, 1 - fy][side]
        pool = np.nonzero((along >= 0.15) & (along <= 0.3))[0]
        if len(pool) == 0:
            continue
        j = int(pool[int(rng.integers(len(pool)))])
        px, py = float(xs[j]), float(ys[j])
        yy0, yy1 = int(max(0, py - ry)), int(min(h, py + ry + 1))
        xx0, xx1 = int(max(0, px - rx)), int(min(w, px + rx + 1))
        on = float(inside[yy0:yy1, xx0:xx1].mean()) if yy1 > yy0 and xx1 > xx0 else 0.0
        if on > best:
            cx, cy, best = px, py, on
        if on >= 0.55:
            break
    # donor: the central 45 % of its product box, scaled to the blob's box
    dcx, dcy, dw, dh = (dx0 + dx1) / 2, (dy0 + dy1) / 2, (dx1 - dx0) * 0.45, (dy1 - dy0) * 0.45
    crop = dimg[int(dcy - dh / 2):int(dcy + dh / 2) + 1, int(dcx - dw / 2):int(dcx + dw / 2) + 1]
    pw, ph = int(2 * rx) + 1, int(2 * ry) + 1
    grow = pw > crop.shape[1] or ph > crop.shape[0]
    piece = cv2.resize(crop, (pw, ph), interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA)
    layer = image.copy()
    px0, py0 = int(round(cx - rx)), int(round(cy - ry))
    sx0, sy0 = max(0, -px0), max(0, -py0)
    ex, ey = min(w, px0 + pw), min(h, py0 + ph)
    layer[max(0, py0):ey, max(0, px0):ex] = piece[sy0:sy0 + ey - max(0, py0), sx0:sx0 + ex - max(0, px0)]
    blob = _blob(h, w, cx, cy, rx * 0.95, ry * 0.95, rng, 0.2)
    alpha = _feather(blob, max(1.0, min(rx, ry) * 0.12))
    new_mask = np.where((mask > 127) | (alpha > 0.5), 255, 0).astype(np.uint8)
    return _blend(image, layer, alpha), new_mask


def _palette(image, mask):
    """The product's dark and light tones (10th and 90th luma percentiles), as RGB."""
    m = mask > 127
    px = image[m].astype(np.float32)
    if len(px) == 0:
        px = image.reshape(-1, 3).astype(np.float32)
    luma = px @ np.array([0.299, 0.587, 0.114])
    lo, hi = np.percentile(luma, 10), np.percentile(luma, 90)
    dark = px[luma <= lo].mean(0)
    light = px[luma >= hi].mean(0)
    return dark, light, float(luma.mean())


def fake_logo(image, mask, rng, severity=1.0):
    """An invented brand mark printed on the product: random capitals (cv2.putText, Hershey fonts) with a bar
    or ring, in the product's own darkest or lightest tone, about half its width, slightly tilted."""
    h, w = mask.shape
    x0, y0, x1, y1 = _box(mask)
    bw, bh = x1 - x0, y1 - y0
    letters = "ABCDEFGHKLMNOPRSTUVXZ"
    word = "".join(rng.choice(list(letters), int(rng.integers(3, 6))))
    font = int(rng.choice([cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX]))
    (tw, th), base = cv2.getTextSize(word, font, 2.0, 5)
    canvas = np.zeros((th * 3 + 40, tw + 40), np.uint8)
    cv2.putText(canvas, word, (20, th + 20), font, 2.0, 255, 5, cv2.LINE_AA)
    deco = int(rng.integers(3))
    if deco == 0:
        cv2.rectangle(canvas, (20, th + 20 + base + 6), (20 + tw, th + 20 + base + 18), 255, -1)
    elif deco == 1:
        r = th // 2 + 4
        canvas = cv2.copyMakeBorder(canvas, 0, 0, 2 * r + 20, 0, cv2.BORDER_CONSTANT, value=0)
        cv2.circle(canvas, (r + 14, th // 2 + 20), r, 255, 5, cv2.LINE_AA)
        cv2.circle(canvas, (r + 14, th // 2 + 20), max(2, r // 3), 255, -1, cv2.LINE_AA)
    ys, xs = np.nonzero(canvas)
    canvas = canvas[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    target_w = max(8, int(bw * rng.uniform(0.5, 0.6) * severity ** 0.5))
    target_h = max(4, int(canvas.shape[0] * target_w / canvas.shape[1]))
    if target_h > bh * 0.35:
        target_h = max(4, int(bh * 0.35))
        target_w = max(8, int(canvas.shape[1] * target_h / canvas.shape[0]))
    glyph = cv2.resize(canvas, (target_w, target_h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    angle = rng.uniform(-8, 8)
    pad = int(0.3 * max(target_w, target_h))
    glyph = cv2.copyMakeBorder(glyph, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    M = cv2.getRotationMatrix2D((glyph.shape[1] / 2, glyph.shape[0] / 2), angle, 1.0)
    glyph = cv2.warpAffine(glyph, M, (glyph.shape[1], glyph.shape[0]), flags=cv2.INTER_LINEAR)
    # place it where the product covers the glyph's box best, near the middle
    gh, gw = glyph.shape
    cover = cv2.boxFilter((cv2.erode(mask, np.ones((3, 3), np.uint8)) > 127).astype(np.float32), -1,
                          (max(1, target_w), max(1, target_h)), normalize=True, borderType=cv2.BORDER_CONSTANT)
    yy, xx = np.mgrid[0:h, 0:w]
    mid = np.exp(-(((xx - (x0 + x1) / 2) / (0.35 * bw + 1)) ** 2 + ((yy - (y0 + y1) / 2) / (0.35 * bh + 1)) ** 2))
    score = cover * (0.4 + mid) + rng.uniform(0, 0.05, cover.shape)
    cy, cx = np.unravel_index(int(np.argmax(score)), score.shape)
    layer = np.zeros((h, w), np.float32)
    gx0, gy0 = cx - gw // 2, cy - gh // 2
    sx0, sy0 = max(0, -gx0), max(0, -gy0)
    ex, ey = min(w, gx0 + gw), min(h, gy0 + gh)
    layer[max(0, gy0):ey, max(0, gx0):ex] = glyph[sy0:sy0 + ey - max(0, gy0), sx0:sx0 + ex - max(0, gx0)]
    dark, light, mean = _palette(image, mask)
    # the tone further from the surface under the logo
    under = image[(layer > 0.3)]
    under_l = float((under.astype(np.float32) @ np.array([0.299, 0.587, 0.114])).mean()) if len(under) else mean
    ink = dark if abs(under_l - dark @ [0.299, 0.587, 0.114]) > abs(under_l - light @ [0.299, 0.587, 0.114]) else light
    ink_l = float(ink @ np.array([0.299, 0.587, 0.114]))
    if abs(ink_l - under_l) < 60:  # too close to be read: darken or lighten the product's tone
        ink = np.clip(ink * 0.35, 0, 255) if under_l > 110 else np.clip(ink + (255 - ink) * 0.75, 0, 255)
    top = np.broadcast_to(ink, image.shape)
    alpha = cv2.GaussianBlur(layer, (0, 0), 0.4) * 0.95 * (mask > 127)
    return _blend(image, top, alpha), mask


def clone_part(image, mask, rng, severity=1.0):
    """A duplicated part: a piece of the product's own edge (a fifth of its box per side, with its outline, like a
    handle, spout, cap or strap) copied, turned (at most 25 degrees) or mirrored, and set down again further along the outline, sticking out a
    little."""
    h, w = mask.shape
    x0, y0, x1, y1 = _box(mask)
    bw, bh = x1 - x0, y1 - y0
    rx, ry = max(3, bw * 0.2 * severity ** 0.5), max(3, bh * 0.2 * severity ** 0.5)
    contours, _ = cv2.findContours((mask > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return image.copy(), mask
    pts = max(contours, key=cv2.contourArea)[:, 0, :].astype(np.float32)
    n = len(pts)
    if n < 8:
        return image.copy(), mask
    i = int(rng.integers(n))
    sx, sy = pts[i]
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    # the piece's centre: 40 % of its radius inside the outline, so it is mostly product
    nx, ny = sx - mx, sy - my
    nn = max(np.hypot(nx / max(bw, 1), ny / max(bh, 1)), 1e-6)
    ux, uy = nx / max(bw, 1) / nn, ny / max(bh, 1) / nn  # outward, in box units
    sx, sy = sx - 0.4 * rx * ux, sy - 0.4 * ry * uy
    # the copy: about a third of the outline further on, pushed out by a quarter of its radius
    step = int(n * rng.uniform(0.12, 0.2)) * (1 if rng.random() < 0.5 else -1)
    tx, ty = pts[(i + step) % n]
    nx, ny = tx - mx, ty - my
    nn = max(np.hypot(nx / max(bw, 1), ny / max(bh, 1)), 1e-6)
    vx, vy = nx / max(bw, 1) / nn, ny / max(bh, 1) / nn
    tx, ty = tx - 0.15 * rx * vx, ty - 0.15 * ry * vy
    tx, ty = float(np.clip(tx, rx, w - rx)), float(np.clip(ty, ry, h - ry))
    piece_mask = _blob(h, w, sx, sy, rx, ry, rng, 0.15) & (mask > 127).astype(np.uint8)
    # turn the piece (at most 25 degrees) so its outward side faces out again; mirror it for the far side
    flip = ux * vx < -0.3
    if flip:
        ux = -ux
    turn = (np.arctan2(vy, vx) - np.arctan2(uy, ux) + np.pi) % (2 * np.pi) - np.pi
    angle = float(np.clip(np.degrees(turn), -25, 25))
    M = cv2.getRotationMatrix2D((float(sx), float(sy)), -angle, 1.0)
    if flip:  # mirror about the piece's centre first
        F = np.array([[-1, 0, 2 * sx], [0, 1, 0], [0, 0, 1]], np.float64)
        M = (np.vstack([M, [0, 0, 1]]) @ F)[:2]
    M[0, 2] += tx - sx
    M[1, 2] += ty - sy
    moved = cv2.warpAffine(image, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    pm = cv2.warpAffine(piece_mask.astype(np.float32), M, (w, h), flags=cv2.INTER_LINEAR)
    alpha = _feather(pm, 0.9) * (pm > 0.02)
    new_mask = np.where((mask > 127) | (pm > 0.5), 255, 0).astype(np.uint8)
    return _blend(image, moved, alpha), new_mask


# ----------------------------------------------------------------------------------------------- missing parts
def hole_smear(image, mask, rng, severity=1.0):
    """A part the inpainter lost: an irregular bite out of one edge of the product (15-35 % of it) is replaced
    by a smear of its surroundings, mostly the scene (a push-pull pyramid fill with the scene's grain)."""
    h, w = mask.shape
    x0, y0, x1, y1 = _box(mask)
    bw, bh = x1 - x0, y1 - y0
    inside = mask > 127
    area = max(1, int(inside.sum()))
    edge = inside & (cv2.erode(mask, np.ones((5, 5), np.uint8)) <= 127)
    ys, xs = np.nonzero(edge)
    if len(xs) == 0:
        return image.copy(), mask
    rx, ry = max(3, bw * 0.32 * severity ** 0.5), max(3, bh * 0.32 * severity ** 0.5)
    band = cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 127  # the bite and a thin rim past the outline
    hole, best = None, -1.0
    for _ in range(8):
        i = int(rng.integers(len(xs)))
        blob = _blob(h, w, float(xs[i]), float(ys[i]), rx, ry, rng, 0.3) & band.astype(np.uint8)
        share = float((blob.astype(bool) & inside).sum()) / area
        score = -abs(share - 0.25)
        if score > best:
            hole, best = blob, score
        if 0.15 <= share <= 0.35:
            break
    # the fill leans on the scene: product pixels just around the bite are not used
    k = max(3, int(0.25 * min(rx, ry))) | 1
    unknown = hole.astype(bool) | (inside & (cv2.dilate(hole, np.ones((k, k), np.uint8)) > 0))
    filled = _push_pull(image, ~unknown)
    grain = rng.normal(0, 2.5, image.shape).astype(np.float32)
    filled = np.clip(filled.astype(np.float32) + cv2.GaussianBlur(grain, (0, 0), 0.7), 0, 255).astype(np.uint8)
    alpha = _feather(hole, 1.2) * band
    return _blend(image, filled, alpha), mask


# ----------------------------------------------------------------------------------------------- shape
def elastic(image, mask, rng, severity=1.0):
    """A lumpy, wrong shape: a smooth random displacement field (a 5x5 grid of random pushes, bicubic, up to
    7.5 % of the product's size) moves product pixels and outline; the background it left is filled."""
    h, w = mask.shape
    x0, y0, x1, y1 = _box(mask)
    size = max(x1 - x0, y1 - y0)
    amp = severity * 0.075 * size
    field = rng.uniform(-1, 1, (2, 5, 5)).astype(np.float32)
    pad = int(0.25 * size)
    gx0, gy0 = max(0, x0 - pad), max(0, y0 - pad)
    gx1, gy1 = min(w, x1 + pad), min(h, y1 + pad)
    dx = np.zeros((h, w), np.float32)
    dy = np.zeros((h, w), np.float32)
    dx[gy0:gy1, gx0:gx1] = cv2.resize(field[0], (gx1 - gx0, gy1 - gy0), interpolation=cv2.INTER_CUBIC)
    dy[gy0:gy1, gx0:gx1] = cv2.resize(field[1], (gx1 - gx0, gy1 - gy0), interpolation=cv2.INTER_CUBIC)
    # fade out away from the product, so the scene stays put
    near = cv2.GaussianBlur(cv2.dilate(mask, np.ones((9, 9), np.uint8)).astype(np.float32) / 255, (0, 0), size * 0.1)
    near = np.clip(near * 2, 0, 1)
    peak = max(float(np.abs(dx).max()), float(np.abs(dy).max()), 1e-6)
    dx, dy = dx / peak * amp * near, dy / peak * amp * near
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return _reshape(image, mask, xx + dx, yy + dy)


def taper(image, mask, rng, severity=1.0):
    """A perspective-inconsistent shape: one end of the product is narrowed to 60-70 % (a keystone along its
    long axis, the other end kept), as if seen from an angle the rest of the photo does not share."""
    h, w = mask.shape
    x0, y0, x1, y1 = _box(mask)
    bw, bh = max(2, x1 - x0), max(2, y1 - y0)
    f = 1 - severity * rng.uniform(0.3, 0.4)  # width of the narrowed end
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if bh >= bw:  # narrow the top or the bottom
        t = np.clip((yy - y0) / bh, 0, 1)
        t = t if rng.random() < 0.5 else 1 - t  # t = 0 at the narrowed end
        scale = f + (1 - f) * t
        map_x, map_y = cx + (xx - cx) / scale, yy
    else:
        t = np.clip((xx - x0) / bw, 0, 1)
        t = t if rng.random() < 0.5 else 1 - t
        scale = f + (1 - f) * t
        map_x, map_y = xx, cy + (yy - cy) / scale
    return _reshape(image, mask, map_x.astype(np.float32), map_y.astype(np.float32))


def _v(fn) -> Variant:
    return Variant(fn.__name__.replace("_", "-"), "identity", fn, " ".join((fn.__doc__ or "").split()))


THIRD: tuple[Variant, ...] = tuple(_v(fn) for fn in (part_tint, cast, waxy, gibberish, donor_part, fake_logo,
                                                      clone_part, hole_smear, elastic, taper))
"""The third set's identity failures, in report order (colour 2, detail 2, foreign part 3, missing part 1, shape 2)."""
