"""The GPU fast path: precision by device with an overflow-safe VAE, SDPA, channels_last, regional compile,
a replacement or preview (tiny) autoencoder. Every branch is plain torch/diffusers calls, so it runs on CPU too.

Why the VAE is special: SD-1.5's and SDXL's VAEs overflow in float16 (NaN/black images), so under
float16 the VAE stays float32 unless a fixed VAE (e.g. madebyollin/sdxl-vae-fp16-fix) is given.
bfloat16 has float32's range, so there the VAE follows the UNet.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FastPath:
    """How a loaded pipeline is set up for speed; part of the model cache key."""

    vae: str | None = None  # a replacement AutoencoderKL: hub id or diffusers folder (e.g. an fp16-fix VAE)
    preview_vae: str | None = None  # an AutoencoderTiny (TAESD) that decodes instead of the VAE: fast previews
    compile: str = "off"  # off | regional (repeated transformer blocks) | full (the whole UNet)
    channels_last: bool = True  # on CUDA only: NHWC convolutions run faster there

    @classmethod
    def from_config(cls, cfg: Any) -> "FastPath":
        """The fast-path settings of a generator config."""
        return cls(vae=getattr(cfg, "vae", None), preview_vae=getattr(cfg, "preview_vae", None),
                   compile=getattr(cfg, "compile", "off"), channels_last=getattr(cfg, "channels_last", True))


def is_cuda(device: str) -> bool:
    """True for 'cuda' and 'cuda:N'."""
    return device == "cuda" or device.startswith("cuda:")


def check_dtype(name: str, device: str) -> None:
    """A run's pre-flight check refuses float16 on CPU: diffusers would warn three times that it cannot run there,
    then run it anyway, slowly. Falling back to float32 instead would give other pixels than the recipe asks for.
    (The Python API still loads float16 on CPU when asked directly, e.g. to test the half-precision path.)"""
    if name == "float16" and device == "cpu":
        from ecomforge.errors import InputError

        raise InputError("generate.config.dtype: float16 does not run on CPU",
                         hint="use dtype: auto (float32 on CPU) or float32, or a GPU (--device cuda)")


def torch_dtype(name: str, device: str) -> Any:
    """auto → bfloat16 on a CUDA GPU that has it (float16 on older ones and MPS), float32 on CPU."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    if is_cuda(device):
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device == "mps" else torch.float32


def vae_dtype(unet_dtype: Any, fixed_vae: bool) -> Any:
    """The VAE's precision: float32 under float16 (it overflows there) unless a fixed VAE is used."""
    import torch

    return torch.float32 if unet_dtype == torch.float16 and not fixed_vae else unet_dtype


def _load_vae(source: str, cls_name: str, dtype: Any, local_only: bool) -> Any:
    import diffusers

    from ecomforge.errors import ModelNotFound

    path = Path(source).expanduser()
    where = str(path) if path.is_dir() else source
    try:
        return getattr(diffusers, cls_name).from_pretrained(where, torch_dtype=dtype, use_safetensors=True,
                                                          local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"generate.config: could not load the {cls_name} '{source}': "
                            f"{str(exc).splitlines()[0]}") from exc


def compile_unet(unet: Any, mode: str) -> str:
    """Compile the UNet: 'regional' compiles each repeated transformer block once (fast to warm up)."""
    import torch

    if mode == "off":
        return "off"
    if mode == "full":
        unet.forward = torch.compile(unet.forward)
        return "full"
    if hasattr(unet, "compile_repeated_blocks") and getattr(unet, "_repeated_blocks", None):
        unet.compile_repeated_blocks(fullgraph=True)
        return "regional"
    from diffusers.models.attention import BasicTransformerBlock

    for module in unet.modules():
        if isinstance(module, BasicTransformerBlock):
            module.compile(fullgraph=True)
    return "regional"


def apply(pipe: Any, fast: FastPath, device: str, dtype: Any, local_only: bool) -> dict[str, Any]:
    """Set up a freshly loaded pipeline for speed on ``device``; returns what was done, for the record."""
    import torch

    done: dict[str, Any] = {}
    if fast.vae:
        pipe.vae = _load_vae(fast.vae, "AutoencoderKL", dtype, local_only)
        done["vae"] = fast.vae
    target = vae_dtype(dtype, bool(fast.vae))
    if pipe.vae.dtype != target or fast.vae:  # a needless .to() makes diffusers warn about float32 modules
        pipe.vae.to(device=device, dtype=target)
    if fast.preview_vae:
        preview = _load_vae(fast.preview_vae, "AutoencoderTiny", dtype, local_only).to(device)
        pipe.ecomforge_preview_vae = preview  # decodes in _decode; the full VAE still encodes the photo
        done["preview_vae"] = fast.preview_vae
    # diffusers picks PyTorch's scaled_dot_product_attention (flash / memory-efficient kernels) itself
    done["sdpa"] = hasattr(torch.nn.functional, "scaled_dot_product_attention")
    if fast.channels_last and is_cuda(device):
        pipe.unet.to(memory_format=torch.channels_last)
        done["channels_last"] = True
    done["compile"] = compile_unet(pipe.unet, fast.compile)
    return done
