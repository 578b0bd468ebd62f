"""Mask preview for the UI: run one masker on one uploaded photo and draw the mask over it."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ..types import Reference
from .uploads import Limits, decode_upload


def masker_config(plugin: str, preset_mask: dict[str, Any], text: str | None,
                  points: list[tuple[float, float, int]] | None, mask_file: str | None) -> dict[str, Any]:
    """The mask step's config from the preset (same plugin only) plus what the user set in the UI."""
    from ..plugins import get_registry

    fields = get_registry().get("masker", plugin).cls.Config.model_fields
    config = dict(preset_mask.get("config") or {}) if preset_mask.get("plugin") == plugin else {}
    if text and "text" in fields:
        config["text"] = text
    if points and "points" in fields:
        config["points"] = [[float(x), float(y)] for x, y, _ in points]
        config["labels"] = [int(label) for _, _, label in points]
    if mask_file and "path" in fields:
        config["path"] = str(mask_file)
    return config


def preview_mask(image_path: str | Path, plugin: str, config: dict[str, Any], limits: Limits) -> tuple[np.ndarray, str]:
    """(overlay image, one-line summary) for the first reference with the chosen masker."""
    from ..plugins import get_registry
    from ..run.overlay import mask_overlay

    data = Path(image_path).read_bytes()
    rgb, alpha = decode_upload(data, "reference 1", limits)
    ref = Reference(image=rgb, source=str(image_path), sha256=hashlib.sha256(data).hexdigest(), alpha=alpha,
                    product="preview", name="00")
    masker = get_registry().create("masker", plugin, config, path="mask.config")
    masker.ensure_setup()
    mask = masker.mask(ref)
    area = float((mask.data > 0).mean())
    return mask_overlay(rgb, mask.data, max_side=768), f"{plugin}: score {mask.score:.2f}, product covers {area:.0%}"
