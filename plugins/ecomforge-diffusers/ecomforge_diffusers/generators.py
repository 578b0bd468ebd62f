"""sd-inpaint and sd-img2img: diffusers pipelines wrapped with product paste-back."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from ecomforge.errors import InputError
from ecomforge.imaging.masks import check_usable, dilate
from ecomforge.imaging.paste import paste_alpha, paste_back, seam_band
from ecomforge.models import check_device, resolve_device
from ecomforge.stages import Generator
from ecomforge.types import Candidate, GenerationRequest

from . import imageops
from .calls import run_pipeline
from .canvas import on_canvas
from .config import DiffusersConfig, Img2ImgConfig, InpaintConfig
from .fastpath import FastPath, check_dtype
from .loading import Loaded, load_pipeline
from .lora import applied_ip_adapter, applied_loras, check_loras
from .metadata import a1111_fields, public_name, reproduce_info
from .prompts import encode_for
from .refine import refine_pass


class _DiffusersGenerator(Generator):
    """Shared machinery: load through the model cache, encode prompts, batch seeds, paste back."""

    task: ClassVar[str] = ""
    Config = DiffusersConfig

    @classmethod
    def work_pixels(cls, config: Any, reference: tuple[int, int]) -> int:
        """The output canvas (``canvas``, else the reference's size), or the canvas's shape at the long side the
        model works at (``max_side``, ``refine_side``) where that is more; the model's native side is the
        operator's choice, not a request's."""
        from .canvas import canvas_size

        canvas = getattr(config, "canvas", None)
        w, h = canvas_size(canvas, reference[0], reference[1], 1.0) if canvas else reference
        sides = [s for s in (config.max_side, getattr(config, "refine_side", None)) if s]
        return max([w * h, *(math.ceil(s * s * min(w, h) / max(w, h, 1)) for s in sides)])

    def setup(self) -> None:
        """Load the configured model into the process-wide cache (sweep points may load others)."""
        self._pipeline(self.config)

    def check(self) -> None:
        """The model must be on disk or fetchable: fail before any work, naming what to download."""
        from .families import check_task
        from .loading import model_family, resolve_model

        check_device(self.device)  # before the model loads, not a driver's RuntimeError after it
        if self.config.dtype == "float16":  # the device decides whether it runs (resolving auto imports torch)
            check_dtype(self.config.dtype, resolve_device(self.device))
        kind, path = resolve_model(self.config.model)
        # the family (model_index.json or the file's header, no weights) decides the task fits
        family, _ = model_family(kind, path, self.config.model, self.config.base_config)
        check_task(family, self.task, self.config.model)
        # LoRA files too: there, readable, safetensors, and for this UNet's input channels where the header says
        channels = None if family.inpainting is None else (9 if family.inpainting else 4)
        check_loras(self.config.loras, channels, self.name)

    def identity(self) -> dict[str, str]:
        """The model's name (a hub id, or a local file's or folder's name: never its path)."""
        return {"model": public_name(self.config.model)}

    def fingerprints(self, config: Any = None) -> dict[str, str]:
        """What a candidate of ``config`` records in ``models`` (model, weights, ``lora:<file>``,
        ``ip_adapter:<file>``), computed now from the files on disk without loading any weights: where it
        differs from a record, a file changed since the run (``recreate`` compares the two)."""
        from pathlib import Path

        from .loading import file_hash, resolve_model, weights_id
        from .lora import lora_file

        cfg = self.config if config is None else \
            config if isinstance(config, self.Config) else self.parse_config(config)
        kind, path = resolve_model(cfg.model)
        out = {"model": public_name(cfg.model), "weights": weights_id(kind, path)}
        for i, spec in enumerate(cfg.loras):
            lora = lora_file(spec.path, f"generate.config.loras[{i}].path")
            out[f"lora:{lora.path.name}"] = f"a1111-hash:{file_hash(lora.path)}"
        adapter = Path(cfg.ip_adapter).expanduser() if cfg.ip_adapter else None
        if adapter is not None and adapter.is_file():
            out[f"ip_adapter:{adapter.name}"] = f"a1111-hash:{file_hash(adapter)}"
        return out

    def _pipeline(self, cfg: DiffusersConfig) -> Loaded:
        device = resolve_device(self.device)
        return load_pipeline(self.task, cfg.model, cfg.base_config, device, cfg.dtype, FastPath.from_config(cfg))

    def generate(self, request: GenerationRequest) -> list[Candidate]:
        """One candidate per seed; all seeds in one batched pipeline call (split only on OOM)."""
        cfg = request.config if isinstance(request.config, self.Config) else self.parse_config(request.config)
        keep = self._keep_region(request, cfg)
        loaded = self._pipeline(cfg)
        with loaded.lock, applied_loras(loaded.pipe, cfg.loras, self.name) as lora_ids, \
                applied_ip_adapter(loaded.pipe, cfg.ip_adapter, cfg.ip_adapter_scale) as ip_ids:
            return self._generate(loaded, cfg, request, keep, {**lora_ids, **ip_ids})

    # --- what each generator repaints and what it keeps ---------------------------------------

    def _product(self, request: GenerationRequest) -> np.ndarray:
        """The product mask as uint8 {0,255}, checked against the reference's size and for emptiness."""
        product = (request.mask.data > 127).astype(np.uint8) * 255
        if product.shape != request.reference.image.shape[:2]:
            raise InputError(f"mask of {request.reference.source}: size {product.shape[::-1]} differs from "
                             f"the reference {request.reference.image.shape[1::-1]}")
        check_usable(product, f"mask of {request.reference.source}")
        return product

    def _keep_region(self, request: GenerationRequest, cfg: Any) -> tuple[np.ndarray, int, int] | None:
        """(mask to paste back, dilate px, feather px), or None when nothing is pasted back."""
        raise NotImplementedError

    def _repaint_region(self, request: GenerationRequest, cfg: Any) -> np.ndarray | None:
        """uint8 {0,255} mask of what the pipeline regenerates (None: the whole image, img2img)."""
        raise NotImplementedError

    def _crop(self, request: GenerationRequest, cfg: Any) -> tuple[int, int, int, int] | None:
        return None

    # --- the generation itself ------------------------------------------------------------------

    def _generate(self, loaded: Loaded, cfg: Any, request: GenerationRequest,
                  keep: tuple[np.ndarray, int, int] | None, adapter_ids: dict[str, str]) -> list[Candidate]:
        ref = request.reference.image
        height, width = ref.shape[:2]
        box = self._crop(request, cfg) or (0, 0, width, height)
        x0, y0, x1, y1 = box
        gw, gh = imageops.generation_size(x1 - x0, y1 - y0, _max_side(cfg, loaded.pipe))
        region = self._repaint_region(request, cfg)
        init = imageops.resize(np.ascontiguousarray(ref[y0:y1, x0:x1]), (gw, gh))
        region_g = None if region is None else imageops.resize(region[y0:y1, x0:x1], (gw, gh), nearest=True)

        pipe = loaded.pipe
        embeds, negative, prompt_info = encode_for(pipe, request.prompt, request.negative_prompt,
                                                   weighting=cfg.prompt_weighting, device=pipe.device)
        seeds = list(request.seeds)
        image_prompt = ref if cfg.ip_adapter else None
        result = run_pipeline(pipe, cfg, embeds, negative, [init] * len(seeds), region_g, seeds,
                              strength=cfg.strength, size=(gw, gh), image_prompt=image_prompt)
        outs = []
        for image in result.images:
            full = ref.copy()
            full[y0:y1, x0:x1] = imageops.resize(imageops.to_uint8(image), (x1 - x0, y1 - y0))
            outs.append(full)

        info: dict[str, Any] = {**result.info, **prompt_info}
        failed = list(result.failed)
        covered = _nothing_regenerated(keep)
        if covered is not None:  # every seed would come back as the reference itself and score as a perfect copy
            failed = [f or covered for f in failed]
        if getattr(cfg, "refine_side", None) and region is not None:
            outs, info["refine"] = refine_pass(pipe, cfg, embeds, negative, outs, region, box, seeds, image_prompt)
        if keep is not None:
            keep_mask, kd, kf = keep
            outs = [paste_back(ref, o, keep_mask, dilate_px=kd, feather_px=kf) for o in outs]
            if cfg.seam_pass or cfg.color_match:
                band = seam_band(keep_mask, dilate_px=kd, feather_px=kf, width=cfg.seam_width)
                if cfg.seam_pass:
                    outs, seam_info = self._seam_pass(pipe, cfg, embeds, negative, outs, band, box, seeds,
                                                      image_prompt)
                    info.update(seam_info)
                if cfg.color_match:
                    outs = [imageops.color_match(o, band) for o in outs]
                # the refinements touched the band only; paste again so the product stays bit-exact
                outs = [paste_back(ref, o, keep_mask, dilate_px=kd, feather_px=kf) for o in outs]

        # params is exactly the validated config, so a record's params feed straight back into it;
        # what was derived from it (size, crop, prompt chunks) is in info
        params = self.describe(cfg)
        info.update(size=[gw, gh], crop=list(box) if box != (0, 0, width, height) else None,
                    prompt_chunks=prompt_info["prompt_chunks"],
                    reproduce=reproduce_info(pipe, request, seeds, resolve_device(self.device)),
                    speed=loaded.speed)
        models = {"model": public_name(cfg.model), "weights": loaded.weights, **adapter_ids}
        product = request.mask.data if request.mask is not None else None
        return [Candidate(image=o, seed=s, params=dict(params), plugin=self.name, models=dict(models),
                          mask=None if product is None else (product > 127).astype(np.uint8) * 255,
                          failed=failed[i],
                          info={**info, "a1111": a1111_fields(cfg, loaded, request, s, (gw, gh))})
                for i, (o, s) in enumerate(zip(outs, seeds))]

    def _seam_pass(self, pipe: Any, cfg: Any, embeds: Any, negative: Any, images: list[np.ndarray],
                   band: np.ndarray, box: tuple[int, int, int, int], seeds: list[int],
                   image_prompt: np.ndarray | None) -> tuple[list[np.ndarray], dict]:
        """Repaint the band around the paste-back edge at low strength so the seam blends in."""
        from diffusers import AutoPipelineForInpainting

        x0, y0, x1, y1 = box
        gw, gh = imageops.generation_size(x1 - x0, y1 - y0, _max_side(cfg, pipe))
        inpaint = pipe
        if self.task != "inpaint":  # shares the loaded modules: no weights are copied
            inpaint = AutoPipelineForInpainting.from_pipe(pipe)
            inpaint.set_progress_bar_config(disable=True)
        crops = [imageops.resize(np.ascontiguousarray(o[y0:y1, x0:x1]), (gw, gh)) for o in images]
        band_g = imageops.resize(band[y0:y1, x0:x1], (gw, gh), nearest=True)
        # at least one denoising step survives the low strength
        steps = max(cfg.steps, math.ceil(1 / cfg.seam_strength))
        result = run_pipeline(inpaint, cfg, embeds, negative, crops, band_g, seeds,
                              strength=cfg.seam_strength, size=(gw, gh), steps=steps,
                              image_prompt=image_prompt)
        outs = []
        inside = band[y0:y1, x0:x1, None] > 0
        for o, image in zip(images, result.images):
            seam = imageops.resize(imageops.to_uint8(image), (x1 - x0, y1 - y0))
            o = o.copy()
            o[y0:y1, x0:x1] = np.where(inside, seam, o[y0:y1, x0:x1])
            outs.append(o)
        return outs, {"seam_pass": {"width": cfg.seam_width, "strength": cfg.seam_strength, **result.info}}


NOTHING_SHOWN = 0.01
"""A candidate whose paste-back leaves less than this fraction of the generated image visible regenerated nothing."""


def _nothing_regenerated(keep: tuple[np.ndarray, int, int] | None) -> str | None:
    """Why every candidate is its reference again when the paste-back alpha covers (nearly) the whole image."""
    if keep is None:
        return None
    keep_mask, kd, kf = keep
    alpha = paste_alpha(keep_mask, dilate_px=kd, feather_px=kf)
    shown = float((255 - alpha.astype(np.float64)).mean() / 255)
    if shown >= NOTHING_SHOWN:
        return None
    return (f"paste-back covers {100 * (1 - shown):.0f} % of the image: nothing was regenerated; the mask is "
            f"fragmented or dilate/feather too large (dilate {kd}, feather {kf})")


def _max_side(cfg: Any, pipe: Any) -> int:
    """The configured long side, else the model's native resolution."""
    if cfg.max_side:
        return cfg.max_side
    return int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))


class SdInpaintGenerator(_DiffusersGenerator):
    """Repaints the background around the product (or the product itself) with an inpainting model."""

    name = "sd-inpaint"
    task = "inpaint"
    Config = InpaintConfig

    def generate(self, request: GenerationRequest) -> list[Candidate]:
        """As the base generator, on the configured canvas (the product placed, the new area outpainted)."""
        cfg = request.config if isinstance(request.config, self.Config) else self.parse_config(request.config)
        placed, notes = on_canvas(dataclasses.replace(request, config=cfg), cfg)
        out = super().generate(placed)
        for cand in out:
            if notes:
                cand.info["canvas"] = notes
        return out

    def _keep_region(self, request, cfg):
        product = self._product(request)
        if cfg.repaint == "background":
            return product, request.mask.dilate, request.mask.feather
        # repainting the product: the photographed background is what stays exact
        return 255 - dilate(product, request.mask.dilate), 0, request.mask.feather

    def _repaint_region(self, request, cfg):
        product = self._product(request)
        if cfg.repaint == "background":
            return 255 - product
        return dilate(product, request.mask.dilate)

    def _crop(self, request, cfg):
        if not cfg.crop_to_mask:
            return None
        product = dilate(self._product(request), request.mask.dilate)
        return imageops.crop_box(product, cfg.crop_padding)


class SdImg2ImgGenerator(_DiffusersGenerator):
    """Restyles the whole reference at a strength; pastes the product back when a mask is given."""

    name = "sd-img2img"
    task = "img2img"
    Config = Img2ImgConfig

    def _keep_region(self, request, cfg):
        if not cfg.paste_back or request.mask is None:
            return None
        return self._product(request), request.mask.dilate, request.mask.feather

    def _repaint_region(self, request, cfg):
        return None

