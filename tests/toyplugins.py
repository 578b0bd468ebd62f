"""Toy stages for orchestration tests (no images on disk, no models): the runner is what's under test."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
from pydantic import Field

from ecomforge import hookimpl
from ecomforge.errors import InputError
from ecomforge.run import cancel
from ecomforge.stages import Acquirer, Filter, Generator, Masker, Scorer, StageConfig
from ecomforge.testing import sample_image
from ecomforge.types import Candidate, Decision, Mask, Reference

CALLS: dict[str, int] = {}


def _count(name: str, n: int = 1) -> None:
    CALLS[name] = CALLS.get(name, 0) + n


class ToyAcquirer(Acquirer):
    """Specs 'seed:N' become synthetic packshots."""

    name = "toy"

    class Config(StageConfig):
        size: int = Field(default=48, ge=16, le=512, description="Image width in px.")

    def acquire(self, specs, *, product, base_dir: Path):
        """One synthetic reference per spec."""
        refs = []
        for spec in specs:
            if not spec.startswith("seed:"):
                raise InputError(f"{spec}: toy acquirer wants 'seed:N'")
            seed = int(spec.split(":")[1])
            img, _ = sample_image(self.config.size, self.config.size * 3 // 4, seed)
            refs.append(Reference(img, spec, hashlib.sha256(img.tobytes()).hexdigest(), product=product, name=f"s{seed}"))
        return refs


class ToyMasker(Masker):
    """The exact mask of the synthetic packshot."""

    name = "toy"

    class Config(StageConfig):
        feather: int = Field(default=0, ge=0, description="Feather width.")

    def mask(self, reference):
        """Recompute the synthetic mask."""
        _count("mask")
        seed = int(reference.source.split(":")[1])
        _, m = sample_image(reference.size[0], reference.size[1], seed)
        return Mask(m, score=0.9, label="toy", feather=self.config.feather)


class ToyGenerator(Generator):
    """Deterministic noise backgrounds by seed, product pasted back."""

    name = "toy"

    class Config(StageConfig):
        level: int = Field(default=100, ge=0, le=255, description="Mean background level.")
        delay: float = Field(default=0.0, ge=0, description="Seconds to sleep per image (crash tests).")
        model: str = Field(default="toy-model", description="A model id.")

    def check(self):
        """A model named ``missing:...`` is not on disk (as a real generator's missing weights)."""
        if self.config.model.startswith("missing:"):
            from ecomforge.errors import ModelNotFound

            raise ModelNotFound(f"generate.config.model: model {self.config.model!r} is not downloaded")

    def generate(self, request):
        """One image per seed."""
        out = []
        for seed in request.seeds:
            _count("generate")
            for _ in range(10 if request.config.delay else 0):  # a long call in small steps, checking for a cancel like a diffusion loop
                time.sleep(request.config.delay / 10)
                cancel.check()
            rng = np.random.default_rng(seed)
            img = rng.normal(request.config.level, 20, request.reference.image.shape).clip(0, 255).astype(np.uint8)
            m = request.mask.data > 0
            img[m] = request.reference.image[m]
            out.append(Candidate(img, seed, {"level": request.config.level}, plugin=self.name,
                                 models={"model": request.config.model}, mask=request.mask.data))
        return out


class ToyScorer(Scorer):
    """Background brightness, in [0,1]."""

    name = "toy"

    class Config(StageConfig):
        invert: bool = Field(default=False, description="Score darkness instead.")

    def score(self, candidates, context):
        """Mean background level / 255."""
        _count("score", len(candidates))
        out = []
        for c in candidates:
            v = float(c.image[c.mask == 0].mean() / 255.0)
            out.append(1.0 - v if self.config.invert else v)
        return out


class ToyTop(Filter):
    """Keep the top half."""

    name = "toy-top"

    class Config(StageConfig):
        fraction: float = Field(default=0.5, gt=0, le=1, description="Share kept.")

    def select(self, scored):
        """Keep the best fraction by total."""
        k = max(1, int(len(scored) * self.config.fraction))
        best = {s.id for s in sorted(scored, key=lambda s: (-s.total, s.id))[:k]}
        return [Decision(s.id in best, "kept: top" if s.id in best else "dropped: below top") for s in scored]


@hookimpl
def register_acquirers(register):
    """Toy acquirer."""
    register(ToyAcquirer)


@hookimpl
def register_maskers(register):
    """Toy masker."""
    register(ToyMasker)


@hookimpl
def register_generators(register):
    """Toy generator."""
    register(ToyGenerator)


@hookimpl
def register_scorers(register):
    """Toy scorer."""
    register(ToyScorer)


@hookimpl
def register_filters(register):
    """Toy filter."""
    register(ToyTop)


TOY_RECIPE = """
name: toy
inputs:
  products: {a: ["seed:1", "seed:2"], b: ["seed:3"]}
  prompt: a toy on a table
  negative_prompt: blurry
acquire: {plugin: toy}
mask: {plugin: toy}
generate:
  plugin: toy
  sweep: {level: [60, 180]}
  seeds: [1, 2, 3]
  batch_size: 2
score:
  - {plugin: toy, weight: 1}
filter: {plugin: toy-top}
"""
