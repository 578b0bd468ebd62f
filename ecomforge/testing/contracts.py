"""Contract test mixins: the checks every plugin of a stage kind must pass."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from ..imaging.masks import erode
from ..run.checks import candidates_problem, decisions_problem, scores_problem
from ..stages import Acquirer, Filter, Generator, Masker, Scorer, Stage, reads_problem
from ..types import Candidate, GenerationRequest, Mask, Reference, Score, Scored, ScoringContext


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


S = TypeVar("S", bound=Stage)


class _Contract(Generic[S]):
    """Checks shared by every stage kind: a name, a strict and documented Config that round-trips."""

    def make_stage(self) -> S:  # pragma: no cover - provided by the test class
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

    def test_config_round_trips(self) -> None:
        """The config dumped to JSON (as the run folder stores it) validates back to an equal config."""
        stage = self.make_stage()
        dumped = stage.config.model_dump(mode="json")
        again = type(stage)(dumped, device=stage.device)
        assert again.config == stage.config, "Config does not survive model_dump(mode='json') -> validate"


class MaskerContract(_Contract[Masker]):
    """Maskers return a binary mask of the reference's size, the same one every time."""

    def make_reference(self) -> Reference:
        """The reference the masker is run on (override for models that need bigger input)."""
        return make_reference()[0]

    def test_mask_is_binary_and_sized(self) -> None:
        """Output is uint8 {0,255}, H×W of the reference, score in [0,1]."""
        stage = self.make_stage()
        stage.ensure_setup()
        ref = self.make_reference()
        mask = stage.mask(ref)
        assert isinstance(mask, Mask)
        assert mask.data.dtype == np.uint8 and mask.data.shape == ref.image.shape[:2]
        assert set(np.unique(mask.data)) <= {0, 255}
        assert 0.0 <= mask.score <= 1.0
        assert mask.feather >= 0 and mask.dilate >= 0

    def test_deterministic(self) -> None:
        """Masking one reference twice gives the same mask and score (ids depend on it)."""
        stage = self.make_stage()
        stage.ensure_setup()
        ref = self.make_reference()
        a, b = stage.mask(ref), stage.mask(ref)
        assert np.array_equal(a.data, b.data) and a.score == b.score


class GeneratorContract(_Contract[Generator]):
    """Generators return one candidate per seed, reproducibly, batched or not, with the product intact.

    Set ``preserves_product = False`` for a generator that re-renders the product (img2img without
    paste-back, a compositor that rescales it); ``batch_tolerance`` is the largest per-pixel difference
    allowed between a batched call and one-by-one calls (0 = identical; document anything else).
    ``sweep_point`` is a config change that must change the pixels (``{"background": "#000000"}``): the
    contract then checks the generator reads ``request.config`` (the sweep point), not ``self.config``.
    """

    seeds: tuple[int, ...] = (1, 2)
    preserves_product: ClassVar[bool] = True
    batch_tolerance: ClassVar[int] = 0
    sweep_point: ClassVar[dict[str, Any]] = {}

    def make_request(self, stage: Generator, seeds: tuple[int, ...]) -> GenerationRequest:
        """The request the generator is run on (override for other sizes, prompts or masks)."""
        ref, mask = make_reference()
        return GenerationRequest(ref, mask, "a product photo", "", stage.config, seeds)

    def _generate(self, seeds: tuple[int, ...]) -> tuple[GenerationRequest, list[Candidate]]:
        stage = self.make_stage()
        stage.ensure_setup()
        request = self.make_request(stage, seeds)
        return request, stage.generate(request)

    def test_one_candidate_per_seed(self) -> None:
        """Candidates come back in seed order, with their params and RGB uint8 pixels."""
        _, out = self._generate(self.seeds)
        problem = candidates_problem(self.seeds, out)  # the very check a run makes before storing anything
        assert problem is None, problem

    def test_declared_pixels_cover_the_output(self) -> None:
        """A generator that declares ``work_pixels`` makes no candidate larger than it says (limits trust it),
        for the stage's config and for ``sweep_point`` (set it to a setting that changes the size)."""
        stage = self.make_stage()
        stage.ensure_setup()
        base = self.make_request(stage, self.seeds[:1])
        configs = [base.config]
        if self.sweep_point:
            configs.append(type(stage).parse_config({**base.config.model_dump(mode="json"), **self.sweep_point}))
        for config in configs:
            declared = type(stage).work_pixels(config, base.reference.size)
            if declared is None:
                continue
            made = max(c.image.shape[0] * c.image.shape[1] for c in stage.generate(dataclasses.replace(base, config=config)))
            assert made <= declared, f"work_pixels says {declared} pixels for {config!r}, a candidate has {made}"

    def test_same_seed_same_pixels(self) -> None:
        """Generating a seed twice gives identical pixels."""
        _, (a,) = self._generate(self.seeds[:1])
        _, (b,) = self._generate(self.seeds[:1])
        assert np.array_equal(a.image, b.image)

    def test_batch_equals_one_by_one(self) -> None:
        """A batch of seeds gives each seed the pixels it gets alone (within ``batch_tolerance``)."""
        _, batched = self._generate(self.seeds)
        for seed, cand in zip(self.seeds, batched):
            _, (alone,) = self._generate((seed,))
            diff = np.abs(cand.image.astype(np.int16) - alone.image.astype(np.int16)).max()
            assert diff <= self.batch_tolerance, f"seed {seed}: batched and single differ by {diff} levels"

    def test_follows_the_sweep_point(self) -> None:
        """A request whose config carries ``sweep_point`` gets other pixels and params than the recipe's config."""
        if not self.sweep_point:
            import pytest

            pytest.skip("set sweep_point = {<key>: <value that changes the pixels>} to check request.config is read")
        stage = self.make_stage()
        stage.ensure_setup()
        base = self.make_request(stage, self.seeds[:1])
        point = type(stage).parse_config({**base.config.model_dump(mode="json"), **self.sweep_point})
        (a,), (b,) = stage.generate(base), stage.generate(dataclasses.replace(base, config=point))
        same = np.array_equal(a.image, b.image)
        assert not same, (f"{self.sweep_point} did not change the pixels: "
                          "does generate() read self.config instead of request.config?")
        assert a.params != b.params, f"{self.sweep_point} is missing from Candidate.params"

    def test_product_survives_bit_exact(self) -> None:
        """Inside erode(mask, feather - dilate) every candidate pixel is the reference's, bit for bit."""
        if not self.preserves_product:
            return
        request, out = self._generate(self.seeds[:1])
        ref, mask = request.reference, request.mask
        keep = erode(mask.data, max(mask.feather - mask.dilate, 0)) > 0
        for c in out:
            assert c.image.shape == ref.image.shape, "a product-preserving generator keeps the reference's size"
            changed = int(np.count_nonzero((c.image != ref.image).any(axis=2) & keep))
            assert changed == 0, f"{changed} product pixels differ from the reference"


class ScorerContract(_Contract[Scorer]):
    """Scorers give one float in [0,1] per candidate, deterministically; the reference itself scores highest.

    ``separates`` (default True): the reference scores strictly above every other candidate of
    ``make_candidates`` (pure noise, unless you add your own failure kind). Set it False only for a scorer
    blind to those candidates by design (one that judges framing, say), and add a failure it does see.
    """

    separates: ClassVar[bool] = True

    def make_context(self) -> tuple[ScoringContext, Reference, Mask]:
        """Two references of one product, and the one candidates are made from (override for real photos)."""
        ref, mask = make_reference(seed=0)
        second, second_mask = make_reference(seed=1)
        return ScoringContext((ref, second), (mask, second_mask), "a product photo"), ref, mask

    def make_candidates(self, ref: Reference, mask: Mask) -> list[Candidate]:
        """Candidates best first: the reference itself, then pure noise (override to add your failure kind)."""
        noise = np.random.default_rng(3).integers(0, 256, ref.image.shape, dtype=np.uint8)
        return [Candidate(ref.image.copy(), 0, {}, mask=mask.data), Candidate(noise, 1, {}, mask=mask.data)]

    def test_scores_in_unit_interval_and_self_is_best(self) -> None:
        """Self-similarity is the maximum; each later candidate scores no higher than the first."""
        stage = self.make_stage()
        stage.ensure_setup()
        ctx, ref, mask = self.make_context()
        cands = self.make_candidates(ref, mask)
        scores = list(stage.score(cands, ctx))
        problem = scores_problem(scores, len(cands))  # the very check a run makes of a scorer's output
        assert problem is None, problem
        best, rest = float(scores[0]), [float(s) for s in scores[1:]]
        assert all(best >= s for s in rest), f"the reference scores {best:g}, below another candidate: {rest}"
        if self.separates:
            assert all(best > s for s in rest), (f"the reference scores {best:g} and so does a failure case ({rest}): "
                                                 "a scorer that cannot tell them apart filters nothing")

    def test_deterministic_and_order_free(self) -> None:
        """Scoring again, or in reverse order, gives the same value and reason per candidate."""
        stage = self.make_stage()
        stage.ensure_setup()
        ctx, ref, mask = self.make_context()
        cands = self.make_candidates(ref, mask)
        first, again = list(stage.score(cands, ctx)), list(stage.score(cands[::-1], ctx))[::-1]
        for out in (first, again):
            problem = scores_problem(out, len(cands))
            assert problem is None, problem
        assert np.allclose([float(s) for s in first], [float(s) for s in again], atol=1e-5)
        reasons = [[s.reason if isinstance(s, Score) else "" for s in out] for out in (first, again)]
        assert reasons[0] == reasons[1], f"the reasons differ between two calls: {reasons[0]} vs {reasons[1]}"


class FilterContract(_Contract[Filter]):
    """Filters give one decision per candidate, with a reason, the same way every time."""

    def make_scored(self) -> list[Scored]:
        """Scored candidates with images and masks (override to exercise your filter's rule)."""
        out = []
        for i in range(6):
            ref, mask = make_reference(seed=i)
            out.append(Scored(f"id{i}", Candidate(ref.image, i, {}, mask=mask.data), {"s": i / 10}, i / 10))
        return out

    def test_one_decision_each(self) -> None:
        """Decisions align with the input and carry a reason (the very check a run makes of a filter's output)."""
        stage = self.make_stage()
        scored = self.make_scored()
        out = stage.select(scored)
        problem = decisions_problem(out, len(scored))
        assert problem is None, problem
        assert all(d.reason for d in out), "every decision says why"
        wrong = [d.reason for d in out if not d.reason.startswith("kept:" if d.kept else "dropped:")]
        assert not wrong, f"a reason starts with 'kept:' or 'dropped:' as the decision says: {wrong[:3]}"

    def test_reads_scores_is_a_mapping(self) -> None:
        """``reads_scores`` gives config key -> score name (validation checks the names against the recipe)."""
        stage = self.make_stage()
        problem = reads_problem(type(stage).reads_scores(stage.config))
        assert problem is None, problem

    def test_deterministic_and_order_free(self) -> None:
        """The same candidates in another order get the same decisions."""
        stage = self.make_stage()
        scored = self.make_scored()
        first = {s.id: d.kept for s, d in zip(scored, stage.select(scored))}
        rev = scored[::-1]
        second = {s.id: d.kept for s, d in zip(rev, stage.select(rev))}
        assert first == second


class AcquirerContract(_Contract[Acquirer]):
    """Acquirers turn specs into references with hashes, in a deterministic order."""

    def make_specs(self, tmp_path: Path) -> list[str]:  # pragma: no cover - provided by the test class
        """Specs naming at least one image under ``tmp_path``."""
        raise NotImplementedError

    def test_acquires_references(self, tmp_path: Path) -> None:
        """Every reference is RGB uint8 with a sha256 and a name; acquiring twice gives the same list."""
        stage = self.make_stage()
        specs = self.make_specs(tmp_path)
        refs = stage.acquire(specs, product="p", base_dir=tmp_path)
        assert refs
        for r in refs:
            assert r.image.dtype == np.uint8 and r.image.shape[2] == 3
            assert len(r.sha256) == 64 and r.name
        again = stage.acquire(specs, product="p", base_dir=tmp_path)
        assert [r.sha256 for r in again] == [r.sha256 for r in refs]
        assert len({r.name for r in refs}) == len(refs), "reference names must be unique within a product"
