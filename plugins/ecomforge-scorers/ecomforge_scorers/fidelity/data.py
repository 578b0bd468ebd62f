"""The benchmark's photos: every view of each DreamBench product with its product mask, and the scenes."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ecomforge.errors import InputError, UsageError
from ecomforge.imaging.masks import refine
from ecomforge.types import Mask, Reference

from .boxes import BOXES, HINTS

DREAMBENCH = ("backpack", "berry_bowl", "can", "candle", "clock", "colorful_sneaker", "duck_toy", "rc_car",
              "teapot", "vase")
# Tuning happens on these; the others are reported apart as held-out products.
TUNE = ("backpack", "berry_bowl", "can", "clock", "duck_toy", "teapot")
# Other products of a similar kind: the hard cross-product negatives (same class, or same colour and size).
SIMILAR = {"backpack": "colorful_sneaker", "berry_bowl": "candle", "can": "candle", "candle": "can",
           "clock": "duck_toy", "colorful_sneaker": "backpack", "duck_toy": "rc_car", "rc_car": "duck_toy",
           "teapot": "vase", "vase": "teapot"}
SCENES = ("coffee", "chelsea", "astronaut", "rocket", "studio-light", "studio-grey", "studio-gradient")
MASK_METHODS = ("boxes", "classic")
DEFAULT_BOX = (0.15, 0.12, 0.85, 0.88)  # for a photo without a hand-drawn box


@dataclass(frozen=True)
class Photo:
    """One real photo of a product: the reference it plays, its mask and how the mask was made."""

    product: str
    view: str
    reference: Reference
    mask: Mask
    mask_method: str


def find_samples() -> Path | None:
    """The repository's samples/dreambench folder, looked for upwards from the working dir and from here."""
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            candidate = folder / "samples" / "dreambench"
            if candidate.is_dir():
                return candidate
    return None


def _read(path: Path, size: int) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{path}: not a readable image")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    scale = size / max(image.shape[:2])
    if scale < 1:  # the benchmark measures scorers, not resolution: small images keep it fast
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def _paint(labels: np.ndarray, shapes: tuple, value: int) -> None:
    """Draw hint shapes (fractions of width/height, see boxes.py) into GrabCut's label image."""
    h, w = labels.shape
    for kind, *args in shapes:
        if kind == "rect":
            x0, y0, x1, y1 = args
            labels[round(y0 * h):round(y1 * h), round(x0 * w):round(x1 * w)] = value
        elif kind == "ellipse":
            cx, cy, rx, ry = args
            cv2.ellipse(labels, (round(cx * w), round(cy * h)), (max(1, round(rx * w)), max(1, round(ry * h))),
                        0, 0, 360, value, -1)
        else:  # "poly" (filled) or "line" (a polyline of the given width, a fraction of the long side)
            width, points = (0, args) if kind == "poly" else (args[0], args[1:])
            pts = np.array([(round(x * w), round(y * h)) for x, y in points], np.int32)
            if kind == "poly":
                cv2.fillPoly(labels, [pts], value)
            else:
                cv2.polylines(labels, [pts], False, value, max(1, round(width * max(h, w))))


def _box_pixels(box: tuple[float, float, float, float], h: int, w: int) -> tuple[int, int, int, int]:
    """The box in pixels, kept one pixel inside the image (GrabCut needs some background)."""
    return max(1, int(box[0] * w)), max(1, int(box[1] * h)), min(w - 2, int(box[2] * w)), min(h - 2, int(box[3] * h))


def hint_mask(image: np.ndarray, box: tuple[float, float, float, float], hints: dict) -> np.ndarray:
    """GrabCut from a label image: outside the box and bg hints definite background, fg hints definite product."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = _box_pixels(box, h, w)
    labels = np.full((h, w), cv2.GC_BGD, np.uint8)
    labels[y0:y1, x0:x1] = cv2.GC_PR_FGD
    _paint(labels, hints.get("bg", ()), cv2.GC_BGD)
    _paint(labels, hints.get("fg", ()), cv2.GC_FGD)
    labels[:y0], labels[y1:], labels[:, :x0], labels[:, x1:] = cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation is random
    cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), labels, None, np.zeros((1, 65)), np.zeros((1, 65)), 5,
                cv2.GC_INIT_WITH_MASK)
    return refine(np.where((labels == 1) | (labels == 3), 255, 0).astype(np.uint8), fill=True, largest=1)


def box_mask(image: np.ndarray, box: tuple[float, float, float, float],
             hints: dict | None = None) -> tuple[np.ndarray, str]:
    """The product mask: GrabCut guided by hand-placed hints if given, else the loose-box heuristics below."""
    if hints:
        return hint_mask(image, box, hints), "grabcut-hints"
    h, w = image.shape[:2]
    x0, y0, x1, y1 = _box_pixels(box, h, w)
    labels = np.zeros((h, w), np.uint8)
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation is random
    cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), labels, (x0, y0, x1 - x0, y1 - y0), np.zeros((1, 65)),
                np.zeros((1, 65)), 5, cv2.GC_INIT_WITH_RECT)
    mask = refine(np.where((labels == 1) | (labels == 3), 255, 0).astype(np.uint8), fill=True, largest=1)
    area = np.count_nonzero(mask)
    if area >= (x1 - x0) * (y1 - y0) / 3:
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        hull = np.zeros_like(mask)
        cv2.fillPoly(hull, [cv2.convexHull(max(contours, key=cv2.contourArea))], 255)
        # GrabCut often keeps one colour of a two-coloured product (half a can): its hull is the better guess.
        return (hull, "grabcut-hull") if area < 0.7 * np.count_nonzero(hull) else (mask, "grabcut-box")
    # An unknown photo where GrabCut finds little: the box's ellipse is a rough stand-in for statistics.
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, ((x0 + x1) // 2, (y0 + y1) // 2), ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, 255, -1)
    return mask, "box-ellipse"


def classic_mask(reference: Reference) -> np.ndarray | None:
    """The registry's ``classic`` masker, or None if it is absent or finds nothing."""
    try:
        from ecomforge.plugins import get_registry

        return get_registry().create("masker", "classic", {}).mask(reference).data
    except Exception:  # absent plugin or NothingFound: the caller falls back to the box
        return None


def load_photos(product: str, size: int = 256, masks: str = "boxes") -> list[Photo]:
    """Every photo of one DreamBench product, long side at most ``size``, each with its product mask."""
    samples = find_samples()
    if product not in DREAMBENCH:
        raise UsageError(f"fidelity product '{product}': not a DreamBench product", hint=f"products: {', '.join(DREAMBENCH)}")
    if samples is None or not (samples / product).is_dir():
        raise InputError(f"samples/dreambench/{product}: folder not found (run from the repository)")
    if masks not in MASK_METHODS:
        raise UsageError(f"--masks {masks!r}: expected one of {', '.join(MASK_METHODS)}")
    photos = []
    for path in sorted((samples / product).glob("*.jpg")):
        image = _read(path, size)
        view = path.stem
        ref = Reference(image=image, source=f"samples/dreambench/{product}/{path.name}",
                        sha256=hashlib.sha256(image.tobytes()).hexdigest(), product=product, name=f"{product}-{view}")
        data = classic_mask(ref) if masks == "classic" else None
        how = "classic"
        if data is None or not 0.01 < data.mean() / 255 < 0.7:
            key = f"{product}/{view}"
            data, how = box_mask(image, BOXES.get(key, DEFAULT_BOX), HINTS.get(key))
        photos.append(Photo(product, view, ref, Mask(data, label=how), how))
    return photos


def scene(name: str, shape: tuple[int, int]) -> np.ndarray:
    """A real scene (a scikit-image photo) or a plain studio background, resized/cropped to ``shape`` (h, w)."""
    h, w = shape
    if name.startswith("studio-"):
        tone = {"studio-light": (236, 233, 228), "studio-grey": (196, 199, 203), "studio-gradient": (250, 246, 240)}[name]
        base = np.broadcast_to(np.float32(tone), (h, w, 3)).copy()
        if name == "studio-gradient":  # a sweep: light at the top, warmer and darker at the floor
            base *= np.linspace(1.0, 0.82, h, dtype=np.float32)[:, None, None]
        grain = np.random.default_rng(0).normal(0, 1.5, (h, w, 1)).astype(np.float32)  # real backdrops are never flat
        return np.clip(base + grain, 0, 255).astype(np.uint8)
    import skimage.data

    photo = np.ascontiguousarray(getattr(skimage.data, name)()[:, :, :3])
    ph, pw = photo.shape[:2]
    s = max(h / ph, w / pw)  # cover, then centre-crop
    photo = cv2.resize(photo, (max(w, round(pw * s)), max(h, round(ph * s))), interpolation=cv2.INTER_AREA)
    y, x = (photo.shape[0] - h) // 2, (photo.shape[1] - w) // 2
    return np.ascontiguousarray(photo[y:y + h, x:x + w])
