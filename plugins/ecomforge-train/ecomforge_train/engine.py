"""The LoRA training loop: one seeded generator drives every random choice, so a resumed run is exact."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecomforge.errors import UsageError
from ecomforge.models import resolve_device

from . import checkpoint as ckpt
from .config import TrainConfig
from .data import Example, sample_batch, to_tensors
from .model import Parts, add_lora, estimate_memory, load_parts, lora_named_params, lora_state


def precision(config: TrainConfig, device: str) -> tuple[Any, Any]:
    """(weight dtype of the frozen parts, autocast dtype or None) for this device."""
    import torch

    mode = config.mixed_precision
    if not device.startswith("cuda"):
        if mode in ("fp16",):
            raise UsageError("mixed_precision: fp16 needs a CUDA device (use 'no' or 'bf16' on CPU)")
        return (torch.bfloat16, torch.bfloat16) if mode == "bf16" else (torch.float32, None)
    if mode == "auto":
        mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = {"no": None, "fp16": torch.float16, "bf16": torch.bfloat16}[mode]
    return (dtype or torch.float32), dtype


def require_bitsandbytes() -> Any:
    """The bitsandbytes module, or a UsageError saying how to get it."""
    try:
        import bitsandbytes
    except ImportError as exc:
        raise UsageError("use_8bit_adam: bitsandbytes is not installed",
                         hint="pip install bitsandbytes, or set use_8bit_adam: false") from exc
    return bitsandbytes


def make_optimizer(params: list[Any], config: TrainConfig) -> Any:
    """AdamW, or bitsandbytes' 8-bit AdamW when asked for (a clear error when it is not installed)."""
    import torch

    if not config.use_8bit_adam:
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-2)
    return require_bitsandbytes().optim.AdamW8bit(params, lr=config.learning_rate, weight_decay=1e-2)


class LoraEngine:
    """Holds the model, optimizer and seeded generator; ``step()`` runs one optimisation step."""

    def __init__(self, config: TrainConfig, *, device: str = "auto") -> None:
        import torch

        self.config = config
        self.device = resolve_device(device)
        self.weight_dtype, self.autocast = precision(config, self.device)
        self.parts: Parts = load_parts(config.base_model, device=self.device, weight_dtype=self.weight_dtype,
                                       variant=config.variant)
        self.params: list[Any] = []
        self.optimizer: Any = None
        self.scaler: Any = None
        self.gen = torch.Generator().manual_seed(config.seed)
        self.step_count = 0

    def add_lora(self) -> None:
        """Put LoRA adapters on the UNet (and text encoder) and build the optimizer."""
        import torch

        cfg = self.config
        self.params = add_lora(self.parts, rank=cfg.rank, alpha=cfg.alpha, text_encoder=cfg.train_text_encoder,
                               seed=cfg.seed)
        if cfg.gradient_checkpointing:
            self.parts.unet.enable_gradient_checkpointing()
            if cfg.train_text_encoder:
                te = self.parts.text_encoder  # transformers 5 renamed the method; keep both working
                getattr(te, "activation_checkpointing_enable", te.gradient_checkpointing_enable)()
        self.parts.unet.train()
        if cfg.train_text_encoder:
            self.parts.text_encoder.train()
        self.optimizer = make_optimizer(self.params, cfg)
        if self.autocast is torch.float16:
            self.scaler = torch.amp.GradScaler("cuda")

    @property
    def named_params(self) -> dict[str, Any]:
        """The trainable LoRA parameters by name."""
        return lora_named_params(self.parts)

    def fingerprint(self) -> dict[str, Any]:
        """Settings a checkpoint must share with the run resuming it."""
        c = self.config
        return {"base_model": c.base_model, "rank": c.rank, "alpha": c.alpha, "variant": c.variant,
                "train_text_encoder": c.train_text_encoder, "resolution": c.resolution, "seed": c.seed}

    def memory_estimate(self) -> dict[str, float]:
        """Rough peak memory of this configuration (printed before training starts)."""
        c = self.config
        batch = c.batch_size * (2 if c.prior_preservation else 1)
        return estimate_memory(self.parts, batch=batch, resolution=c.resolution,
                               weight_bytes=self.weight_dtype.itemsize, checkpointing=c.gradient_checkpointing,
                               eight_bit=c.use_8bit_adam)

    def encode(self, pixels: Any, gen: Any) -> Any:
        """VAE latents of images in [-1,1], sampled with ``gen`` and scaled as the UNet expects."""
        vae = self.parts.vae
        with self._no_grad():
            dist = vae.encode(pixels.to(self.device, self.weight_dtype)).latent_dist
            return dist.sample(generator=gen) * vae.config.scaling_factor

    def _no_grad(self) -> Any:
        import torch

        return torch.no_grad()

    def losses(self, batch: dict[str, Any], gen: Any) -> Any:
        """Per-sample diffusion loss (MSE to the noise, or velocity for v-prediction models)."""
        import torch
        import torch.nn.functional as F
        from diffusers.utils.torch_utils import randn_tensor

        parts, dev = self.parts, self.device
        latents = self.encode(batch["pixels"], gen)
        noise = randn_tensor(latents.shape, generator=gen, device=torch.device(dev), dtype=latents.dtype)
        sched = parts.noise_scheduler
        t = torch.randint(0, sched.config.num_train_timesteps, (latents.shape[0],), generator=gen).to(dev)
        noisy = sched.add_noise(latents, noise, t)
        if parts.inpaint:
            masks = batch["masks"].to(dev, self.weight_dtype)
            masked = self.encode(batch["pixels"].to(dev) * (1.0 - batch["masks"].to(dev)), gen)
            small = F.interpolate(masks, size=latents.shape[-2:], mode="nearest")
            noisy = torch.cat([noisy, small, masked], dim=1)
        ids = parts.tokenizer(batch["prompts"], padding="max_length", truncation=True,
                              max_length=parts.tokenizer.model_max_length, return_tensors="pt").input_ids.to(dev)
        with torch.autocast(dev.split(":")[0], dtype=self.autocast, enabled=self.autocast is not None):
            with torch.set_grad_enabled(self.config.train_text_encoder and torch.is_grad_enabled()):
                states = parts.text_encoder(ids)[0]
            pred = parts.unet(noisy, t, states).sample
        if sched.config.prediction_type == "v_prediction":
            target = sched.get_velocity(latents, noise, t)
        else:
            target = noise
        return F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))

    def step(self, batch: dict[str, Any], n_prior: int = 0) -> float:
        """One optimisation step on ``batch`` (its last ``n_prior`` samples are class images); returns the loss."""
        import torch

        per = self.losses(batch, self.gen)
        n = per.shape[0] - n_prior
        loss = per[:n].mean()
        if n_prior:
            loss = loss + self.config.prior_loss_weight * per[n:].mean()
        lr = self.config.learning_rate * min(1.0, (self.step_count + 1) / max(1, self.config.warmup_steps))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step_count += 1
        return float(loss.detach())

    def save_checkpoint(self, output_dir: Path) -> Path:
        """Write a resumable checkpoint for the current step."""
        return ckpt.save_checkpoint(output_dir, self.step_count, self.named_params, self.optimizer, self.gen,
                                    self.fingerprint(), scaler=self.scaler, keep=self.config.keep_checkpoints)

    def load_checkpoint(self, folder: Path) -> None:
        """Continue from a checkpoint written by ``save_checkpoint``."""
        self.step_count = ckpt.load_checkpoint(folder, self.named_params, self.optimizer, self.gen,
                                               self.fingerprint(), scaler=self.scaler)

    def save_lora(self, output_dir: Path, info: dict[str, Any]) -> Path:
        """The final diffusers-format LoRA file."""
        meta = {}
        for name, module in (("unet_meta", self.parts.unet), ("text_meta", self.parts.text_encoder)):
            cfg = getattr(module, "peft_config", {}).get("default")
            meta[name] = cfg.to_dict() if cfg is not None else None
        return ckpt.save_lora(output_dir, lora_state(self.parts), info, **meta)


def run_training(engine: LoraEngine, examples: list[Example], output_dir: Path, *,
                 class_examples: list[Example] | None = None, resume: Path | bool = False,
                 on_checkpoint: Callable[[int], dict[str, Any] | None] | None = None,
                 progress: Any = None) -> Path:
    """Train to ``config.steps`` with checkpoints, a jsonl log and an optional rich progress bar."""
    cfg, output_dir = engine.config, Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    items = to_tensors(examples, cfg.resolution)
    class_items = to_tensors(class_examples or [], cfg.resolution)
    if engine.optimizer is None:
        engine.add_lora()
    if not resume and ckpt.checkpoint_dirs(output_dir):
        raise UsageError(f"output: {output_dir} already holds checkpoints",
                         hint="add --resume to continue them, or choose a new output folder")
    if resume:
        folder = resume if isinstance(resume, Path) else (ckpt.checkpoint_dirs(output_dir) or [None])[-1]
        if folder is None:
            raise UsageError(f"--resume: no checkpoint in {output_dir / ckpt.CHECKPOINTS}")
        engine.load_checkpoint(folder)
    log_path = output_dir / "train_log.jsonl"
    # a resumed run rewrites what came after its checkpoint, and its clock goes on from there
    elapsed = _truncate_log(log_path, engine.step_count)
    kw = {"flip": cfg.flip, "crop_scale": cfg.crop_scale, "inpaint": engine.parts.inpaint,
          "product_mask_prob": cfg.product_mask_prob}
    started = time.perf_counter() - elapsed
    with open(log_path, "a", encoding="utf-8") as log:
        while engine.step_count < cfg.steps:
            batch = sample_batch(items, cfg.batch_size, cfg.resolution, engine.gen, **kw)
            n_prior = 0
            if cfg.prior_preservation and class_items:
                prior = sample_batch(class_items, cfg.batch_size, cfg.resolution, engine.gen, **kw)
                batch = _concat(batch, prior)
                n_prior = cfg.batch_size
            loss = engine.step(batch, n_prior)
            step = engine.step_count
            log.write(json.dumps({"step": step, "loss": round(loss, 6), "lr": engine.optimizer.param_groups[0]["lr"],
                                  "elapsed_s": round(time.perf_counter() - started, 3)}) + "\n")
            log.flush()
            if progress is not None:
                progress(step, loss)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                engine.save_checkpoint(output_dir)
                extra = on_checkpoint(step) if on_checkpoint else None
                if extra:
                    log.write(json.dumps({"step": step, "type": "validation", **extra}) + "\n")
                    log.flush()
    info = {"base_model": cfg.base_model, "pipeline": engine.parts.pipeline_class, "inpaint": engine.parts.inpaint,
            "unet_in_channels": int(engine.parts.unet.config.in_channels), "instance_prompt": cfg.instance_prompt,
            "steps": cfg.steps, "rank": cfg.rank, "alpha": cfg.alpha or cfg.rank,
            "train_text_encoder": cfg.train_text_encoder}
    return engine.save_lora(output_dir, info)


def _concat(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    import torch

    out = {"pixels": torch.cat([a["pixels"], b["pixels"]]), "prompts": a["prompts"] + b["prompts"]}
    if "masks" in a:
        out["masks"] = torch.cat([a["masks"], b["masks"]])
    return out


def _truncate_log(path: Path, step: int) -> float:
    """Keep only log records up to ``step`` (all of them are dropped on a fresh start); returns the training
    time the kept records reached (``elapsed_s`` of the last), which a resumed run's clock continues from."""
    if not path.exists():
        return 0.0
    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
    times = [json.loads(line).get("elapsed_s") for line in keep]
    return float(next((t for t in reversed(times) if t is not None), 0.0))
