"""The generators' settings: validated before any model loads, with did-you-mean hints."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ecomforge.pathspec import ModelRef
from ecomforge.stages import StageConfig

from .schedulers import SCHEDULERS, canonical_scheduler


def check_scheduler(name: str) -> str:
    """The canonical name of a known scheduler (any accepted spelling), else ValueError with the closest match."""
    return canonical_scheduler(name)


class LoraSpec(StageConfig):
    """One LoRA to apply while generating."""

    path: ModelRef = Field(description="A LoRA .safetensors file or folder (diffusers or kohya keys).")
    scale: float = Field(default=1.0, ge=-4.0, le=4.0, description="How strongly this LoRA applies.")


class DiffusersConfig(StageConfig):
    """Settings shared by sd-inpaint and sd-img2img."""

    model: ModelRef = Field(description="Hub id, local diffusers folder, or a single .safetensors checkpoint.")
    base_config: ModelRef | None = Field(
        default=None,
        description="For a single-file checkpoint: the diffusers folder or hub id whose component configs "
                    "it uses (defaults to the SD-1.5 repo of the generator's task).")
    steps: int = Field(default=30, ge=1, le=1000, description="Denoising steps (before strength is applied).")
    guidance_scale: float = Field(default=7.0, ge=0.0, le=50.0, description="Classifier-free guidance scale.")
    strength: float = Field(default=1.0, gt=0.0, le=1.0, description="How much of the image is re-noised (0 < s ≤ 1).")
    scheduler: str = Field(
        default="DPM++ 2M Karras",
        description=f"Sampler: one of {', '.join(SCHEDULERS)} (case-insensitive; AUTOMATIC1111, k-diffusion "
                    "and diffusers spellings accepted).")
    max_side: int | None = Field(
        default=None, ge=64, le=4096,
        description="Long side of the generated image in px (multiple of 8); the reference is scaled to it, "
                    "aspect kept, then the result is scaled back to the reference size. Default: the model's "
                    "native size (UNet sample_size × 8: 512 for SD-1.5, 1024 for SDXL).")
    prompt_weighting: bool = Field(
        default=True, description="Honour AUTOMATIC1111 weights like '(word:1.3)'; false rejects them.")
    seam_pass: bool = Field(default=False, description="Refine the paste-back edge with a second low-strength pass.")
    seam_width: int = Field(default=8, ge=1, le=256, description="Width in px of the band the seam pass repaints.")
    seam_strength: float = Field(default=0.4, gt=0.0, le=1.0, description="Strength of the seam pass.")
    color_match: bool = Field(
        default=False, description="Match the regenerated band's Lab mean/std to its surroundings.")
    loras: list[LoraSpec] = Field(default_factory=list, description="LoRAs to apply: [{path, scale}].")
    ip_adapter: ModelRef | None = Field(
        default=None, description="IP-Adapter .safetensors file (its CLIP image encoder in 'image_encoder/' beside "
                                  "it, as in h94/IP-Adapter); the reference photo becomes an image prompt.")
    ip_adapter_scale: float = Field(default=0.6, ge=0.0, le=2.0, description="Strength of the IP-Adapter image prompt.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="Weights precision: auto = bfloat16 on CUDA GPUs that have it (else float16), "
                                    "float16 on MPS, float32 on CPU. Under float16 the VAE stays float32.")
    vae: ModelRef | None = Field(
        default=None, description="A replacement VAE (hub id or diffusers folder), e.g. madebyollin/sdxl-vae-fp16-fix "
                                  "so SDXL's VAE may run in float16.")
    preview_vae: ModelRef | None = Field(
        default=None, description="A tiny autoencoder (TAESD, AutoencoderTiny) that decodes instead of the VAE: "
                                  "fast, slightly soft previews (e.g. madebyollin/taesd; taesdxl for SDXL).")
    compile: Literal["off", "regional", "full"] = Field(
        default="off", description="torch.compile the UNet: regional (each repeated transformer block, quick to "
                                   "warm up) or full; pays off over many images on a GPU.")
    channels_last: bool = Field(default=True, description="On CUDA, run the UNet's convolutions channels-last.")
    fp32_vae_retry: bool = Field(
        default=True, description="When a half-precision decode gives NaN, decode again with a float32 VAE.")

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, value: str) -> str:
        return check_scheduler(value)

    @field_validator("max_side", "seam_width")
    @classmethod
    def _multiple_of_8(cls, value: int | None, info) -> int | None:
        if info.field_name == "max_side" and value is not None and value % 8:
            raise ValueError(f"must be a multiple of 8 (got {value}; try {max(64, round(value / 8) * 8)})")
        return value

    @model_validator(mode="after")
    def _at_least_one_step(self):
        if int(self.steps * self.strength) < 1:
            raise ValueError(f"steps × strength must give at least one step (got {self.steps} × {self.strength})")
        return self


class InpaintConfig(DiffusersConfig):
    """sd-inpaint settings."""

    model: ModelRef = Field(default="stable-diffusion-v1-5/stable-diffusion-inpainting",
                       description="Hub id, local diffusers folder, or a single .safetensors checkpoint.")
    repaint: Literal["background", "product"] = Field(
        default="background", description="What is regenerated; the other part keeps its photographed pixels.")
    crop_to_mask: bool = Field(
        default=False, description="Generate on a crop around the product at full model resolution "
                                   "(AUTOMATIC1111's 'only masked'), then paste it back.")
    crop_padding: int = Field(default=32, ge=0, le=4096, description="Context in px kept around the product crop.")
    canvas: str | None = Field(
        default=None, description="Output canvas per channel: an aspect ('1:1' marketplace, '4:5' social, '16:9' "
                                  "banner) or a size ('1200x1200'); the new area is outpainted. Default: the photo's.")
    placement: Literal["center", "thirds", "bottom"] = Field(
        default="center", description="Where the product sits on the canvas: centre, a rule-of-thirds line, or "
                                      "standing on a floor near the bottom.")
    floor: float = Field(default=0.08, ge=0.0, le=0.5, description="placement: bottom: the floor's height as a "
                                                                     "fraction of the canvas height.")
    product_scale: float | None = Field(
        default=None, gt=0.0, le=1.0, description="The product's box as a fraction of the canvas (resampled); "
                                                  "default: its photographed pixels, bit-exact (shrunk only to fit).")
    refine_side: int | None = Field(
        default=None, ge=64, le=4096,
        description="Refine the background at this long side (px, multiple of 8) with a second img2img pass, "
                    "so a large output gets detail at its own resolution rather than an upscaled one.")
    refine_strength: float = Field(default=0.35, gt=0.0, le=1.0, description="Strength of the refine pass.")
    refine_tile: int | None = Field(
        default=None, ge=64, le=4096, description="Refine on overlapping tiles of this many px (multiple of 8; "
                                                  "e.g. the model's native size) when refine_side is larger.")

    @field_validator("canvas")
    @classmethod
    def _canvas(cls, value: str | None) -> str | None:
        from .canvas import check_canvas

        return check_canvas(value)

    @field_validator("refine_side", "refine_tile")
    @classmethod
    def _refine_multiple_of_8(cls, value: int | None) -> int | None:
        if value is not None and value % 8:
            raise ValueError(f"must be a multiple of 8 (got {value}; try {max(64, round(value / 8) * 8)})")
        return value


class Img2ImgConfig(DiffusersConfig):
    """sd-img2img settings."""

    model: ModelRef = Field(default="stable-diffusion-v1-5/stable-diffusion-v1-5",
                       description="Hub id, local diffusers folder, or a single .safetensors checkpoint.")
    strength: float = Field(default=0.6, gt=0.0, le=1.0, description="How much of the image is re-noised (0 < s ≤ 1).")
    paste_back: bool = Field(default=True, description="Paste the photographed product back through the mask.")
