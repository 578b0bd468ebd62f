"""Mask clean-up options shared by every masker, as a config base class."""
from __future__ import annotations

import numpy as np
from pydantic import Field

from ..stages import StageConfig
from ..types import Mask
from .masks import refine


class RefineConfig(StageConfig):
    """Clean-up and paste-back options shared by maskers: subclass it as (part of) a masker's Config."""

    fill_holes: bool = Field(True, description="Fill background regions enclosed by the product.")
    close_radius: int = Field(0, ge=0, le=256,
                              description="Morphological closing radius (px) before hole filling; bridges small gaps.")
    largest: int = Field(0, ge=0, description="Keep only the N largest connected parts (0 = no limit).")
    min_area_fraction: float = Field(0.0, ge=0.0, le=1.0,
                                     description="Drop parts smaller than this fraction of the largest part.")
    dilate: int = Field(0, ge=-256, le=256,
                        description="Paste-back reach beyond the product in px (>0, kept on Mask.dilate; the mask "
                                    "itself stays the product), or shrink the mask by this many px (<0).")
    feather: int = Field(0, ge=0, le=256, description="Soft edge width (px) used when the product is pasted back.")

    def apply(self, mask: np.ndarray) -> np.ndarray:
        """Run the shared refine chain with these options (growth is left to paste-back, see ``finish``)."""
        # Growing here as well would dilate twice: generators grow the paste-back region by Mask.dilate.
        return refine(mask, fill=self.fill_holes, close_radius=self.close_radius, largest=self.largest,
                      min_area_fraction=self.min_area_fraction, grow=min(self.dilate, 0))

    def finish(self, data: np.ndarray, *, score: float, label: str) -> Mask:
        """Wrap a refined mask with the paste-back geometry."""
        return Mask(data=data, score=score, label=label, feather=self.feather, dilate=max(0, self.dilate))
