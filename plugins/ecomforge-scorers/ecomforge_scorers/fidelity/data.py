"""The benchmark's products: real photos (DreamBench subset, skimage.data) with automatic product masks."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ecomforge.errors import InputError
from ecomforge.imaging.masks import refine
from ecomforge.types import Mask, Reference

DREAMBENCH = ("backpack", "berry_bowl", "can", "candle", "clock", "colorful_sneaker", "duck_toy", "rc_car",
              "teapot", "vase")
SKIMAGE = ("coffee", "chelsea", "astronaut", "rocket")

# How each default product is masked. The classic masker needs a plain background, so it is used
# where the photo has one; GrabCut from a central box handles the cluttered ones; the two skimage
# photos of people/animals have no product and get the central box itself.
MASK_METHOD = {"berry_bowl": "classic", "can": "classic", "rocket": "classic", "chelsea": "box", "astronaut": "box"}


@dataclass(frozen=True)
class Product:
    """One benchmark product: its reference, its product mask and how the mask was made."""

    name: str
    reference: Reference
    mask: Mask
    mask_method: str
    source: str


def find_samples() -> Path | None:
    """The repository's samples/dreambench folder, looked for upwards from here and the working dir."""
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            candidate = folder / "samples" / "dreambench"
            if candidate.is_dir():
                return candidate
    return None


def load_image(name: str, samples: Path | None, size: int) -> tuple[np.ndarray, str]:
    """The RGB photo for a product name (a DreamBench folder, a skimage.data photo or an image path)."""
    if name in SKIMAGE:
        import skimage.data

        image, source = getattr(skimage.data, name)(), f"skimage.data.{name}"
    else:
        path = samples / name / "00.jpg" if samples is not None and name in DREAMBENCH else Path(name)
        if not path.is_file():
            raise InputError(f"fidelity product '{name}': no such DreamBench product or image file",
                             hint=f"products: {', '.join(DREAMBENCH + SKIMAGE)}")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"{path}: not a readable image")
        image, source = cv2.cvtColor(image, cv2.COLOR_BGR2RGB), str(path)
        if samples is not None and path.is_relative_to(samples.parent.parent):  # repo-relative in the JSON
            source = str(path.relative_to(samples.parent.parent))
    image = np.ascontiguousarray(image[:, :, :3])
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale < 1:  # the benchmark measures scorers, not resolution: small images keep it fast
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return image, source


def central_box(shape: tuple[int, ...], frac: float = 0.6) -> np.ndarray:
    """A centred box mask covering ``frac`` of each side."""
    h, w = shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mh, mw = int(h * (1 - frac) / 2), int(w * (1 - frac) / 2)
    mask[mh:h - mh, mw:w - mw] = 255
    return mask


def grabcut(image: np.ndarray) -> np.ndarray | None:
    """GrabCut seeded with a central box, largest part kept; None if it finds almost nothing."""
    h, w = image.shape[:2]
    labels = np.zeros((h, w), np.uint8)
    rect = (int(w * 0.15), int(h * 0.12), int(w * 0.7), int(h * 0.76))
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation is random
    cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), labels, rect, np.zeros((1, 65)), np.zeros((1, 65)), 4,
                cv2.GC_INIT_WITH_RECT)
    mask = refine(np.where((labels == 1) | (labels == 3), 255, 0).astype(np.uint8), fill=True, largest=1)
    return mask if 0.005 < mask.mean() / 255 < 0.8 else None


def classic_mask(reference: Reference) -> np.ndarray | None:
    """The registry's ``classic`` masker (ecomforge-classic), or None if absent or it finds nothing."""
    try:
        from ecomforge.plugins import get_registry

        return get_registry().create("masker", "classic", {}).mask(reference).data
    except Exception:  # absent plugin or NothingFound: the caller falls back
        return None


def product_mask(reference: Reference, method: str) -> tuple[np.ndarray, str]:
    """The product mask by ``method`` (classic, grabcut, box or auto), falling back to a central box."""
    order = {"classic": ("classic", "grabcut"), "grabcut": ("grabcut",), "box": (), "auto": ("classic", "grabcut")}[method]
    for how in order:
        mask = classic_mask(reference) if how == "classic" else grabcut(reference.image)
        if mask is not None and (method != "auto" or 0.02 < mask.mean() / 255 < 0.6):
            return mask, how
    return central_box(reference.image.shape), "box"


def load_products(names: list[str], size: int = 256) -> list[Product]:
    """Load each product's photo (long side at most ``size``) and mask it."""
    samples = find_samples()
    products = []
    for name in names:
        image, source = load_image(name, samples, size)
        label = Path(name).stem if name not in DREAMBENCH + SKIMAGE else name
        sha = hashlib.sha256(image.tobytes()).hexdigest()
        ref = Reference(image=image, source=source, sha256=sha, product=label, name=label)
        mask, how = product_mask(ref, MASK_METHOD.get(name, "grabcut" if name in DREAMBENCH + SKIMAGE else "auto"))
        products.append(Product(label, ref, Mask(mask, label=how), how, source))
    return products
