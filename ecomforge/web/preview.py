"""Mask preview for the UI: run one masker on one uploaded photo, draw the mask over it, warn when it is unsure."""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..stages import Masker
from ..types import Reference
from .uploads import Limits, decode_upload

# Below this mask score the preview says the mask may be wrong (scores are each masker's own confidence).
LOW_CONFIDENCE = 0.5
# A product covering less or more than this share of the photo is usually a wrong region.
AREA_RANGE = (0.02, 0.9)


def masker_accepts(plugin: str) -> Mapping[str, str]:
    """What a masker declares it takes (``Masker.accepts``), limited to keys its Config really has."""
    from ..plugins import get_registry

    found = get_registry().plugins.get("masker", {}).get(plugin)
    if found is None:  # not installed: it takes nothing the UI could offer
        return {}
    cls = found.cls
    fields = cls.Config.model_fields
    return {what: key for what, key in dict(getattr(cls, "accepts", {}) or {}).items() if key in fields}


def masker_config(plugin: str, preset_mask: dict[str, Any], text: str | None,
                  points: list[tuple[float, float, int]] | None, mask_file: str | None) -> dict[str, Any]:
    """The mask step's config from the preset (same plugin only) plus what the user set in the UI.

    Each UI input goes to the config key the masker declares for it; inputs it does not accept are dropped.
    """
    accepts = masker_accepts(plugin)
    config = dict(preset_mask.get("config") or {}) if preset_mask.get("plugin") == plugin else {}
    if text and "text" in accepts:
        config[accepts["text"]] = text
    if points and "points" in accepts:
        config[accepts["points"]] = [[float(x), float(y)] for x, y, _ in points]
        if "point_labels" in accepts:
            config[accepts["point_labels"]] = [int(label) for _, _, label in points]
    if mask_file and "mask" in accepts:
        config[accepts["mask"]] = _as_file(plugin, accepts["mask"], str(mask_file))
    return config


def _as_file(plugin: str, key: str, path: str) -> str:
    """``path`` for the masker's ``key``: where that setting is a pattern, its braces are taken literally."""
    from ..imaging.maskfile import escape_pattern
    from ..pathspec import path_fields
    from ..plugins import get_registry

    found = get_registry().plugins.get("masker", {}).get(plugin)
    patterns = {loc for loc, f in path_fields(found.cls.Config) if f.pattern} if found is not None else set()
    return escape_pattern(path) if key in patterns else path


def confidence_warning(score: float, area: float) -> str | None:
    """A one-line warning when a mask is probably wrong (low score, or a region too small or too large)."""
    if score < LOW_CONFIDENCE:
        return (f"Low confidence ({score:.2f}): the mask may have picked the wrong region. Check the overlay; "
                "try another masker, a plainer background, or upload a mask.")
    if not AREA_RANGE[0] <= area <= AREA_RANGE[1]:
        return (f"The mask covers {area:.0%} of the photo, which is unusual for a product. Check the overlay "
                "before running.")
    return None


def preview_mask(image_path: str | Path, plugin: str, config: dict[str, Any],
                 limits: Limits) -> tuple[np.ndarray, str, str | None]:
    """(overlay image, one-line summary, warning or None) for the first reference with the chosen masker."""
    from ..plugins import get_registry
    from ..run.overlay import mask_overlay

    data = Path(image_path).read_bytes()
    rgb, alpha = decode_upload(data, "reference 1", limits)
    # The upload's own name, not its server path, is what messages show.
    ref = Reference(image=rgb, source=Path(image_path).name, sha256=hashlib.sha256(data).hexdigest(), alpha=alpha,
                    product="preview", name="00")
    masker = get_registry().create("masker", plugin, config, path="mask.config")
    assert isinstance(masker, Masker)
    masker.ensure_setup()
    mask = masker.mask(ref)
    area = float((mask.data > 0).mean())
    info = f"{plugin}: score {mask.score:.2f}, product covers {area:.0%}"
    return mask_overlay(rgb, mask.data, max_side=768), info, confidence_warning(float(mask.score), area)
