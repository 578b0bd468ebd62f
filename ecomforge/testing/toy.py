"""Sample stages for testing one plugin inside a whole run, with no photos, models or other plugins.

Pass this module to ``run_test_recipe`` with your own plugin, and start from ``toy_recipe()``:
references are synthetic packshots (``sample_image``), masks are exact, the generator puts the product
on seeded grey noise (pasted back bit-exact) and the scorer rates background brightness::

    from ecomforge.testing import run_test_recipe, toy, toy_recipe

    def test_in_a_run(tmp_path):
        recipe = toy_recipe(filter=[{"plugin": "sample"}, {"plugin": "my-filter"}])
        result = run_test_recipe(recipe, tmp_path, toy, my_plugin)
        assert any(r["kept"] for r in result.records)
"""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ..errors import InputError
from ..hookspecs import hookimpl
from ..imaging.paste import paste_back
from ..stages import Acquirer, Filter, Generator, Masker, Scorer, StageConfig
from ..types import Candidate, Decision, Mask, Reference
from .contracts import sample_image

PREFIX = "sample:"


def _seed(spec: str) -> int:
    if not spec.startswith(PREFIX) or not spec[len(PREFIX):].isdigit():
        raise InputError(f"{spec!r}: the sample acquirer takes '{PREFIX}N' (N a seed)")
    return int(spec[len(PREFIX):])


class SampleAcquirer(Acquirer):
    """References 'sample:N': synthetic packshots drawn from seed N."""

    name = "sample"

    class Config(StageConfig):
        width: int = Field(96, ge=16, le=1024, description="Image width in px (height is 3/4 of it).")

    def acquire(self, specs, *, product, base_dir: Path):
        """One synthetic reference per spec, in spec order."""
        refs = []
        for spec in specs:
            seed = _seed(spec)
            img, _ = sample_image(self.config.width, self.config.width * 3 // 4, seed)
            sha = hashlib.sha256(img.tobytes()).hexdigest()
            refs.append(Reference(img, spec, sha, product=product, name=f"sample{seed}"))
        return refs


class SampleMasker(Masker):
    """The exact mask of a sample reference."""

    name = "sample"

    class Config(StageConfig):
        feather: int = Field(0, ge=0, le=32, description="Soft paste-back edge in px.")

    def mask(self, reference):
        """Recompute the true mask from the reference's seed."""
        width, height = reference.size
        _, mask = sample_image(width, height, _seed(reference.source))
        return Mask(mask, score=1.0, label="sample", feather=self.config.feather)


class SampleGenerator(Generator):
    """The product on seeded grey noise around ``level``, pasted back bit-exact."""

    name = "sample"

    class Config(StageConfig):
        level: int = Field(128, ge=0, le=255, description="Mean background level (sweep it for variety).")

    def generate(self, request):
        """One candidate per seed; each seed's pixels do not depend on the batch."""
        ref, mask, out = request.reference, request.mask, []
        for seed in request.seeds:
            noise = np.random.default_rng(seed).normal(request.config.level, 16, ref.image.shape)
            image = paste_back(ref.image, noise.clip(0, 255).astype(np.uint8), mask.data,
                               dilate_px=mask.dilate, feather_px=mask.feather)
            out.append(Candidate(image, seed, self.describe(request.config), plugin=self.name, mask=mask.data))
        return out


class SampleScorer(Scorer):
    """Background brightness in [0, 1] (a stand-in for a real fidelity score)."""

    name = "sample"

    class Config(StageConfig):
        pass

    def score(self, candidates, context):
        """Mean background level / 255, per candidate."""
        return [float(c.image[c.mask == 0].mean() / 255.0) if c.mask is not None else 0.5 for c in candidates]


class SampleFilter(Filter):
    """Keeps candidates whose total reaches ``min_total``."""

    name = "sample"

    class Config(StageConfig):
        min_total: float = Field(0.0, ge=0, le=1, description="Lowest total kept.")

    def select(self, scored):
        """Keep by total alone: order-free."""
        lo = self.config.min_total
        return [Decision(True, f"kept: total {s.total:.3f}") if s.total >= lo else
                Decision(False, f"dropped: total {s.total:.3f} < {lo:g}") for s in scored]


@hookimpl
def register_acquirers(register):
    """The sample acquirer."""
    register(SampleAcquirer)


@hookimpl
def register_maskers(register):
    """The sample masker."""
    register(SampleMasker)


@hookimpl
def register_generators(register):
    """The sample generator."""
    register(SampleGenerator)


@hookimpl
def register_scorers(register):
    """The sample scorer."""
    register(SampleScorer)


@hookimpl
def register_filters(register):
    """The sample filter."""
    register(SampleFilter)


_RECIPE: dict[str, Any] = {
    "name": "toy",
    "inputs": {"products": {"a": [f"{PREFIX}1", f"{PREFIX}2"], "b": [f"{PREFIX}3"]}, "prompt": "a product photo"},
    "acquire": {"plugin": "sample"},
    "mask": {"plugin": "sample"},
    "generate": {"plugin": "sample", "sweep": {"level": [60, 200]}, "seeds": [1, 2]},
    "score": [{"plugin": "sample", "weight": 1.0}],
    "filter": {"plugin": "sample"},
}


def toy_recipe(**steps: Any) -> dict[str, Any]:
    """A recipe of sample stages (2 products, 3 references, 2 sweep points x 2 seeds); ``steps`` replace its keys."""
    recipe = copy.deepcopy(_RECIPE)
    recipe.update(copy.deepcopy(steps))
    return recipe
