"""Tiny random-weight Stable Diffusion models in the genuine on-disk formats, for fast offline tests.

Builders, each deterministic (seeded), idempotent and cached per (path, kind, seed):

- ``build_tiny_pipeline``: a diffusers pipeline folder (``save_pretrained``, safetensors): SD-1.5
  (``inpaint``, ``img2img``, ``txt2img``) or SDXL (``sdxl``, ``sdxl-inpaint``: two text encoders,
  ``text_time`` added conditioning, 9 input channels for inpainting),
- ``build_tiny_single_file``: one ``.safetensors`` checkpoint in the original SD (ldm) key layout,
  loadable by ``from_single_file(path, config=<a tiny pipeline folder>)``,
- ``build_tiny_lora``: a LoRA for the tiny UNet (diffusers or kohya keys) with non-zero B matrices,
- ``build_tiny_ip_adapter``: an IP-Adapter (weights file + CLIP image encoder folder) for the tiny UNet,
- ``build_tiny_taesd``: a tiny AutoencoderTiny (TAESD layout) folder, for the preview decoder.

Shapes follow what ENVIRONMENT.md checked: a two-level UNet (32, 64) and a four-block VAE, so the
latent is /8 like the real model and a 2-step call at 128 px takes a fraction of a second on CPU.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()
_MARKER = ".ecomforge-tiny.json"
PIPELINE_CLASSES = {
    "inpaint": "StableDiffusionInpaintPipeline",
    "img2img": "StableDiffusionImg2ImgPipeline",
    "txt2img": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sdxl-inpaint": "StableDiffusionXLInpaintPipeline",
}
UNET_LAYERS_PER_BLOCK = 2
VAE_LAYERS_PER_BLOCK = 1


def _marker_ok(path: Path, spec: dict[str, Any]) -> bool:
    """True when ``path`` already holds a build made from exactly ``spec``."""
    marker = path / _MARKER if path.is_dir() else path.with_name(path.name + _MARKER)
    try:
        return json.loads(marker.read_text()) == spec
    except (OSError, ValueError):
        return False


def _write_tokenizer(folder: Path) -> int:
    """A byte-level CLIP BPE vocabulary with no merges (every character is a token); returns its size."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(str(folder))
    return len(tokens)


def _components(kind: str, seed: int, tokenizer_dir: Path) -> dict[str, Any]:
    """Build the seeded tiny UNet, VAE, text encoder, tokenizer and scheduler."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab_size = _write_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=UNET_LAYERS_PER_BLOCK, sample_size=16,
        in_channels=9 if kind == "inpaint" else 4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=[16, 16, 32, 32], in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
        layers_per_block=VAE_LAYERS_PER_BLOCK, norm_num_groups=8, sample_size=128,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=vocab_size, max_position_embeddings=77, projection_dim=32,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer,
            "scheduler": scheduler, "safety_checker": None, "feature_extractor": None}


def _sdxl_components(kind: str, seed: int, tokenizer_dir: Path) -> dict[str, Any]:
    """SDXL's layout at toy size: UNet with text_time conditioning, CLIP-L-like and CLIP-G-like encoders."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    parts = _components("inpaint" if kind == "sdxl-inpaint" else "img2img", seed, tokenizer_dir)
    tokenizer = parts["tokenizer"]
    torch.manual_seed(seed + 3)
    # 6 time ids (original size, crop, target size) x 8 + the second encoder's 32-d pooled embedding
    parts["unet"] = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16,
        in_channels=9 if kind == "sdxl-inpaint" else 4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=8,
    )
    config = CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                            vocab_size=tokenizer.vocab_size, max_position_embeddings=77, projection_dim=32,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, hidden_act="gelu")
    torch.manual_seed(seed + 4)
    parts["text_encoder"] = CLIPTextModel(config)
    torch.manual_seed(seed + 5)
    parts["text_encoder_2"] = CLIPTextModelWithProjection(config)
    parts["tokenizer_2"] = tokenizer
    del parts["safety_checker"]
    parts["image_encoder"] = None
    return parts


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished build into place (replacing a stale one) so readers never see half a build."""
    if final.exists():
        if final.is_dir():
            shutil.rmtree(final)
        else:
            final.unlink()
    os.replace(tmp, final)


def build_tiny_pipeline(path: str | os.PathLike, *, kind: str = "inpaint", seed: int = 0) -> Path:
    """Save a tiny random-weight SD-1.5 or SDXL pipeline folder (diffusers layout, safetensors); return its path."""
    if kind not in PIPELINE_CLASSES:
        raise ValueError(f"kind must be one of {sorted(PIPELINE_CLASSES)}, got {kind!r}")
    path = Path(path)
    spec = {"builder": "tiny_pipeline", "kind": kind, "seed": seed, "version": 1}
    with _LOCK:
        if _marker_ok(path, spec):
            return path
        import diffusers

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
        try:
            build = _sdxl_components if kind.startswith("sdxl") else _components
            parts = build(kind, seed, tmp / "_tokenizer_src")
            shutil.rmtree(tmp / "_tokenizer_src")
            extra = {} if kind.startswith("sdxl") else {"requires_safety_checker": False}
            pipe = getattr(diffusers, PIPELINE_CLASSES[kind])(**parts, **extra)
            pipe.save_pretrained(str(tmp), safe_serialization=True)
            (tmp / _MARKER).write_text(json.dumps(spec))
            _publish(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path


# --- diffusers -> original (ldm) key layout, after diffusers' scripts/convert_diffusers_to_original_
# stable_diffusion.py, generalised to the block counts in the config (the script hardcodes SD-1.5's).

def _unet_to_ldm(state: dict[str, Any], n_blocks: int, layers: int) -> dict[str, Any]:
    """Rename a diffusers UNet state dict to the ldm ``model.diffusion_model.*`` layout."""
    fixed = {
        "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
    }
    resnet = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
              ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
    prefixes: list[tuple[str, str]] = []
    for i in range(n_blocks):
        for j in range(layers):
            prefixes.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{(layers + 1) * i + j + 1}.0."))
            prefixes.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{(layers + 1) * i + j + 1}.1."))
        prefixes.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(layers + 1) * (i + 1)}.0.op."))
        for j in range(layers + 1):
            prefixes.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{(layers + 1) * i + j}.0."))
            prefixes.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{(layers + 1) * i + j}.1."))
    prefixes.append(("mid_block.attentions.0.", "middle_block.1."))
    prefixes += [(f"mid_block.resnets.{j}.", f"middle_block.{2 * j}.") for j in range(2)]
    out = {}
    for key, value in state.items():
        new = key
        for hf, sd in fixed.items():
            if new.startswith(hf + "."):
                new = sd + new[len(hf):]
        if "resnets" in new:
            for hf, sd in resnet:
                new = new.replace(hf, sd)
        if new.startswith("up_blocks.") and ".upsamplers.0." in new:
            # the upsampler sits after the resnet (and the attention, when the block has one)
            i = int(new.split(".")[1])
            has_attn = any(k.startswith(f"up_blocks.{i}.attentions.") for k in state)
            new = new.replace(f"up_blocks.{i}.upsamplers.0.",
                              f"output_blocks.{(layers + 1) * i + layers}.{2 if has_attn else 1}.")
        for hf, sd in prefixes:
            new = new.replace(hf, sd)
        out["model.diffusion_model." + new] = value
    return out


def _vae_to_ldm(state: dict[str, Any], n_blocks: int, layers: int) -> dict[str, Any]:
    """Rename a diffusers VAE state dict to the ldm ``first_stage_model.*`` layout."""
    pairs = [("conv_shortcut", "nin_shortcut"), ("conv_norm_out", "norm_out"), ("mid_block.attentions.0.", "mid.attn_1.")]
    for i in range(n_blocks):
        pairs += [(f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.") for j in range(layers)]
        pairs.append((f"down_blocks.{i}.downsamplers.0.", f"down.{i}.downsample."))
        pairs.append((f"up_blocks.{i}.upsamplers.0.", f"up.{n_blocks - 1 - i}.upsample."))
        pairs += [(f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{n_blocks - 1 - i}.block.{j}.")
                  for j in range(layers + 1)]
    pairs += [(f"mid_block.resnets.{i}.", f"mid.block_{i + 1}.") for i in range(2)]
    attn = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]
    out = {}
    for key, value in state.items():
        new = key
        for hf, sd in pairs:
            new = new.replace(hf, sd)
        if "mid.attn_1." in new:
            for hf, sd in attn:
                new = new.replace(hf, sd)
            if value.ndim == 2:  # ldm stores the attention projections as 1x1 convolutions
                value = value.reshape(*value.shape, 1, 1)
        out["first_stage_model." + new] = value
    return out


def build_tiny_single_file(path: str | os.PathLike, *, kind: str = "inpaint", seed: int = 0) -> Path:
    """Save the tiny pipeline as one original-layout ``.safetensors`` checkpoint and return its path.

    Load it with ``from_single_file(path, config=<build_tiny_pipeline(..., kind=kind)>)``; the folder
    ``<path>.config`` next to the file is such a config folder.
    """
    from safetensors.torch import load_file, save_file

    path = Path(path)
    spec = {"builder": "tiny_single_file", "kind": kind, "seed": seed, "version": 2}
    config_dir = build_tiny_pipeline(path.with_name(path.name + ".config"), kind=kind, seed=seed)
    with _LOCK:
        if path.exists() and _marker_ok(path, spec):
            return path
        unet_cfg = json.loads((config_dir / "unet" / "config.json").read_text())
        vae_cfg = json.loads((config_dir / "vae" / "config.json").read_text())
        unet = _unet_to_ldm(load_file(str(config_dir / "unet" / "diffusion_pytorch_model.safetensors")),
                            len(unet_cfg["block_out_channels"]), unet_cfg["layers_per_block"])
        vae = _vae_to_ldm(load_file(str(config_dir / "vae" / "diffusion_pytorch_model.safetensors")),
                          len(vae_cfg["block_out_channels"]), vae_cfg["layers_per_block"])
        # transformers >= 5.6 saves CLIPTextModel without its ``text_model.`` level; SD files keep it
        text = {"cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
                for k, v in load_file(str(config_dir / "text_encoder" / "model.safetensors")).items()}
        state = {k: v.contiguous() for k, v in {**unet, **vae, **text}.items()}
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
        os.close(fd)
        save_file(state, tmp, metadata={"format": "pt"})
        _publish(Path(tmp), path)
        path.with_name(path.name + _MARKER).write_text(json.dumps(spec))
    return path


def build_tiny_lora(pipeline_dir: str | os.PathLike, out_file: str | os.PathLike, *, rank: int = 4,
                    seed: int = 0, scale_b: float = 0.5, format: str = "diffusers") -> Path:
    """Write a LoRA for the tiny UNet's attention layers with seeded non-zero B matrices."""
    import torch
    from diffusers import UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_kohya
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    if format not in ("diffusers", "kohya"):
        raise ValueError(f"format must be 'diffusers' or 'kohya', got {format!r}")
    out_file = Path(out_file)
    spec = {"builder": "tiny_lora", "pipeline": str(Path(pipeline_dir).resolve()), "rank": rank,
            "seed": seed, "scale_b": scale_b, "format": format, "version": 1}
    with _LOCK:
        if out_file.exists() and _marker_ok(out_file, spec):
            return out_file
        unet = UNet2DConditionModel.from_pretrained(str(Path(pipeline_dir) / "unet"))
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True,
                                    target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in unet.named_parameters():
                if "lora_B" in name:  # freshly initialised B is zero, which would make the LoRA a no-op
                    param.copy_(torch.randn(param.shape, generator=generator) * scale_b)
        peft_state = {"unet." + k: v for k, v in get_peft_model_state_dict(unet).items()}
        if format == "kohya":  # lora_unet_..._to_q.lora_down.weight + .alpha, as A1111 and ComfyUI write
            state = convert_state_dict_to_kohya(peft_state)
        else:
            state = convert_state_dict_to_diffusers(peft_state)
        out_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=out_file.name + ".", dir=out_file.parent)
        os.close(fd)
        save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata={"format": "pt"})
        _publish(Path(tmp), out_file)
        out_file.with_name(out_file.name + _MARKER).write_text(json.dumps(spec))
    return out_file


def build_tiny_ip_adapter(pipeline_dir: str | os.PathLike, out_dir: str | os.PathLike, *, seed: int = 0,
                          scale: float = 0.5) -> Path:
    """Write a tiny IP-Adapter in h94/IP-Adapter's layout: ``ip-adapter.safetensors`` + ``image_encoder/``.

    Returns the weights file; ``load_ip_adapter(dir, subfolder="", weight_name=...)`` finds the
    CLIP image encoder in the ``image_encoder`` folder beside it, as in the real repository.
    """
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    out_dir = Path(out_dir)
    weights = out_dir / "ip-adapter.safetensors"
    spec = {"builder": "tiny_ip_adapter", "pipeline": str(Path(pipeline_dir).resolve()), "seed": seed,
            "scale": scale, "version": 1}
    with _LOCK:
        if weights.exists() and _marker_ok(weights, spec):
            return weights
        unet = UNet2DConditionModel.from_pretrained(str(Path(pipeline_dir) / "unet"))
        cross = unet.config.cross_attention_dim
        torch.manual_seed(seed)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
            image_size=32, patch_size=8, projection_dim=32))
        generator = torch.Generator().manual_seed(seed)

        def rand(*shape: int) -> Any:
            return (torch.randn(shape, generator=generator) * scale).contiguous()

        state = {"image_proj.proj.weight": rand(4 * cross, 32), "image_proj.proj.bias": rand(4 * cross),
                 "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
        key_id = 1  # numbering as diffusers' _convert_ip_adapter_attn_to_diffusers reads it
        for name in unet.attn_processors:
            if name.endswith("attn1.processor"):
                continue
            if name.startswith("mid_block"):
                hidden = unet.config.block_out_channels[-1]
            elif name.startswith("up_blocks"):
                hidden = list(reversed(unet.config.block_out_channels))[int(name.split(".")[1])]
            else:
                hidden = unet.config.block_out_channels[int(name.split(".")[1])]
            state[f"ip_adapter.{key_id}.to_k_ip.weight"] = rand(hidden, cross)
            state[f"ip_adapter.{key_id}.to_v_ip.weight"] = rand(hidden, cross)
            key_id += 2
        out_dir.mkdir(parents=True, exist_ok=True)
        encoder.save_pretrained(str(out_dir / "image_encoder"), safe_serialization=True)
        save_file(state, str(weights), metadata={"format": "pt"})
        weights.with_name(weights.name + _MARKER).write_text(json.dumps(spec))
    return weights


def build_tiny_taesd(path: str | os.PathLike, *, seed: int = 0) -> Path:
    """Save a tiny random-weight AutoencoderTiny (TAESD's layout, /8 latents) as a diffusers folder."""
    import torch
    from diffusers import AutoencoderTiny

    path = Path(path)
    spec = {"builder": "tiny_taesd", "seed": seed, "version": 1}
    with _LOCK:
        if _marker_ok(path, spec):
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
        try:
            torch.manual_seed(seed)
            AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                            num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1)
                            ).save_pretrained(str(tmp), safe_serialization=True)
            (tmp / _MARKER).write_text(json.dumps(spec))
            _publish(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path
