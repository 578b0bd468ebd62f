"""Simulated GPU stages for bench_cluster.py: they sleep as long as the real models take on a GPU.

Each sleep holds a lock on the (logical) GPU the Ray actor was given, so two actors that share a
GPU (a generation actor and a masking actor on the same device) take turns, as kernels on one
real GPU do: the simulation cannot run more GPU-seconds at once than there are GPUs.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydantic import Field

from ecomforge import hookimpl
from ecomforge.imaging.paste import paste_back
from ecomforge.stages import Acquirer, Generator, Masker, Scorer, StageConfig
from ecomforge.types import Candidate, Mask, Reference

LOCKS = Path(os.environ.get("ECOMFORGE_SIM_LOCKS", "/tmp/ecomforge-sim-gpus"))
TRACE = os.environ.get("ECOMFORGE_SIM_TRACE") == "1"
MASK_S, IMAGE_S, SCORE_S = 0.15, 0.25, 0.005  # SAM-class per reference, SD-1.5 512² per image, CLIP/DINO per candidate


@contextmanager
def on_gpu(kind: str):
    """Hold this process's logical GPU for the block (no GPU, e.g. the driver: a lock of its own)."""
    try:
        import ray

        ids = ray.get_gpu_ids() if ray.is_initialized() else []
    except Exception:
        ids = []
    LOCKS.mkdir(parents=True, exist_ok=True)
    gpu = str(ids[0]) if ids else "none-" + str(os.getpid())
    with open(LOCKS / f"gpu-{gpu}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        t0 = time.time()
        try:
            yield
        finally:
            t1 = time.time()
            fcntl.flock(fh, fcntl.LOCK_UN)
            if TRACE:  # busy intervals per GPU, for the benchmark's utilisation figure
                with open(LOCKS / f"trace-{os.getpid()}.txt", "a") as out:
                    out.write(f"{gpu} {kind} {t0:.6f} {t1:.6f}\n")


def _image(seed: int, w: int = 32, h: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


class SimAcquirer(Acquirer):
    """Specs 'sim:N' become synthetic references (no disk)."""

    name = "sim"

    class Config(StageConfig):
        size: int = Field(default=32, ge=8, le=2048, description="Reference width (height is 3/4 of it).")

    def acquire(self, specs, *, product, base_dir):
        """One reference per spec."""
        refs = []
        for spec in specs:
            img = _image(int(spec.split(":")[1]), self.config.size, self.config.size * 3 // 4)
            refs.append(Reference(img, spec, hashlib.sha256(img.tobytes()).hexdigest(), product=product,
                                  name=spec.replace(":", "")))
        return refs


class SimMasker(Masker):
    """A centred box, after a SAM-class GPU time."""

    name = "sim"

    def mask(self, reference):
        """Sleep MASK_S on the GPU, return the box."""
        with on_gpu("mask"):
            time.sleep(MASK_S)
        h, w = reference.image.shape[:2]
        m = np.zeros((h, w), np.uint8)
        m[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
        return Mask(m, score=0.9, label="sim")


class SimGenerator(Generator):
    """Noise by seed with the product pasted back, after an SD-1.5 GPU time per image."""

    name = "sim"

    class Config(StageConfig):
        level: int = Field(default=100, ge=0, le=255, description="A sweepable parameter.")

    def generate(self, request):
        """Sleep IMAGE_S per seed (one batched call), return one candidate per seed."""
        with on_gpu("generate"):
            time.sleep(IMAGE_S * len(request.seeds))
        out = []
        h, w = request.reference.image.shape[:2]
        for seed in request.seeds:
            img = _image(seed * 7919 + request.config.level, w, h)
            img = paste_back(request.reference.image, img, request.mask.data, feather_px=4)  # CPU, as the real ones
            out.append(Candidate(img, seed, {"level": request.config.level}, plugin=self.name))
        return out


class SimScorer(Scorer):
    """A fixed score, after a CLIP/DINO-class GPU time per candidate."""

    name = "sim"

    def score(self, candidates, context):
        """Sleep SCORE_S per candidate (one batched call)."""
        with on_gpu("score"):
            time.sleep(SCORE_S * len(candidates))
        return [0.5 + 0.4 * ((c.seed % 5) / 5) for c in candidates]


@hookimpl
def register_acquirers(register):
    """sim."""
    register(SimAcquirer)


@hookimpl
def register_maskers(register):
    """sim."""
    register(SimMasker)


@hookimpl
def register_generators(register):
    """sim."""
    register(SimGenerator)


@hookimpl
def register_scorers(register):
    """sim."""
    register(SimScorer)
