"""The ``cv-inpaint`` generator: OpenCV inpainting to remove or fill a masked region."""
from __future__ import annotations

from typing import Literal

import cv2
from pydantic import Field

from ecomforge.imaging.masks import dilate
from ecomforge.stages import Generator, StageConfig
from ecomforge.types import Candidate, GenerationRequest


class CvInpaintGenerator(Generator):
    """Fill a region from its surroundings (cv2.inpaint): e.g. remove the product to get a clean plate."""

    name = "cv-inpaint"

    class Config(StageConfig):
        region: Literal["product", "background"] = Field(default="product", description="Which region is filled in.")
        method: Literal["telea", "ns"] = Field(default="telea", description="Telea (fast marching) or Navier-Stokes.")
        radius: int = Field(default=5, ge=1, le=64, description="Neighbourhood radius, px.")
        grow: int = Field(default=3, ge=0, le=64, description="Grow the filled region by this many px (covers edge halos).")

    def generate(self, request: GenerationRequest) -> list[Candidate]:
        """Deterministic: every seed gives the same image (the seed is recorded)."""
        cfg = request.config
        m = request.mask.data if cfg.region == "product" else 255 - request.mask.data
        hole = dilate(m, cfg.grow)
        flag = cv2.INPAINT_TELEA if cfg.method == "telea" else cv2.INPAINT_NS
        bgr = cv2.cvtColor(request.reference.image, cv2.COLOR_RGB2BGR)
        out = cv2.cvtColor(cv2.inpaint(bgr, hole, cfg.radius, flag), cv2.COLOR_BGR2RGB)
        keep = request.mask.data if cfg.region == "background" else None
        if keep is not None:  # the product was kept: its pixels stay exactly as photographed
            out[keep > 0] = request.reference.image[keep > 0]
        return [Candidate(image=out.copy(), seed=s, params=cfg.model_dump(mode="json"), plugin=self.name,
                          mask=None if keep is None else keep.copy()) for s in request.seeds]
