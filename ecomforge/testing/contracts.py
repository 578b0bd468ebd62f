"""Contract test mixins: the checks every plugin of a stage kind must pass."""
from __future__ import annotations

from pathlib import Path


import numpy as np

from ..stages import Acquirer, Filter, Generator, Masker, Scorer, Stage
from ..types import Candidate, Decision, GenerationRequest, Mask, Reference, Scored, ScoringContext


def sample_image(width: int = 96, height: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic packshot: a textured product on a plain light background, and its true mask."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 235, np.uint8)
    yy, xx = np.mgrid[:height, :width]
    cy, cx, ry, rx = height / 2, width / 2, height * 0.32, width * 0.28
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    texture = (rng.integers(0, 60, (height, width, 1)) + np.array([150, 40, 40])).clip(0, 255)
    texture[(yy // 6 + xx // 6) % 2 == 0] = [30, 90, 160]
    img[inside] = texture[inside]
    return img, np.where(inside, 255, 0).astype(np.uint8)


def make_reference(width: int = 96, height: int = 64, seed: int = 0, product: str = "product") -> tuple[Reference, Mask]:
    """A Reference of ``sample_image`` and its exact Mask."""
    import hashlib

    img, mask = sample_image(width, height, seed)
    sha = hashlib.sha256(img.tobytes()).hexdigest()
    return Reference(image=img, source=f"sample-{seed}", sha256=sha, product=product, name=f"sample{seed}"), Mask(mask)


class _Contract:
    def make_stage(self) -> Stage:  # pragma: no cover - provided by the test class
        """Return a configured instance of the plugin under test."""
        raise NotImplementedError

    def test_has_name_and_config(self) -> None:
        """A plugin has a name and a Config that rejects unknown keys and describes every field."""
        stage = self.make_stage()
        assert stage.name, "the plugin class needs a 'name'"
        fields = type(stage).Config.model_fields
        undocumented = [k for k, f in fields.items() if not f.description]
        assert not undocumented, f"Config fields without a description: {undocumented}"
        import pytest

        from ..errors import RecipeError

        with pytest.raises(RecipeError, match="unknown key"):
            type(stage)({"surely_not_a_setting": 1})


class MaskerContract(_Contract):
    """Maskers return a binary mask of the reference's size."""

    def make_reference(self) -> Reference:
        """The reference the masker is run on (override for models that need bigger input)."""
        return make_reference()[0]

    def test_mask_is_binary_and_sized(self) -> None:
        """Output is uint8 {0,255}, H×W of the reference, score in [0,1]."""
        stage: Masker = self.make_stage()  # type: ignore[assignment]
        stage.ensure_setup()
        ref = self.make_reference()
        mask = stage.mask(ref)
        assert isinstance(mask, Mask)
        assert mask.data.dtype == np.uint8 and mask.data.shape == ref.image.shape[:2]
        assert set(np.unique(mask.data)) <= {0, 255}
        assert 0.0 <= mask.score <= 1.0


class GeneratorContract(_Contract):
    """Generators return one candidate per seed, reproducibly."""

    seeds: tuple[int, ...] = (1, 2)

    def make_request(self, stage: Generator, seeds: tuple[int, ...]) -> GenerationRequest:
        """The request the generator is run on (override for other sizes or prompts)."""
        ref, mask = make_reference()
        return GenerationRequest(ref, mask, "a product photo", "", stage.config, seeds)

    def test_one_candidate_per_seed(self) -> None:
        """Candidates come back in seed order, with their params and RGB uint8 pixels."""
        stage: Generator = self.make_stage()  # type: ignore[assignment]
        stage.ensure_setup()
        out = stage.generate(self.make_request(stage, self.seeds))
        assert [c.seed for c in out] == list(self.seeds)
        for c in out:
            assert isinstance(c, Candidate)
            assert c.image.dtype == np.uint8 and c.image.ndim == 3 and c.image.shape[2] == 3
            assert isinstance(c.params, dict)
            if c.mask is not None:
                assert c.mask.shape == c.image.shape[:2]

    def test_same_seed_same_pixels(self) -> None:
        """Generating a seed twice gives identical pixels."""
        stage: Generator = self.make_stage()  # type: ignore[assignment]
        stage.ensure_setup()
        a = stage.generate(self.make_request(stage, self.seeds[:1]))[0]
        b = stage.generate(self.make_request(stage, self.seeds[:1]))[0]
        assert np.array_equal(a.image, b.image)


class ScorerContract(_Contract):
    """Scorers give one float in [0,1] per candidate; the reference itself scores highest."""

    def test_scores_in_unit_interval_and_self_is_best(self) -> None:
        """Self-similarity is the maximum; an unrelated image scores no higher."""
        stage: Scorer = self.make_stage()  # type: ignore[assignment]
        stage.ensure_setup()
        ref, mask = make_reference(seed=0)
        other, other_mask = make_reference(seed=5)
        noise = np.random.default_rng(3).integers(0, 256, ref.image.shape, dtype=np.uint8)
        cands = [Candidate(ref.image.copy(), 0, {}, mask=mask.data), Candidate(noise, 1, {}, mask=mask.data)]
        ctx = ScoringContext((ref,), (mask,), "a product photo")
        scores = stage.score(cands, ctx)
        assert len(scores) == 2
        assert all(0.0 <= s <= 1.0 and np.isfinite(s) for s in scores)
        assert scores[0] >= scores[1]


class FilterContract(_Contract):
    """Filters give one decision per candidate."""

    def test_one_decision_each(self) -> None:
        """Decisions align with the input and carry a reason."""
        stage: Filter = self.make_stage()  # type: ignore[assignment]
        ref, mask = make_reference()
        scored = [Scored(f"id{i}", Candidate(ref.image, i, {}), {"s": i / 10}, i / 10) for i in range(6)]
        out = stage.select(scored)
        assert len(out) == len(scored)
        assert all(isinstance(d, Decision) and d.reason for d in out)


class AcquirerContract(_Contract):
    """Acquirers turn specs into references with hashes."""

    def make_specs(self, tmp_path: Path) -> list[str]:  # pragma: no cover - provided by the test class
        """Specs naming at least one image under ``tmp_path``."""
        raise NotImplementedError

    def test_acquires_references(self, tmp_path: Path) -> None:
        """Every reference is RGB uint8 with a sha256 and a name."""
        stage: Acquirer = self.make_stage()  # type: ignore[assignment]
        refs = stage.acquire(self.make_specs(tmp_path), product="p", base_dir=tmp_path)
        assert refs
        for r in refs:
            assert r.image.dtype == np.uint8 and r.image.shape[2] == 3
            assert len(r.sha256) == 64 and r.name


