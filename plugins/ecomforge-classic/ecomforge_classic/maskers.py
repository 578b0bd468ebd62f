"""The ``classic`` (plain-background) and ``upload`` (user-supplied file) maskers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from ecomforge.errors import NothingFound
from ecomforge.imaging.maskfile import find_mask_file, read_mask_file
from ecomforge.imaging.masks import binarize, check_usable
from ecomforge.imaging.refine import RefineConfig
from ecomforge.pathspec import WORK, ImagePattern, LocalPath
from ecomforge.stages import Masker
from ecomforge.types import Mask, Reference

from .mask_quality import confidence, measure
from .segment import segment, upscale_mask, working_copy


class ClassicMasker(Masker):
    """Segments a product on a plain or near-plain background (the usual packshot), no weights needed."""

    name = "classic"
    accepts = {}  # no prompt: it finds the product on its own

    class Config(RefineConfig):
        largest: int = Field(0, ge=0, description="Keep only the N largest connected parts (0 = no limit).")
        min_area_fraction: float = Field(0.1, ge=0.0, le=1.0,
                                         description="Drop parts smaller than this fraction of the largest part.")
        working_size: int = Field(512, ge=64, le=4096, json_schema_extra=WORK,
                                  description="Long side (px) of the downscaled copy that is segmented.")
        min_contrast: float = Field(30.0, gt=0.0,
                                    description="Lab distance from the background that marks product for sure.")
        lightness_weight: float = Field(0.5, ge=0.0, le=1.0,
                                        description="Weight of lightness against colour; <1 tolerates shadows.")
        reach: float = Field(0.04, ge=0.0, le=0.5,
                             description="Weaker detail within this fraction of the image size joins the product.")
        detail: float = Field(25.0, ge=0.0, le=255.0,
                              description="Grey-level step of thin dark lines (print, grid lines) near the "
                                          "product that join it (0 = off).")
        grabcut: bool = Field(False, description="Refine the edge with GrabCut seeded from the threshold mask (off: it "
                                                 "drops product parts coloured like the background).")
        convex_hull: bool = Field(False, description="Fill the mask's convex hull: recovers product parts that match "
                                                     "the background colour (a white bowl on white cloth), but adds "
                                                     "background to concave shapes (a bottle's neck), so off by default.")
        use_alpha: bool = Field(True, description="Use the reference's alpha channel when it has transparency.")
        min_area: float = Field(0.002, ge=0.0, le=1.0, description="Smallest product area (fraction of the image).")
        max_area: float = Field(0.95, ge=0.0, le=1.0, description="Largest product area (fraction of the image).")
        min_score: float = Field(0.35, ge=0.0, le=1.0,
                                 description="Smallest mask confidence (border contact, busy background, weak "
                                             "outline, fragments; see docs/masking.md) that counts as the product; "
                                             "below it the masker reports that nothing was found instead of guessing.")

    def mask(self, reference: Reference) -> Mask:
        """The product mask: from the alpha channel when present, else from the background model."""
        cfg = self.config
        where = reference.source or reference.name
        alpha = reference.alpha
        if cfg.use_alpha and alpha is not None and int(alpha.min()) < 255:
            data = cfg.apply(binarize(alpha))
            self._check_area(data, where, "alpha channel")
            return cfg.finish(data, score=1.0, label="alpha")
        small = working_copy(reference.image, cfg.working_size)
        seg = segment(small, min_contrast=cfg.min_contrast, lightness_weight=cfg.lightness_weight,
                      reach=cfg.reach, detail=cfg.detail, grabcut=cfg.grabcut, convex_hull=cfg.convex_hull)
        raw = upscale_mask(seg.mask, reference.size)
        data = cfg.apply(raw) if raw.any() else raw
        self._check_area(data, where, f"background contrast {seg.contrast:.1f} vs noise {seg.noise:.1f}")
        # Judge the segmentation, not the user's shrink (dilate < 0 leaves product outside on purpose),
        # at working size, where the background distance map lives.
        judged = data if cfg.dilate >= 0 else cfg.model_copy(update={"dilate": 0}).apply(raw)
        small_mask = upscale_mask(judged, (small.shape[1], small.shape[0]))
        score, why = confidence(measure(small, small_mask, seg.distance, seg.noise))
        if score < cfg.min_score:
            raise NothingFound(f"{where}: no confident product mask (score {score:.3f} < min_score {cfg.min_score:g}: "
                               f"{why}); classic needs a plain background, try sam-clip")
        return cfg.finish(data, score=score, label="classic")

    def _check_area(self, data: np.ndarray, where: str, detail: str) -> None:
        area = float(np.count_nonzero(data)) / max(1, data.size)
        if area < self.config.min_area:
            raise NothingFound(f"{where}: no product found on the background (mask area {area:.4f} < min_area "
                               f"{self.config.min_area}; {detail})")
        if area > self.config.max_area:
            raise NothingFound(f"{where}: the mask covers nearly everything (area {area:.3f} > max_area "
                               f"{self.config.max_area}; {detail}): is the background plain?")


class UploadMasker(Masker):
    """Uses a mask file the user supplies: one file, or a pattern with {name} / {stem} per reference."""

    name = "upload"
    accepts = {"mask": "path"}

    class Config(RefineConfig):
        path: ImagePattern = Field("masks/{stem}.png", min_length=1,
                          description="Mask file, or a pattern ({name}: reference name, {stem}: source file "
                                      "stem, {product}: product name); relative paths: current folder, then base_dir.")
        invert: bool = Field(False, description="Treat dark pixels as product (for black-on-white masks).")
        resize: bool = Field(False, description="Resize a mask whose size differs from the reference "
                                                "instead of rejecting it.")
        threshold: int = Field(128, ge=1, le=255, description="Grey level at or above which a pixel is product.")
        base_dir: LocalPath = Field("", description="Folder that relative paths are resolved against when they do not "
                                              "exist from the current directory (the recipe's folder).")

    def mask(self, reference: Reference) -> Mask:
        """Load, binarise, size-check and refine the user's mask for this reference."""
        cfg = self.config
        path = self._path_for(reference)
        binary = read_mask_file(path, reference.size, threshold=cfg.threshold, invert=cfg.invert, resize=cfg.resize,
                                what=f"reference {reference.source or reference.name}")
        refined = cfg.apply(binary)
        check_usable(refined, f"{path} after refine")
        return cfg.finish(refined, score=1.0, label="upload")

    def _path_for(self, reference: Reference) -> Path:
        """The mask file for a reference: pattern filled in, cwd first, then ``base_dir``."""
        # The runner may tell a stage its recipe's folder (``base_dir`` attribute); the config can too.
        roots = [self.config.base_dir, getattr(self, "base_dir", None) or ""]
        return find_mask_file(self.config.path, reference, roots)
