"""Scorer behaviour on the tiny real-format models: range, self-similarity, caching, batching, crops."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecomforge.errors import InputError, RecipeError
from ecomforge.testing import ScorerContract, make_reference
from ecomforge.types import Candidate, Mask, Reference, ScoringContext

SCORERS = ("clip-image", "clip-text", "dino", "lpips")
IMAGE_SCORERS = ("clip-image", "dino", "lpips")


@pytest.fixture(autouse=True)
def _fresh_embeddings():
    from ecomforge_scorers.embedding import EMBEDDINGS

    EMBEDDINGS.clear()
    yield


class TestClipImageContract(ScorerContract):
    @pytest.fixture(autouse=True)
    def _configs(self, scorer_configs):
        self.cfg = scorer_configs

    def make_stage(self):
        from ecomforge_scorers.scorers import ClipImageScorer

        return ClipImageScorer(self.cfg["clip-image"], device="cpu")


class TestDinoContract(TestClipImageContract):
    def make_stage(self):
        from ecomforge_scorers.scorers import DinoScorer

        return DinoScorer(self.cfg["dino"], device="cpu")


class TestLpipsContract(TestClipImageContract):
    def make_stage(self):
        from ecomforge_scorers.scorers import LpipsScorer

        return LpipsScorer(self.cfg["lpips"], device="cpu")


class TestClipTextContract(TestClipImageContract):
    # CLIP-T rates the whole image against the prompt: with the tiny random-weight model the reference and the
    # noise image score alike (both calibrate to 0), so strict separation is not a property it can show here.
    separates = False

    def make_stage(self):
        from ecomforge_scorers.scorers import ClipTextScorer

        return ClipTextScorer(self.cfg["clip-text"], device="cpu")


@st.composite
def image_and_mask(draw, min_side=8, max_side=80):
    """A random RGB image (noise, flat or gradient) and a random box mask, possibly empty."""
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["noise", "flat", "gradient"]))
    if kind == "noise":
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == "flat":
        img = np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)
    else:
        img = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None].repeat(h, 0).repeat(3, 2)
    mask = np.zeros((h, w), np.uint8)
    if draw(st.booleans()):
        x0, y0 = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
        mask[y0:draw(st.integers(y0 + 1, h)), x0:draw(st.integers(x0 + 1, w))] = 255
    return img, mask


@pytest.mark.parametrize("name", SCORERS)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=image_and_mask(), b=image_and_mask())
def test_scores_in_unit_interval_and_self_is_best(make_scorer, name, a, b):
    """Any valid image scores in [0,1] and finite; the reference itself scores the maximum, >= another image."""
    scorer = make_scorer(name)
    (img_a, mask_a), (img_b, mask_b) = a, b
    ctx = ScoringContext((Reference(img_a, "a", ""),), (Mask(mask_a),), "a photo of a product")
    self_cand = Candidate(img_a.copy(), 0, {}, mask=mask_a.copy())
    scores = scorer.score([self_cand, Candidate(img_b, 1, {}, mask=mask_b)], ctx)
    assert len(scores) == 2 and all(np.isfinite(s) and 0.0 <= s <= 1.0 for s in scores)
    if name != "clip-text":  # CLIP-T compares with the prompt, not with the reference
        assert scores[0] == 1.0 and scores[0] >= scores[1]


@pytest.mark.parametrize("name", IMAGE_SCORERS)
def test_reference_embeddings_are_cached_across_calls(make_scorer, name):
    """The second call on the same references runs the encoder on the candidates only."""
    from ecomforge_scorers.embedding import EMBEDDINGS

    scorer = make_scorer(name)
    refs = [make_reference(96, 64, seed=s) for s in (0, 1, 2)]
    ctx = ScoringContext(tuple(r for r, _ in refs), tuple(m for _, m in refs), "p")
    cands = [Candidate(make_reference(96, 64, seed=7)[0].image, 0, {})]
    encoded = []
    original = scorer.features if name == "lpips" else None
    scorer.ensure_setup()
    if name == "lpips":
        scorer.features = lambda images, masks: encoded.append(len(images)) or original(images, masks)
    else:
        inner = scorer.embedder.encode_images
        scorer.embedder = type("Counting", (), {"model_id": scorer.embedder.model_id, "encode_images":
                                staticmethod(lambda ims, bs=None: encoded.append(len(ims)) or inner(ims, bs))})()
    first = scorer.score(cands, ctx)
    assert encoded == [3, 1] and EMBEDDINGS.misses == 3
    again = scorer.score(cands, ctx)
    assert encoded == [3, 1, 1] and EMBEDDINGS.hits == 3
    assert again == first
    other = make_scorer(name)  # another instance shares the process-wide cache
    other.score(cands, ctx)
    assert EMBEDDINGS.hits == 6


@pytest.mark.parametrize("name", SCORERS)
def test_batched_equals_one_at_a_time(make_scorer, name):
    """batch_size 8 and batch_size 1 give the same scores (within float noise)."""
    ref, mask = make_reference(96, 64, seed=0)
    ctx = ScoringContext((ref,), (mask,), "a red and blue product")
    rng = np.random.default_rng(0)
    cands = [Candidate(make_reference(96, 64, seed=s)[0].image, s, {}, mask=mask.data) for s in range(5)]
    cands.append(Candidate(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8), 9, {}))
    batched = make_scorer(name, batch_size=8).score(cands, ctx)
    single = make_scorer(name, batch_size=1).score(cands, ctx)
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_counters_show_batching(make_scorer):
    """Six candidates at batch_size 4 take two forward passes (the embedder really batches)."""
    scorer = make_scorer("clip-image", batch_size=4)
    scorer.ensure_setup()
    ref, mask = make_reference(seed=0)
    before = scorer.embedder.image_batches
    scorer.score([Candidate(ref.image, i, {}) for i in range(6)], ScoringContext((ref,), (mask,)))
    assert scorer.embedder.image_batches - before == 1 + 2  # one for the reference, two for the candidates


@pytest.mark.parametrize("name", SCORERS)
def test_failed_candidates_score_zero(make_scorer, name):
    """A candidate the generator marked failed scores 0 without reaching the model."""
    ref, mask = make_reference()
    extra = {"low": -1.0} if name == "clip-text" else {}  # random CLIP-T cosines sit below the default low
    out = make_scorer(name, **extra).score([Candidate(ref.image, 0, {}, failed="NaN output"), Candidate(ref.image, 1, {})],
                                  ScoringContext((ref,), (mask,), "x"))
    assert out[0] == 0.0 and out[1] > 0.0


@pytest.mark.parametrize("name", SCORERS)
def test_low_scores_say_why(make_scorer, name):
    """A low score names what the model measured and the calibration it fell short of; a high one says nothing,
    and a failed candidate says it failed."""
    ref, mask = make_reference(96, 64, seed=0)
    ctx = ScoringContext((ref,), (mask,), "a red and blue product")
    noise = np.random.default_rng(3).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    strict = {"max_distance": 1e-4} if name == "lpips" else {"low": 0.999, "high": 1.0}
    lenient = {"max_distance": 10.0} if name == "lpips" else {"low": -1.0, "high": -0.999}
    cands = [Candidate(noise, 0, {}, mask=mask.data), Candidate(noise, 1, {}, failed="NaN output")]
    low, failed = make_scorer(name, **strict).score(cands, ctx)
    assert low == 0.0 and ("LPIPS distance" if name == "lpips" else "cosine") in low.reason
    assert failed == 0.0 and "failed" in failed.reason
    high = make_scorer(name, **lenient).score(cands[:1], ctx)[0]
    assert high > 0.5 and high.reason == ""


def test_masks_focus_on_the_product(make_scorer):
    """With masks, a new background barely matters; without them it does (product region is what counts)."""
    ref, mask = make_reference(96, 64, seed=0)
    noisy_bg = np.random.default_rng(1).integers(0, 256, ref.image.shape, dtype=np.uint8)
    moved = np.where(mask.data[:, :, None] > 0, ref.image, noisy_bg).astype(np.uint8)
    ctx = ScoringContext((ref,), (mask,))
    cand = [Candidate(moved, 0, {}, mask=mask.data)]
    masked = make_scorer("lpips").score(cand, ctx)[0]
    whole = make_scorer("lpips", use_masks=False).score(cand, ctx)[0]
    assert masked == 1.0 and whole < masked


def test_mean_and_max_reduce(make_scorer):
    """reduce=max takes the best reference, reduce=mean averages them."""
    a, ma = make_reference(seed=0)
    b, mb = make_reference(seed=4)
    ctx = ScoringContext((a, b), (ma, mb))
    cand = [Candidate(a.image, 0, {}, mask=ma.data)]
    best = make_scorer("clip-image", low=-1.0).score(cand, ctx)[0]
    mean = make_scorer("clip-image", low=-1.0).__class__({"model": make_scorer("clip-image").config.model,
                                                          "low": -1.0, "reduce": "mean"}, device="cpu").score(cand, ctx)[0]
    assert best == 1.0 and mean < best


def test_config_errors_are_recipe_errors(make_scorer):
    """Unknown keys and low >= high are rejected with the key path."""
    from ecomforge_scorers.scorers import ClipImageScorer, LpipsScorer

    with pytest.raises(RecipeError) as info:
        ClipImageScorer({"batchsize": 2})
    assert info.value.one_line() == "config.batchsize: unknown key (did you mean 'batch_size'?)"
    with pytest.raises(RecipeError, match="low .* must be below high"):
        ClipImageScorer({"low": 0.9, "high": 0.5})
    with pytest.raises(RecipeError, match="config.size"):
        LpipsScorer({"size": 8})


def test_clip_text_needs_a_prompt_and_prefers_config_prompt(make_scorer):
    """No prompt anywhere is an InputError; config.prompt overrides the recipe's prompt."""
    ref, mask = make_reference()
    cand = [Candidate(ref.image, 0, {})]
    with pytest.raises(InputError, match="clip-text needs a prompt"):
        make_scorer("clip-text").score(cand, ScoringContext((ref,), (mask,), ""))
    s1 = make_scorer("clip-text", prompt="a cat", low=-1.0, high=1.0).score(cand, ScoringContext((ref,), (mask,), "x"))
    s2 = make_scorer("clip-text", low=-1.0, high=1.0).score(cand, ScoringContext((ref,), (mask,), "a cat"))
    assert s1 == s2


def test_identity_names_the_model(make_scorer, scorer_configs):
    """identity() gives the resolved model id for the manifest, and flags LPIPS's random trunk."""
    from pathlib import Path

    assert make_scorer("clip-image").identity() == {"clip-image": str(Path(scorer_configs["clip-image"]["model"]).resolve())}
    assert "random" in make_scorer("lpips").identity()["lpips"]
