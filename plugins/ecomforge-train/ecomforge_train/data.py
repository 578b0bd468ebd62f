"""Training images: references or an exported imagefolder, augmented crops/flips and inpainting masks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ecomforge.errors import InputError
from ecomforge.jsonl import read_rows

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True, eq=False)
class Example:
    """One training image (RGB uint8), its product mask (uint8 {0,255} or None) and its prompt."""

    image: np.ndarray
    prompt: str
    mask: np.ndarray | None = None
    source: str = ""


def is_imagefolder(path: Path) -> bool:
    """True for a folder written by ``ecomforge export`` (a ``metadata.jsonl`` beside the images)."""
    return path.is_dir() and (path / "metadata.jsonl").is_file()


def read_imagefolder(folder: Path) -> list[tuple[Path, str]]:
    """(image path, text) for every line of an imagefolder's ``metadata.jsonl``."""
    meta = folder / "metadata.jsonl"
    rows = []
    for n, row in read_rows(meta):
        name, text = row.get("file_name"), row.get("text", "")
        if not isinstance(name, str):
            raise InputError(f"{meta}: line {n} is not a JSON object with 'file_name' and 'text'")
        if not (folder / name).is_file():
            raise InputError(f"{meta}: line {n} names {name!r}, which is not in {folder}")
        rows.append((folder / name, str(text)))
    return rows


def load_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8 (EXIF rotation applied); errors name the file."""
    from PIL import ImageOps

    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB")).copy()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from exc


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def fit_short_side(image: np.ndarray, side: int, *, nearest: bool = False) -> np.ndarray:
    """Resize so the short side is ``side`` px (aspect kept): training crops never need more pixels."""
    h, w = image.shape[:2]
    scale = side / min(h, w)
    size = (max(side, round(w * scale)), max(side, round(h * scale)))
    if size == (w, h):
        return image
    resample = Image.NEAREST if nearest else Image.LANCZOS
    return np.asarray(Image.fromarray(image).resize(size, resample))


def to_tensors(examples: list[Example], resolution: int) -> list[dict[str, Any]]:
    """Pre-resize every example and turn it into float tensors (image in [-1,1], mask in {0,1})."""
    import torch

    out = []
    for ex in examples:
        img = fit_short_side(ex.image, resolution)
        pixels = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 127.5 - 1.0
        mask = None
        if ex.mask is not None:
            m = fit_short_side(ex.mask, resolution, nearest=True)
            if m.shape[:2] != img.shape[:2]:
                m = np.asarray(Image.fromarray(m).resize(img.shape[1::-1], Image.NEAREST))
            mask = torch.from_numpy((m > 127).astype(np.float32))[None]
        out.append({"pixels": pixels, "mask": mask, "prompt": ex.prompt})
    return out


def _rand(gen: Any) -> float:
    import torch

    return float(torch.rand((), generator=gen))


def _randint(gen: Any, low: int, high: int) -> int:
    """An int in [low, high] inclusive."""
    import torch

    return int(torch.randint(low, high + 1, (), generator=gen))


def random_mask(size: int, gen: Any) -> Any:
    """1–3 random rectangles (sometimes the whole image) as a 1×size×size float mask, 1 = repaint."""
    import torch

    mask = torch.zeros(1, size, size)
    if _rand(gen) < 0.1:  # a full mask: the model must draw the product from the prompt alone
        return mask + 1.0
    for _ in range(_randint(gen, 1, 3)):
        h, w = _randint(gen, size // 8, size * 3 // 4), _randint(gen, size // 8, size * 3 // 4)
        y, x = _randint(gen, 0, size - h), _randint(gen, 0, size - w)
        mask[:, y:y + h, x:x + w] = 1.0
    return mask


def sample_batch(items: list[dict[str, Any]], count: int, resolution: int, gen: Any, *, flip: bool,
                 crop_scale: float, inpaint: bool, product_mask_prob: float) -> dict[str, Any]:
    """Draw ``count`` augmented examples with the seeded generator ``gen``: pixels, masks, prompts."""
    import torch
    import torch.nn.functional as F

    pixels, masks, prompts = [], [], []
    for _ in range(count):
        item = items[_randint(gen, 0, len(items) - 1)]
        img, pmask = item["pixels"], item["mask"]
        _, h, w = img.shape
        side = max(8, round(min(h, w) * (crop_scale + (1.0 - crop_scale) * _rand(gen))))
        y, x = _randint(gen, 0, h - side), _randint(gen, 0, w - side)
        crop = F.interpolate(img[None, :, y:y + side, x:x + side], size=(resolution, resolution),
                             mode="bilinear", align_corners=False, antialias=side > resolution)[0]
        do_flip = flip and _rand(gen) < 0.5
        if do_flip:
            crop = crop.flip(-1)
        pixels.append(crop)
        prompts.append(item["prompt"])
        if not inpaint:
            continue
        if pmask is not None and _rand(gen) < product_mask_prob:
            m = F.interpolate(pmask[None, :, y:y + side, x:x + side], size=(resolution, resolution), mode="nearest")[0]
            if do_flip:
                m = m.flip(-1)
            # the generator repaints the background around the product; repainting the product itself
            # is what teaches its look, so both sides of the product mask are trained
            masks.append(1.0 - m if _rand(gen) < 0.5 else m)
        else:
            masks.append(random_mask(resolution, gen))
    batch = {"pixels": torch.stack(pixels).clamp(-1, 1), "prompts": prompts}
    if inpaint:
        batch["masks"] = torch.stack(masks)
    return batch
