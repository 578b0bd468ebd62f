"""The offline identity scorers on real photos: another shot of the product scores high, damage and other products low."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ecomforge.testing import ScorerContract, make_reference
from ecomforge.types import Candidate, ScoringContext
from ecomforge_classic.acquire import LocalAcquirer
from ecomforge_classic.color import ColorScorer
from ecomforge_classic.keypoints import KeypointsScorer
from ecomforge_classic.maskers import ClassicMasker
from ecomforge_classic.parts import PartsScorer, edgeless_run
from ecomforge_classic.relative import RelativeScorer
from ecomforge_classic.shape import ShapeScorer, concave_turning, silhouette, straight_edges, symmetry
from ecomforge_classic.texture import TextureScorer

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "dreambench"
SCORERS = (ColorScorer, KeypointsScorer, PartsScorer, ShapeScorer, TextureScorer)


class TestColorContract(ScorerContract):
    def make_stage(self):
        return ColorScorer()


class TestKeypointsContract(ScorerContract):
    def make_stage(self):
        return KeypointsScorer()


class TestShapeContract(ScorerContract):
    def make_stage(self):
        return ShapeScorer()


class TestPartsContract(ScorerContract):
    def make_stage(self):
        return PartsScorer()


class TestTextureContract(ScorerContract):
    def make_stage(self):
        return TextureScorer()


def _photo(name):
    """A real photo at a third of its size (fast), with the classic mask taken even where its confidence is low: the
    clock photos' masks take the fold of cloth it stands on, the same in every photo, which these tests accept."""
    (ref,) = LocalAcquirer().acquire([str(SAMPLES / name)], product=name.split("/")[0], base_dir=SAMPLES)
    small = cv2.resize(ref.image, (ref.image.shape[1] // 3, ref.image.shape[0] // 3), interpolation=cv2.INTER_AREA)
    ref = dataclasses.replace(ref, image=small, sha256=ref.sha256 + "-third")  # a third of the size keeps tests fast
    return ref, ClassicMasker({"min_score": 0.0}).mask(ref)


@pytest.fixture(scope="module")
def clock():
    """Two real photos of the same clock on plain backgrounds: one the reference, one a re-shoot."""
    return _photo("clock/03.jpg"), _photo("clock/05.jpg")


@pytest.fixture(scope="module")
def vase():
    """A photo of another product (the vase), on a plain background."""
    return _photo("vase/02.jpg")


def _score(scorer, image, mask, refs):
    ctx = ScoringContext(tuple(r for r, _ in refs), tuple(m for _, m in refs))
    return float(scorer.score([Candidate(image, 0, {}, mask=mask)], ctx)[0])


def _box(mask):
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def hue_shift(img, mask, severity):
    """The product's hue turned by up to 90 degrees."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL).astype(int)
    hsv[..., 0] = (hsv[..., 0] + int(64 * severity)) % 256
    out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)
    return np.where(mask[..., None] > 0, out, img), mask


def blur(img, mask, severity):
    """The product's print blurred, sigma up to 4 % of its size."""
    x0, y0, x1, y1 = _box(mask)
    sigma = max(0.1, 0.04 * severity * max(x1 - x0, y1 - y0))
    return np.where(mask[..., None] > 0, cv2.GaussianBlur(img, (0, 0), sigma), img), mask


def squash(img, mask, severity):
    """The product (pixels and mask) squashed vertically to as little as 45 % of its height."""
    x0, y0, x1, y1 = _box(mask)
    f = 1 - 0.55 * severity
    h = max(2, round((y1 - y0) * f))
    out, m = np.full_like(img, 240), np.zeros_like(mask)
    out[y1 - h:y1, x0:x1] = cv2.resize(img[y0:y1, x0:x1], (x1 - x0, h), interpolation=cv2.INTER_AREA)
    m[y1 - h:y1, x0:x1] = cv2.resize(mask[y0:y1, x0:x1], (x1 - x0, h), interpolation=cv2.INTER_NEAREST)
    return np.where(m[..., None] > 0, out, img), m


def foreign_patch(img, mask, severity):
    """A square of foreign colour stripes (magenta/green), up to half the product's box per side, on the product."""
    x0, y0, x1, y1 = _box(mask)
    side = max(2, int(0.5 * severity * min(x1 - x0, y1 - y0)))
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    out = img.copy()
    stripes = np.where((np.arange(side) // 4 % 2)[:, None, None] == 0, (230, 20, 200), (20, 200, 60)).astype(np.uint8)
    out[cy - side // 2:cy - side // 2 + side, cx - side // 2:cx - side // 2 + side] = np.broadcast_to(stripes, (side, side, 3))
    return np.where(mask[..., None] > 0, out, img), mask


FAILURE_OF = {ColorScorer: hue_shift, KeypointsScorer: blur, PartsScorer: foreign_patch, ShapeScorer: squash,
              TextureScorer: blur}


@pytest.mark.parametrize("cls", SCORERS, ids=lambda c: c.name)
def test_reference_against_itself_gets_the_maximum(cls, clock):
    """A reference among the references scores 1 (its self-similarity is the best there is)."""
    (ref, m), second = clock
    assert _score(cls(), ref.image, m.data, [(ref, m), second]) == pytest.approx(1.0)


@pytest.mark.parametrize("cls", SCORERS, ids=lambda c: c.name)
def test_a_real_reshoot_outscores_its_damaged_version(cls, clock):
    """Another real photo of the clock keeps a high score; the same photo with the scorer's failure loses it."""
    (ref, m), (shot, sm) = clock
    reshoot = _score(cls(), shot.image, sm.data, [(ref, m)])
    damaged = _score(cls(), *FAILURE_OF[cls](shot.image, sm.data, 1.0), [(ref, m)])
    assert reshoot > 0.45  # one reference: the default baseline stands in for the references' agreement
    assert damaged < reshoot - 0.3


@pytest.mark.parametrize("cls", (ColorScorer, ShapeScorer, TextureScorer), ids=lambda c: c.name)
def test_another_product_scores_below_a_reshoot(cls, clock, vase):
    """The vase against the clock's photo scores well below the clock's re-shoot."""
    (ref, m), (shot, sm) = clock
    other, om = vase
    assert _score(cls(), other.image, om.data, [(ref, m)]) < _score(cls(), shot.image, sm.data, [(ref, m)]) - 0.3


def test_a_low_score_says_why(clock):
    """A recoloured product gets a reason naming what differs, a re-shoot none."""
    (ref, m), (shot, sm) = clock
    ctx = ScoringContext((ref,), (m,))
    low, high = ColorScorer().score([Candidate(*hue_shift(shot.image, sm.data, 1.0), 0, {}, mask=sm.data),
                                     Candidate(shot.image, 0, {}, mask=sm.data)], ctx)
    assert "colours" in low.reason and high.reason == ""


@settings(max_examples=8, deadline=None)
@given(cls=st.sampled_from(SCORERS), low=st.floats(0.0, 0.6), step=st.floats(0.3, 0.6))
def test_scores_fall_as_the_failure_grows(clock, cls, low, step):
    """Monotone in the failure's size: a larger hue turn / blur / squash never scores higher (within noise).

    The damaged photo is itself among the references: against another view alone, squashing can make a
    shape *more* like that view, which says nothing about the scorer.
    """
    (ref, m), (shot, sm) = clock
    fail, scorer = FAILURE_OF[cls], cls()
    refs = [(shot, sm), (ref, m)]
    small = _score(scorer, *fail(shot.image, sm.data, low), refs)
    large = _score(scorer, *fail(shot.image, sm.data, min(1.0, low + step)), refs)
    assert large <= small + 0.05


@settings(max_examples=15, deadline=None)
@given(img=arrays(np.uint8, (40, 56, 3)), mask_bits=arrays(np.bool_, (40, 56)), cls=st.sampled_from(SCORERS))
def test_scores_bounded_and_finite_for_any_image(img, mask_bits, cls):
    """Any pixels and any mask (empty, speckled, full) give a finite score in [0, 1]."""
    ref, m = make_reference(56, 40)
    v = _score(cls(), img, np.where(mask_bits, 255, 0).astype(np.uint8), [(ref, m)])
    assert np.isfinite(v) and 0.0 <= v <= 1.0


@settings(max_examples=40, deadline=None)
@given(raw=st.floats(-10, 100), baseline=st.floats(-1, 100), floor=st.floats(0, 50))
def test_relative_calibration(raw, baseline, floor):
    """The map is in [0, 1], 1 at or above the references' baseline, and monotone in the raw similarity."""
    s = KeypointsScorer({"floor": floor})
    v = RelativeScorer.calibrate(s, raw, baseline)
    assert 0.0 <= v <= 1.0
    if raw >= baseline:
        assert v == 1.0
    assert RelativeScorer.calibrate(s, raw + 1, baseline) >= v


def test_silhouette_sees_a_squash_and_ignores_a_turn():
    """Turning a mask leaves its descriptors nearly unchanged; squashing it moves the elongation."""
    mask = np.zeros((120, 120), np.uint8)
    cv2.ellipse(mask, (60, 60), (40, 20), 0, 0, 360, 255, -1)
    turned = cv2.warpAffine(mask, cv2.getRotationMatrix2D((60, 60), 40, 1.0), (120, 120), flags=cv2.INTER_NEAREST)
    squashed = cv2.resize(mask, (120, 60), interpolation=cv2.INTER_NEAREST)
    base = silhouette(mask)
    assert np.abs(silhouette(turned) - base).max() < 0.1
    assert abs(silhouette(squashed)[0] - base[0]) > 0.5


def test_parts_names_the_foreign_region(clock):
    """A foreign patch is found as one region and named; the re-shoot has no such region."""
    (ref, m), (shot, sm) = clock
    ctx = ScoringContext((ref,), (m,))
    low, high = PartsScorer().score([Candidate(*foreign_patch(shot.image, sm.data, 1.0), 0, {}, mask=sm.data),
                                     Candidate(shot.image, 0, {}, mask=sm.data)], ctx)
    assert low < 0.5 < high and "no reference shows" in low.reason and high.reason == ""


def _references(pairs, tag: str) -> list:
    """(Reference, Mask) pairs made from (image, mask) arrays, each with its own hash."""
    refs = []
    for i, (image, mask) in enumerate(pairs):
        ref, m = make_reference(*mask.shape[::-1])
        refs.append((dataclasses.replace(ref, image=image, sha256=f"{tag}{i}"), dataclasses.replace(m, data=mask)))
    return refs


def _printed_box(shift: int) -> tuple[np.ndarray, np.ndarray]:
    """A product printed with fine red/blue checks on a grainy grey floor (a re-shoot: the box moved by ``shift``)."""
    rng = np.random.default_rng(shift)
    image = np.clip(rng.normal(120, 12, (160, 160, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((160, 160), np.uint8)
    x0, y0 = 40 + shift, 30
    yy, xx = np.mgrid[0:90, 0:70]
    checks = np.where(((yy // 4 + xx // 4) % 2)[:, :, None] == 0, (200, 40, 40), (40, 60, 200)).astype(np.uint8)
    image[y0:y0 + 90, x0:x0 + 70] = checks
    mask[y0:y0 + 90, x0:x0 + 70] = 255
    return image, mask


def test_parts_sees_a_part_replaced_by_a_smear():
    """A third of a printed product inpainted from its surroundings (mask unchanged) loses the parts score."""
    refs = _references([_printed_box(shift) for shift in (0, 8)], "box")
    image, mask = _printed_box(4)
    hole = np.zeros_like(mask)
    hole[30:120, 44:67] = 255
    smeared = cv2.inpaint(image, hole, 5, cv2.INPAINT_TELEA)
    intact = _score(PartsScorer(), image, mask, refs)
    assert intact > 0.9
    assert _score(PartsScorer(), smeared, mask, refs) < intact - 0.3


def _disc_on_floor(colour: tuple[int, int, int], grain: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A plain disc of ``colour`` on a grainy grey floor, as Lab, and its mask."""
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(110, grain, (160, 160, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((160, 160), np.uint8)
    cv2.circle(mask, (80, 80), 55, 255, -1)
    image[mask > 0] = colour
    return image, mask


@settings(max_examples=15, deadline=None)
@given(colour=st.tuples(*[st.integers(170, 255)] * 3), grain=st.floats(0, 6), cut=st.floats(0.15, 0.45),
       seed=st.integers(0, 1000))
def test_an_outline_with_nothing_behind_it_is_an_edgeless_run(colour, grain, cut, seed):
    """A whole product's outline sits on an edge; paint the grainy floor over a side of it and that stretch shows none.

    The run grows with the part removed, and a product cut by the frame is not counted as missing there.
    """
    image, mask = _disc_on_floor(colour, grain, seed)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    assert edgeless_run(lab, mask, 6.0) < 0.03
    runs = []
    for share in (cut, cut + 0.15):
        missing = image.copy()
        x = int(25 + 110 * (1 - share))  # the disc spans x 25..135: remove its right ``share``
        missing[:, x:] = np.clip(np.random.default_rng(seed).normal(110, grain, missing[:, x:].shape), 0, 255)
        runs.append(edgeless_run(cv2.cvtColor(missing, cv2.COLOR_RGB2LAB), mask, 6.0))
    assert runs[0] > 0.15 and runs[1] > runs[0]
    framed_lab, framed_mask = lab[:, :100], mask[:, :100]  # the frame cuts the disc at x = 100
    assert edgeless_run(np.ascontiguousarray(framed_lab), np.ascontiguousarray(framed_mask), 6.0) < 0.03


def test_parts_sees_a_missing_part_by_its_outline_where_colours_cannot():
    """A grey product on a grey floor loses a side to the floor: no colour is new, but its outline ends in nothing."""
    refs = _references([_disc_on_floor((120, 118, 112), 3.0, seed) for seed in (1, 2)], "disc")
    image, mask = _disc_on_floor((120, 118, 112), 3.0, 3)
    missing = image.copy()
    missing[:, 100:] = np.clip(np.random.default_rng(9).normal(110, 3.0, missing[:, 100:].shape), 0, 255)
    ctx = ScoringContext(tuple(r for r, _ in refs), tuple(m for _, m in refs))
    assert _score(PartsScorer(), missing, mask, refs) < 0.5  # (the floor's grain is foreign detail too)
    outline_only = PartsScorer({"busy_share": 0})
    intact, broken = outline_only.score([Candidate(image, 0, {}, mask=mask), Candidate(missing, 0, {}, mask=mask)], ctx)
    assert intact.value > 0.9 and broken.value < 0.5 and "outline" in broken.reason
    assert _score(PartsScorer({"edge_contrast": 0, "busy_share": 0}), missing, mask, refs) > 0.9  # colours alone miss it


@settings(max_examples=8, deadline=None)
@given(sigma=st.floats(25, 60), seed=st.integers(0, 1000))
def test_parts_sees_a_foreign_texture_in_the_products_own_colours(sigma, seed):
    """Gravel-like grain over a third of a smooth product, in its own greys: no colour is new, the detail is."""
    refs = _references([_disc_on_floor((150, 150, 150), 3.0, s) for s in (1, 2)], "grey")
    image, mask = _disc_on_floor((150, 150, 150), 3.0, 3)
    rng = np.random.default_rng(seed)
    grain = cv2.GaussianBlur(rng.normal(0, sigma, (160, 160)).astype(np.float32), (0, 0), 0.7)
    patched = image.astype(np.float32)
    patched[40:120, 45:85] += grain[40:120, 45:85, None]  # inside the disc, the same grey on average
    patched = np.clip(patched, 0, 255).astype(np.uint8)
    assert _score(PartsScorer(), image, mask, refs) > 0.9
    assert _score(PartsScorer(), patched, mask, refs) < 0.5
    assert _score(PartsScorer({"busy_share": 0, "support_level": 1e-6}), patched, mask, refs) > 0.9  # detail alone


def _wavy(amplitude: float, size: int = 200) -> np.ndarray:
    """A disc whose radius swings by ``amplitude`` (a share of it) five times round."""
    t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    r = 60 * (1 + amplitude * np.sin(5 * t))
    pts = np.stack([size / 2 + r * np.cos(t), size / 2 + r * np.sin(t)], axis=1).astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [pts], 255)
    return mask


@settings(max_examples=12, deadline=None)
@given(a=st.floats(0.0, 0.2), b=st.floats(0.02, 0.1), angle=st.floats(0, 360), scale=st.floats(0.5, 2.0))
def test_concave_turning_grows_with_bends_and_ignores_turns_and_size(a, b, angle, scale):
    """A convex outline turns inward by ~0 at any size; deeper waves never turn inward less; a turn changes little."""
    contour = lambda m: max(cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0], key=cv2.contourArea)
    disc = cv2.resize(_wavy(0.0), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    assert concave_turning(contour(disc)) < 0.15
    small, large = _wavy(a), _wavy(a + b)
    assert concave_turning(contour(large)) >= concave_turning(contour(small)) - 0.05
    assert concave_turning(contour(_wavy(0.2))) > 1.0  # five deep waves: well over a radian of inward turn
    turned = cv2.warpAffine(large, cv2.getRotationMatrix2D((100, 100), angle, 1.0), (200, 200), flags=cv2.INTER_NEAREST)
    assert abs(concave_turning(contour(turned)) - concave_turning(contour(large))) < 0.35


@settings(max_examples=12, deadline=None)
@given(angle=st.floats(-30, 30), amplitude=st.floats(4, 8), period=st.floats(40, 80))
def test_straight_edges_survive_a_turn_and_break_when_bent(angle, amplitude, period):
    """A striped box keeps its long straight edges when turned; a sine bend (the benchmark's warp) breaks them up."""
    image = np.full((200, 200, 3), 200, np.uint8)
    mask = np.zeros((200, 200), np.uint8)
    mask[50:150, 60:140] = 255
    for y in range(55, 150, 12):
        image[y:y + 5, 60:140] = 30
    image[mask == 0] = 200
    turn = cv2.getRotationMatrix2D((100, 100), angle, 1.0)
    turned = cv2.warpAffine(image, turn, (200, 200), borderValue=(200, 200, 200))
    turned_mask = cv2.warpAffine(mask, turn, (200, 200), flags=cv2.INTER_NEAREST)
    yy, xx = np.mgrid[0:200, 0:200].astype(np.float32)
    bend_y = (yy + amplitude * np.sin(2 * np.pi * xx / period)).astype(np.float32)
    bent = cv2.remap(image, xx, bend_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    straight = straight_edges(image, mask)
    assert straight_edges(turned, turned_mask) > 0.55 * straight
    assert straight_edges(bent, mask) < 0.5 * straight  # waves of half to a whole box: the long runs break


def _vase_mask(sag: float = 0.0, tilt: float = 0.0) -> np.ndarray:
    """A vase-like outline (round about its axis), its top sagged sideways by ``sag`` of its height, tilted."""
    mask = np.zeros((200, 200), np.uint8)
    ys = np.arange(40, 170)
    t = (ys - 40) / 130.0
    half = 18 + 22 * np.sin(np.pi * t) ** 2  # neck to belly
    shift = sag * 130 * (1 - t) ** 2  # the top moves most
    for y, h, d in zip(ys, half, shift):
        mask[y, int(100 - h + d):int(100 + h + d)] = 255
    turn = cv2.getRotationMatrix2D((100, 100), tilt, 1.0)
    return cv2.warpAffine(mask, turn, (200, 200), flags=cv2.INTER_NEAREST)


@settings(max_examples=12, deadline=None)
@given(tilt=st.floats(-8, 8), sag=st.floats(0.1, 0.2))
def test_symmetry_keeps_a_tilted_round_product_and_loses_a_sagging_one(tilt, sag):
    """A product round about its axis stays mirror-symmetric when tilted; the more its top sags, the less."""
    upright = symmetry(_vase_mask())
    assert upright > 0.95 and symmetry(_vase_mask(tilt=tilt)) > 0.9
    assert symmetry(_vase_mask(sag, tilt)) < symmetry(_vase_mask(sag / 2, tilt)) < upright


def test_shape_names_a_bend_the_references_do_not_show():
    """Against symmetric references, a sagging outline scores low and says it lost its symmetry."""
    refs = _references([(np.dstack([_vase_mask(tilt=t)] * 3), _vase_mask(tilt=t)) for t in (-3.0, 4.0)], "vase")
    ctx = ScoringContext(tuple(r for r, _ in refs), tuple(m for _, m in refs))
    sagged = _vase_mask(0.2)
    upright, bent = ShapeScorer().score([Candidate(np.dstack([_vase_mask(tilt=1.0)] * 3), 0, {}, mask=_vase_mask(tilt=1.0)),
                                         Candidate(np.dstack([sagged] * 3), 0, {}, mask=sagged)], ctx)
    assert upright.value > 0.9 and bent.value < 0.5 and "symmetric" in bent.reason
    assert _score(ShapeScorer({"symmetry_span": 0}), np.dstack([sagged] * 3), sagged, refs) > bent.value


def test_reference_features_are_cached(clock):
    """Scoring a second batch against the same references describes only the candidate."""
    (ref, m), _ = clock
    s = KeypointsScorer()
    ctx = ScoringContext((ref,), (m,))
    s.score([Candidate(ref.image, 0, {}, mask=m.data)], ctx)
    calls = []
    orig = s.features
    s.features = lambda *a, **k: calls.append(1) or orig(*a, **k)
    s.score([Candidate(ref.image, 0, {}, mask=m.data)], ctx)
    assert len(calls) == 1


def test_keypoints_with_one_reference_expects_what_this_product_can_keep():
    """With a single reference, a plain product (a rubber duck: few features, most on its outline) pasted small onto a
    new backdrop keeps few matches; that is all a faithful candidate of it can keep, so it scores 1, not 0 against a
    fixed re-shoot count. A printed product (a can) keeps many, so its blurred candidate and another product still
    score low, and the reason speaks of one reference."""
    from ecomforge.types import GenerationRequest
    from ecomforge_classic.composite import CompositeGenerator

    gen, s = CompositeGenerator(), KeypointsScorer()
    cfg = gen.parse_config({"size": [256, 256], "scale": 0.74, "background": "#e9eef2"})

    def composites(name, seeds=(1, 2)):
        ref, mask = _photo(name)
        return ref, mask, gen.generate(GenerationRequest(ref, mask, "p", "", cfg, seeds))

    ref, mask, ducks = composites("duck_toy/02.jpg")
    assert min(v.value for v in s.score(ducks, ScoringContext((ref,), (mask,)))) > 0.9
    ref, mask, cans = composites("can/00.jpg")
    ctx = ScoringContext((ref,), (mask,))
    assert min(v.value for v in s.score(cans, ctx)) > 0.9
    blurred = [Candidate(cv2.GaussianBlur(c.image, (0, 0), 4), c.seed, c.params, mask=c.mask) for c in cans]
    bad = s.score(blurred + composites("vase/02.jpg", (1,))[2], ctx)
    assert max(v.value for v in bad) < 0.5, bad
    assert all("differs from the reference (" in v.reason and "expected of a re-shoot" in v.reason for v in bad)
