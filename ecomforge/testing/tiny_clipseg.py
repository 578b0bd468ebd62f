"""A tiny random-weight CLIPSeg, saved with ``save_pretrained`` like a hub repo (config + safetensors + processor).

Real CLIPSeg checkpoints (``CIDAS/clipseg-rd64-refined``) are the same folder layout with bigger
shapes, so a test that loads this folder with ``from_pretrained`` exercises the user's path.
"""
from __future__ import annotations

import tempfile
from pathlib import Path


def build_tiny_clipseg(path: str | Path, *, seed: int = 0) -> Path:
    """Write a 64 px, 32-wide, 2-layer CLIPSeg with its processor into ``path``; return the folder."""
    import torch
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        CLIPTokenizer,
        ViTImageProcessor,
    )

    from .tiny_diffusers import _write_tokenizer

    folder = Path(path)
    with tempfile.TemporaryDirectory() as tmp:  # the processor saves its own copy of the tokenizer
        vocab = _write_tokenizer(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    image_processor = ViTImageProcessor(do_resize=True, size={"height": 64, "width": 64},
                                        image_mean=[0.48145466, 0.4578275, 0.40821073],
                                        image_std=[0.26862954, 0.26130258, 0.27577711])
    config = CLIPSegConfig(
        text_config={"vocab_size": vocab, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 77,
                     "eos_token_id": tokenizer.eos_token_id, "bos_token_id": tokenizer.bos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 64, "patch_size": 16},
        projection_dim=32, extract_layers=(1,), reduce_dim=16, decoder_num_attention_heads=2,
        decoder_intermediate_size=32)
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(seed)
        model = CLIPSegForImageSegmentation(config).eval()
    model.save_pretrained(str(folder), safe_serialization=True)
    CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(folder))
    return folder
