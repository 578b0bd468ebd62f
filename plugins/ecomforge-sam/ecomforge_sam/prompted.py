"""The ``sam`` masker: the product from point, box or rough-mask prompts on a reference."""
from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from ecomforge.errors import InputError, NothingFound
from ecomforge.pathspec import ImagePattern, LocalPath
from ecomforge.stages import Masker
from ecomforge.types import Mask, Reference

from .checkpoints import SamMaskerBase, SamModelConfig, reference_name

LOW_RES = 256  # SAM's mask-prompt resolution
PROMPT_LOGIT = 10.0  # magnitude of the logits a binary rough mask becomes (SAM's own run to about ±10-20)


class SamMasker(SamMaskerBase, Masker):
    """Segments the product that the user points at: foreground/background points, a box or a rough mask."""

    name = "sam"
    accepts = {"points": "points", "point_labels": "labels", "box": "box", "mask": "mask_path"}

    class Config(SamModelConfig):
        points: list[tuple[float, float]] = Field(
            default_factory=list, description="Prompt points [[x, y], ...] in reference pixels.")
        labels: list[int] = Field(
            default_factory=list, description="One per point: 1 = product, 0 = background (default all 1).")
        box: tuple[float, float, float, float] | None = Field(
            None, description="Box around the product [x0, y0, x1, y1] in reference pixels.")
        mask_path: ImagePattern | None = Field(
            None, min_length=1, description="A rough mask to refine: a file or a pattern such as "
                                            "'masks/{stem}.png' (any size; white = product).")
        base_dir: LocalPath = Field("", description="Folder that a relative mask_path is also looked up in.")
        multimask: bool = Field(True, description="Ask SAM for three candidate masks and keep the one it "
                                                  "rates best (helps with a single point).")
        min_score: float = Field(0.0, ge=0.0, le=1.0,
                                 description="Smallest predicted IoU (SAM's own confidence) that counts as the "
                                             "product; below it the masker reports that nothing was found. 0: "
                                             "always answer, since the prompt says where the product is.")

        @field_validator("points")
        @classmethod
        def _points_non_negative(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
            for i, (x, y) in enumerate(points):
                if x < 0 or y < 0:
                    raise ValueError(f"points[{i}] = [{x:g}, {y:g}] has a negative coordinate")
            return points

        @field_validator("labels")
        @classmethod
        def _labels_binary(cls, labels: list[int]) -> list[int]:
            bad = [v for v in labels if v not in (0, 1)]
            if bad:
                raise ValueError(f"labels must be 1 (product) or 0 (background), got {bad[0]}")
            return labels

        @field_validator("box")
        @classmethod
        def _box_ordered(cls, box: tuple[float, float, float, float] | None) -> tuple | None:
            if box is not None:
                x0, y0, x1, y1 = box
                if not (x0 < x1 and y0 < y1):
                    raise ValueError(f"box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] is inverted or empty: "
                                     "use [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
                if x0 < 0 or y0 < 0:
                    raise ValueError(f"box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] has a negative coordinate")
            return box

        @model_validator(mode="after")
        def _some_prompt(self) -> Any:
            if not self.points and self.box is None and self.mask_path is None:
                raise ValueError("give at least one prompt: points, box or mask_path")
            if self.labels and len(self.labels) != len(self.points):
                raise ValueError(f"labels has {len(self.labels)} entries but points has {len(self.points)}")
            if self.labels and not self.points:
                raise ValueError("labels given without points")
            return self

    def setup(self) -> None:
        """Load SAM once (shared with every other SAM masker in the process)."""
        self.session = self.load_session()

    def identity(self) -> dict[str, str]:
        """The SAM checkpoint's id and weight hash."""
        if not self._ready:
            return {"sam": self.config.model}
        return {"sam": self.session.sam.model_id}

    def mask(self, reference: Reference) -> Mask:
        """SAM's mask for the configured prompts on this reference, refined and checked."""
        self.ensure_setup()
        cfg = self.config
        where = reference_name(reference)
        width, height = reference.size
        points, labels = self._points(width, height, where)
        box = self._box(width, height, where)
        rough = self._rough_mask(reference) if cfg.mask_path else None
        if rough is not None and box is None:
            from ecomforge.imaging.masks import bbox

            box = np.asarray(bbox(rough), np.float32)  # the rough mask's extent steadies SAM's answer
        session = self.session
        with session.lock:
            session.set_reference(reference.image, reference.sha256)
            logits = rough_mask_logits(rough, session.predictor.input_size) if rough is not None else None
            # Several prompts pin the object down; only a lone prompt is ambiguous enough for multimask.
            lone = (points is None or len(points) == 1) and box is None and logits is None
            masks, ious = session.predict(points=points, labels=labels, box=box, mask_logits=logits,
                                          multimask=cfg.multimask and lone)
        best = int(np.argmax(ious))
        confidence = float(np.clip(ious[best], 0.0, 1.0))  # the head is unbounded; Mask.score is in [0, 1]
        if confidence < cfg.min_score:
            raise NothingFound(f"{where}: SAM is not confident in its mask (predicted IoU {confidence:.3f} < "
                               f"min_score {cfg.min_score:g}); add a point or a box")
        return self.finish_mask(masks[best], score=float(ious[best]), label=f"sam: {self._describe()}", where=where)

    def _points(self, width: int, height: int, where: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        cfg = self.config
        if not cfg.points:
            return None, None
        for i, (x, y) in enumerate(cfg.points):
            if not (0 <= x < width and 0 <= y < height):
                raise InputError(f"{where}: points[{i}] = [{x:g}, {y:g}] is outside the {width}x{height} image")
        labels = cfg.labels or [1] * len(cfg.points)
        return np.asarray(cfg.points, np.float32), np.asarray(labels, np.int32)

    def _box(self, width: int, height: int, where: str) -> np.ndarray | None:
        box = self.config.box
        if box is None:
            return None
        x0, y0, x1, y1 = box
        if x1 > width or y1 > height:
            raise InputError(f"{where}: box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] reaches outside the "
                             f"{width}x{height} image")
        return np.asarray(box, np.float32)

    def _rough_mask(self, reference: Reference) -> np.ndarray:
        """The user's rough mask at the reference's size, found and read by the core's mask-file rules."""
        from ecomforge.imaging.maskfile import find_mask_file, read_mask_file

        roots = [self.config.base_dir, getattr(self, "base_dir", None) or ""]
        path = find_mask_file(str(self.config.mask_path), reference, roots)
        return read_mask_file(path, reference.size, resize=True, what=reference.source or reference.name)

    def _describe(self) -> str:
        cfg = self.config
        parts = []
        if cfg.points:
            parts.append(f"{len(cfg.points)} point{'s' if len(cfg.points) > 1 else ''}")
        if cfg.box is not None:
            parts.append("box")
        if cfg.mask_path:
            parts.append("rough mask")
        return " + ".join(parts)


def rough_mask_logits(mask: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """A binary mask as SAM's 1×256×256 mask prompt: resized like the image, padded, as ±logits."""
    import cv2

    h, w = input_size  # the reference resized so its long side is the encoder's 1024
    scaled = cv2.resize((mask > 0).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    side = max(h, w)
    padded = np.zeros((side, side), np.float32)  # SAM pads bottom/right, so the prompt must too
    padded[:h, :w] = scaled
    low = cv2.resize(padded, (LOW_RES, LOW_RES), interpolation=cv2.INTER_AREA)
    return ((low * 2.0 - 1.0) * PROMPT_LOGIT)[None].astype(np.float32)
