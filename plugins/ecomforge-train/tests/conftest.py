"""Tiny SD pipelines built once per session; everything offline, one CPU thread (the cores are shared)."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any hub library reads it
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; more only oversubscribe the shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """One folder for every tiny model of the session."""
    return tmp_path_factory.mktemp("tiny-train")


@pytest.fixture(scope="session")
def photos(tiny_root):
    """Three small real photos (skimage) saved as JPEG files, and their references + product masks."""
    import skimage.data
    from PIL import Image

    folder = tiny_root / "photos"
    folder.mkdir(exist_ok=True)
    for i, img in enumerate([skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]):
        Image.fromarray(img).resize((96, 72)).save(folder / f"{i:02d}.jpg", quality=95)
    return folder


@pytest.fixture
def references(photos):
    """References of the photos with a centred box as the product mask."""
    import hashlib

    from PIL import Image

    from ecomforge.types import Mask, Reference

    refs, masks = [], []
    for path in sorted(photos.glob("*.jpg")):
        img = np.asarray(Image.open(path).convert("RGB"))
        refs.append(Reference(image=img, source=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest()))
        m = np.zeros(img.shape[:2], np.uint8)
        m[18:54, 24:72] = 255
        masks.append(Mask(m))
    return refs, masks


def small_config(base_model, **kw):
    """A fast training config for the tiny models (64 px, rank 4, no validation unless asked)."""
    cfg = {"base_model": str(base_model), "instance_prompt": "a photo of sks cup", "steps": 4, "resolution": 64,
           "rank": 4, "checkpoint_every": 2, "validation": {"num_images": 0}}
    cfg.update(kw)
    return cfg


@pytest.fixture
def config_for():
    """``config_for(base_model, **overrides)``: a fast training config dict."""
    return small_config
