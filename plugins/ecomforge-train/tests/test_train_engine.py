"""The training loop on tiny random-weight pipelines: loss goes down, resume is exact, files are right."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ecomforge_train.config import TrainConfig
from ecomforge_train.data import Example, sample_batch, to_tensors
from ecomforge_train.engine import LoraEngine, run_training


def _eval_loss(engine, batch):
    """The loss on ``batch`` with fixed noise and timesteps, so two calls are comparable."""
    with torch.no_grad():
        return float(engine.losses(batch, torch.Generator().manual_seed(123)).mean())


@pytest.mark.parametrize("kind", ["inpaint", "txt2img"])
def test_a_few_dozen_steps_lower_the_loss_on_a_fixed_batch(kind, tiny_sd_inpaint, tiny_sd_img2img, references, config_for):
    """30 steps on one fixed batch bring its (fixed-noise) loss well down, for both UNet kinds."""
    refs, masks = references
    base = tiny_sd_inpaint if kind == "inpaint" else tiny_sd_img2img
    engine = LoraEngine(TrainConfig(**config_for(base, learning_rate=1e-2, rank=8)), device="cpu")
    engine.add_lora()
    assert engine.parts.inpaint is (kind == "inpaint")
    items = to_tensors([Example(r.image, "a photo of sks cup", m.data) for r, m in zip(refs, masks)], 64)
    batch = sample_batch(items, 4, 64, torch.Generator().manual_seed(7), flip=True, crop_scale=0.8,
                         inpaint=engine.parts.inpaint, product_mask_prob=0.5)
    before = _eval_loss(engine, batch)
    for _ in range(30):
        engine.step(batch)
    after = _eval_loss(engine, batch)
    assert after < 0.8 * before, (before, after)


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path, tiny_sd_inpaint, references, config_for):
    """Stop at step 3, resume in a fresh engine: the LoRA and every logged loss match a straight run of 6."""
    refs, masks = references
    examples = [Example(r.image, "a photo of sks cup", m.data) for r, m in zip(refs, masks)]
    cfg = config_for(tiny_sd_inpaint, steps=6, checkpoint_every=3, batch_size=2, learning_rate=1e-3)

    straight = run_training(LoraEngine(TrainConfig(**cfg), device="cpu"), examples, tmp_path / "a")
    run_training(LoraEngine(TrainConfig(**{**cfg, "steps": 3}), device="cpu"), examples, tmp_path / "b")
    assert (tmp_path / "b" / "checkpoints" / "step-000003" / "state.pt").is_file()
    resumed = run_training(LoraEngine(TrainConfig(**cfg), device="cpu"), examples, tmp_path / "b", resume=True)

    a, b = load_file(str(straight)), load_file(str(resumed))
    assert a.keys() == b.keys() and len(a) > 0
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert any(float(v.abs().max()) > 0 for k, v in a.items() if "lora.up" in k or "lora_B" in k)
    logs = [[json.loads(x)["loss"] for x in (tmp_path / d / "train_log.jsonl").read_text().splitlines()]
            for d in ("a", "b")]
    assert logs[0] == logs[1] and len(logs[0]) == 6


def test_checkpoint_state_loads_with_weights_only(tmp_path, tiny_sd_inpaint, references, config_for):
    """Checkpoints hold plain tensors: torch.load(weights_only=True) reads them; old ones are pruned."""
    refs, _ = references
    cfg = config_for(tiny_sd_inpaint, steps=6, checkpoint_every=2, keep_checkpoints=2)
    run_training(LoraEngine(TrainConfig(**cfg), device="cpu"), [Example(refs[0].image, "x")], tmp_path)
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["step-000004", "step-000006"]
    state = torch.load(str(tmp_path / "checkpoints" / "step-000006" / "state.pt"), weights_only=True)
    assert state["step"] == 6 and state["optimizer"]["state"]


def test_lora_file_is_diffusers_format_with_conv_in_for_inpainting(tmp_path, tiny_sd_inpaint, references, config_for):
    """The output is pytorch_lora_weights.safetensors with diffusers 'unet.*.lora.down/up' keys."""
    refs, _ = references
    path = run_training(LoraEngine(TrainConfig(**config_for(tiny_sd_inpaint, steps=2)), device="cpu"),
                        [Example(refs[0].image, "x")], tmp_path)
    assert path.name == "pytorch_lora_weights.safetensors"
    keys = list(load_file(str(path)))
    assert all(k.startswith("unet.") for k in keys)
    assert any(k.endswith("to_q.lora.down.weight") for k in keys)
    # conv_in reads the 9 inpainting channels: its LoRA only fits an inpainting UNet
    state = load_file(str(path))
    assert state["unet.conv_in.lora.down.weight"].shape[1] == 9
    assert not any(".lora_A." in k or ".lora_B." in k for k in keys)  # one key layout, not a mix
    info = json.loads((tmp_path / "train_info.json").read_text())
    assert info["inpaint"] is True and info["unet_in_channels"] == 9


def test_text_encoder_lora_trains_under_gradient_checkpointing(tmp_path, tiny_sd_img2img, references, config_for):
    """train_text_encoder adds text_encoder.* keys, and their B matrices (zero at init) have moved."""
    refs, _ = references
    cfg = config_for(tiny_sd_img2img, steps=2, train_text_encoder=True, gradient_checkpointing=True)
    path = run_training(LoraEngine(TrainConfig(**cfg), device="cpu"), [Example(refs[0].image, "x")], tmp_path)
    state = load_file(str(path))
    text_up = [v for k, v in state.items() if k.startswith("text_encoder.") and (k.endswith("up.weight") or "lora_B" in k)]
    unet_up = [v for k, v in state.items() if k.startswith("unet.") and (k.endswith("up.weight") or "lora_B" in k)]
    assert text_up and unet_up
    assert max(float(v.abs().max()) for v in text_up) > 0 and max(float(v.abs().max()) for v in unet_up) > 0
    assert not any("conv_in" in k for k in state)


def test_augmented_batches_are_seeded_and_shaped(references):
    """Same seed, same batch; crops are resolution-sized, masks binary; flips happen."""
    refs, masks = references
    items = to_tensors([Example(r.image, "p", m.data) for r, m in zip(refs, masks)], 64)
    kw = {"flip": True, "crop_scale": 0.6, "inpaint": True, "product_mask_prob": 0.5}
    a = sample_batch(items, 8, 64, torch.Generator().manual_seed(1), **kw)
    b = sample_batch(items, 8, 64, torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a["pixels"], b["pixels"]) and torch.equal(a["masks"], b["masks"])
    assert a["pixels"].shape == (8, 3, 64, 64) and a["masks"].shape == (8, 1, 64, 64)
    assert set(np.unique(a["masks"].numpy())) <= {0.0, 1.0}
    assert float(a["pixels"].min()) >= -1.0 and float(a["pixels"].max()) <= 1.0


def test_bf16_mixed_precision_trains_and_saves_float32_lora(tmp_path, tiny_sd_inpaint, references, config_for):
    """bf16 autocast over bf16 frozen weights (the GPU code path, run on CPU): LoRA weights stay float32."""
    refs, _ = references
    engine = LoraEngine(TrainConfig(**config_for(tiny_sd_inpaint, steps=2, mixed_precision="bf16")), device="cpu")
    assert engine.weight_dtype == torch.bfloat16 and engine.autocast == torch.bfloat16
    path = run_training(engine, [Example(refs[0].image, "x")], tmp_path)
    state = load_file(str(path))
    assert all(v.dtype == torch.float32 for v in state.values())
    losses = [json.loads(x)["loss"] for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_fp16_on_cpu_is_a_usage_error(tiny_sd_inpaint, config_for):
    """fp16 autocast needs CUDA: said before any weights load."""
    from ecomforge.errors import UsageError

    with pytest.raises(UsageError, match="fp16 needs a CUDA device"):
        LoraEngine(TrainConfig(**config_for(tiny_sd_inpaint, mixed_precision="fp16")), device="cpu")
