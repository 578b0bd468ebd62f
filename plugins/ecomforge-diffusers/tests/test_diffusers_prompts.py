"""Long prompts are chunked, A1111 weights are honoured (or rejected), never passed through as text."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecomforge.errors import RecipeError
from ecomforge_diffusers.generators import SdInpaintGenerator
from ecomforge_diffusers.prompts import encode_chunks, parse_weights

from diffusers_testutil import FAST, request_for


@pytest.fixture
def gen(tiny_sd_inpaint):
    return SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST}, device="cpu")


def test_parse_weights_a1111_syntax():
    """(a:1.3) sets, (a) multiplies by 1.1, [a] divides by 1.1, nesting multiplies, escapes are text."""
    assert parse_weights("a (red:1.5) shoe") == [("a ", 1.0), ("red", 1.5), (" shoe", 1.0)]
    assert parse_weights("((b))") == [("b", pytest.approx(1.21))]
    assert parse_weights("[c]") == [("c", pytest.approx(1 / 1.1))]
    assert parse_weights(r"\(d\)") == [("(d)", 1.0)]
    assert parse_weights("x:y") == [("x:y", 1.0)]


@given(st.text(alphabet=st.characters(blacklist_characters="()[]\\:"), max_size=60))
def test_parse_weights_plain_text_is_unchanged(text):
    """Text without emphasis syntax comes back as one run of weight 1."""
    runs = parse_weights(text)
    assert "".join(t for t, _ in runs) == text and all(w == 1.0 for _, w in runs)


@given(st.text(alphabet="ab ():[]1.5\\", max_size=40))
def test_parse_weights_never_crashes_and_keeps_letters(text):
    """Any bracket soup parses; the letters survive in order and weights are positive."""
    runs = parse_weights(text)
    letters = [c for c in text if c in "ab"]
    assert [c for t, _ in runs for c in t if c in "ab"] == letters
    assert all(w > 0 for _, w in runs)


def test_short_prompt_embeddings_equal_the_pipelines_own(gen):
    """For ≤ 75 tokens without weights our encoding is exactly diffusers' encode_prompt."""
    pipe = gen._pipeline(gen.config).pipe
    ours, neg, info = encode_chunks(pipe, "a red shoe", "blurry", weighting=True, device=pipe.device)
    theirs, their_neg = pipe.encode_prompt("a red shoe", pipe.device, 1, True, "blurry")
    assert info["prompt_chunks"] == 1
    assert np.array_equal(ours.numpy(), theirs.detach().numpy())
    assert np.array_equal(neg.numpy(), their_neg.detach().numpy())


def test_long_prompt_is_chunked_and_matters(gen):
    """A 150-token prompt gives two chunks and a different image from its 75-token truncation."""
    long = "a studio photo of a shoe " * 6  # the tiny tokenizer has one token per character
    pipe = gen._pipeline(gen.config).pipe
    pos, neg, info = encode_chunks(pipe, long, "", weighting=True, device=pipe.device)
    assert info["prompt_chunks"] == 2 and pos.shape == neg.shape and pos.shape[1] == 154
    full = gen.generate(request_for(gen, seeds=(1,), prompt=long))[0]
    cut = gen.generate(request_for(gen, seeds=(1,), prompt=long[:75]))[0]
    assert full.info["prompt_chunks"] == 2 and cut.info["prompt_chunks"] == 1
    assert not np.array_equal(full.image, cut.image)


def test_weights_are_honoured_not_passed_as_text(gen):
    """'(red:1.6) shoe' differs from 'red shoe' and from the literal text with brackets."""
    weighted = gen.generate(request_for(gen, seeds=(1,), prompt="(red:1.6) shoe"))[0]
    plain = gen.generate(request_for(gen, seeds=(1,), prompt="red shoe"))[0]
    literal = gen.generate(request_for(gen, seeds=(1,), prompt=r"\(red:1.6\) shoe"))[0]
    assert not np.array_equal(weighted.image, plain.image)
    assert not np.array_equal(weighted.image, literal.image)


def test_weights_rejected_when_weighting_is_off(gen):
    """prompt_weighting: false turns emphasis syntax into a clear RecipeError naming the prompt."""
    with pytest.raises(RecipeError, match=r"inputs\.negative_prompt: uses AUTOMATIC1111 weights"):
        gen.generate(request_for(gen, seeds=(1,), negative="(ugly:1.4)", prompt_weighting=False))
