"""The classic masker's confidence on real photos: it separates right masks from wrong ones, and refuses the wrong.

The labels (tests/data/classic_mask_labels.json) were made by looking at every mask drawn over its photo.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.analysis.stats import auroc
from ecomforge.errors import NothingFound
from ecomforge.types import GenerationRequest, Reference
from ecomforge_classic.acquire import LocalAcquirer
from ecomforge_classic.composite import CompositeGenerator
from ecomforge_classic.mask_quality import MaskCues, confidence, measure
from ecomforge_classic.maskers import ClassicMasker

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parents[2] / "samples" / "dreambench"
LABELS = json.loads((HERE / "data" / "classic_mask_labels.json").read_text())
DEFAULT_MIN = ClassicMasker.Config().min_score


def _score(rel: str, config: dict) -> float | None:
    """The mask's score with the refusal switched off, or None when no region was found at all."""
    (reference,) = LocalAcquirer().acquire([str(SAMPLES / rel)], product="p", base_dir=SAMPLES)
    try:
        return ClassicMasker({**config, "min_score": 0.0}).mask(reference).score
    except NothingFound:
        return None


@pytest.fixture(scope="module")
def outcomes() -> dict[str, tuple[str, float | None]]:
    """Label and score of every labelled mask (default config and variants); each photo is masked once."""
    out = {rel: (row["label"], _score(rel, LABELS["config"])) for rel, row in LABELS["photos"].items()}
    for name, variant in LABELS["variants"].items():
        for rel, row in variant["photos"].items():
            out[f"{rel}#{name}"] = (row["label"], _score(rel, variant["config"]))
    return out


def test_every_sample_photo_is_labelled():
    on_disk = {f"{p.parent.name}/{p.name}" for p in SAMPLES.glob("*/*.jpg")}
    assert on_disk == set(LABELS["photos"])
    assert all(row["label"] in {"right", "wrong", "none"} and row["note"] for row in LABELS["photos"].values())


def test_none_labelled_photos_find_nothing(outcomes):
    assert all(score is None for label, score in outcomes.values() if label == "none")
    assert all(score is not None for label, score in outcomes.values() if label != "none")


def test_score_separates_right_from_wrong(outcomes):
    right = [s for label, s in outcomes.values() if label == "right"]
    wrong = [s for label, s in outcomes.values() if label == "wrong"]
    assert len(right) >= 5 and len(wrong) >= 30
    assert auroc(right, wrong) >= 0.9


def test_default_min_score_refuses_most_wrong_masks_and_keeps_the_right(outcomes):
    right = {k: s for k, (label, s) in outcomes.items() if label == "right"}
    wrong = {k: s for k, (label, s) in outcomes.items() if label == "wrong"}
    assert all(s >= DEFAULT_MIN for s in right.values()), right
    assert sum(s < DEFAULT_MIN for s in wrong.values()) >= 0.85 * len(wrong)


def test_refusal_names_photo_score_reason_and_alternative():
    (reference,) = LocalAcquirer().acquire([str(SAMPLES / "rc_car/03.jpg")], product="p", base_dir=SAMPLES)
    assert ClassicMasker({"min_score": 0.0}).mask(reference).data.any()  # it would have guessed
    with pytest.raises(NothingFound, match=rf"rc_car/03.jpg: no confident product mask \(score 0.\d+ < min_score "
                                           rf"{DEFAULT_MIN:g}: the mask touches \d+% of the image frame.*try sam-clip"):
        ClassicMasker().mask(reference)


STUDIO = ["#ffffff", "#d9dde3", "linear:#f6f2ea:#cfc6b8", "radial:#ffffff:#b9c2cc"]


@pytest.mark.parametrize("rel", ["duck_toy/02.jpg", "vase/02.jpg", "can/00.jpg"])
def test_studio_composites_are_trusted(rel):
    """The tool's home ground: real products cut out and shot again on plain and graded backdrops."""
    (reference,) = LocalAcquirer().acquire([str(SAMPLES / rel)], product="p", base_dir=SAMPLES)
    mask = ClassicMasker().mask(reference)
    gen = CompositeGenerator()
    scores = []
    for background in STUDIO:
        cfg = gen.parse_config({"background": background, "size": [384, 320], "shadow": 0.25})
        (shot,) = gen.generate(GenerationRequest(reference, mask, "p", "", cfg, (1,)))
        again = ClassicMasker().mask(Reference(image=shot.image, source="studio.png", sha256="0" * 64, product="p",
                                               name="00"))  # refuses (raises) if it does not trust the mask
        truth = shot.mask > 0
        assert np.count_nonzero((again.data > 0) & truth) / np.count_nonzero((again.data > 0) | truth) > 0.9
        scores.append(again.score)
    assert np.mean(scores) >= 0.8, scores


# --- the score as a function of its cues ------------------------------------------------------------

CLEAN = MaskCues(border=0.0, noise=2.0, separation=10.0, clutter=0.0, solidity=0.9, area=0.2, parts=1, edge=1.0,
                 roughness=1.2)


def test_clean_cues_score_one_and_say_so():
    assert confidence(CLEAN) == (1.0, "clean outline on a plain background")


@settings(max_examples=60, deadline=None)
@given(border=st.floats(0, 1), clutter=st.floats(0, 1), separation=st.floats(0, 50), edge=st.floats(0, 1),
       solidity=st.floats(0, 1), roughness=st.floats(1, 10), parts=st.integers(1, 5), worse=st.floats(0, 0.5))
def test_confidence_range_and_monotone(border, clutter, separation, edge, solidity, roughness, parts, worse):
    cues = MaskCues(border=border, noise=3.0, separation=separation, clutter=clutter, solidity=solidity, area=0.2,
                    parts=parts, edge=edge, roughness=roughness)
    score, why = confidence(cues)
    assert 0.0 <= score <= 1.0 and why
    # Any cue made worse never raises the score.
    for change in ({"border": min(1, border + worse)}, {"clutter": min(1, clutter + worse)},
                   {"edge": max(0, edge - worse)}, {"solidity": max(0, solidity - worse)},
                   {"separation": max(0, separation - 10 * worse)}, {"roughness": roughness + 4 * worse},
                   {"parts": parts + 1}, {"gap": min(1, cues.gap + worse)}):
        assert confidence(dataclasses.replace(cues, **change))[0] <= score + 1e-12


@settings(max_examples=30, deadline=None)
@given(cx=st.integers(30, 70), cy=st.integers(30, 70), r=st.integers(8, 25))
def test_measure_on_a_disc_on_a_plain_background(cx, cy, r):
    ys, xs = np.mgrid[0:100, 0:100]
    disc = (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
    rgb = np.full((100, 100, 3), 235, np.uint8)
    rgb[disc] = (40, 90, 200)
    distance = np.where(disc, 60.0, 1.0)
    cues = measure(rgb, np.where(disc, 255, 0).astype(np.uint8), distance, noise=1.0)
    assert cues.border == 0.0 and cues.parts == 1 and cues.clutter == 0.0
    assert cues.solidity > 0.9 and cues.edge > 0.95 and cues.roughness < 1.2 and cues.gap < 0.02
    assert abs(cues.area - disc.mean()) < 1e-9
    assert confidence(cues)[0] == 1.0


@settings(max_examples=20, deadline=None)
@given(cx=st.integers(35, 65), r=st.integers(14, 24), cloth=st.tuples(*[st.integers(60, 200)] * 3),
       seed=st.integers(0, 100))
def test_a_mask_that_took_in_the_cloth_under_the_product_has_an_outline_gap(cx, r, cloth, seed):
    """A product standing on a cloth, the mask taking the cloth's middle with it: where the mask's outline crosses
    the cloth, both sides are the same cloth, so a stretch of outline has nothing behind it; the score says so."""
    ys, xs = np.mgrid[0:100, 0:100]
    disc = (xs - cx) ** 2 + (ys - 40) ** 2 <= r * r
    rgb = np.full((100, 100, 3), 235, np.uint8)
    band = ys >= 40 + r - 4  # the cloth runs under the product to the bottom of the frame
    grain = np.random.default_rng(seed).normal(0, 3, (100, 100, 1))
    rgb[band] = np.clip(np.array(cloth) + grain, 0, 255).astype(np.uint8)[band]
    rgb[disc] = (40, 90, 200)
    taken = disc | (band & (np.abs(xs - cx) <= r + 8) & (ys < 40 + r + 14))  # and took a piece of the cloth
    mask = np.where(taken, 255, 0).astype(np.uint8)
    cues = measure(rgb, mask, np.where(taken, 60.0, 1.0), noise=1.0)
    assert cues.gap > 0.13
    assert confidence(cues)[0] == 0.0
    assert "unbroken surface" in confidence(dataclasses.replace(cues, edge=1.0))[1]  # the reason, where it is the one
    clean = measure(rgb, np.where(disc, 255, 0).astype(np.uint8), np.where(disc, 60.0, 1.0), noise=1.0)
    assert clean.gap < cues.gap


@pytest.mark.parametrize("rel", ["clock/03.jpg", "clock/05.jpg"])
def test_the_clock_with_the_cloth_it_stands_on_is_refused(rel):
    """Both clock photos on a plain backdrop stand on a fold of cloth that the mask takes with the clock (labelled
    wrong): the masker refuses, naming the outline that runs through the cloth, instead of a confident cut-out."""
    (reference,) = LocalAcquirer().acquire([str(SAMPLES / rel)], product="p", base_dir=SAMPLES)
    with pytest.raises(NothingFound, match=r"no confident product mask .*of the outline runs through one unbroken "
                                           r"surface.*try sam-clip"):
        ClassicMasker().mask(reference)
