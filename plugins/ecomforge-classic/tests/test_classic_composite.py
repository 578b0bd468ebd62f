"""The composite and cv-inpaint generators on real photos: product pixels kept, seeds reproducible."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.errors import InputError, RecipeError
from ecomforge.imaging.masks import erode
from ecomforge.testing import GeneratorContract, make_reference
from ecomforge.types import GenerationRequest, Mask
from ecomforge_classic.acquire import LocalAcquirer
from ecomforge_classic.composite import CompositeGenerator
from ecomforge_classic.inpaint import CvInpaintGenerator
from ecomforge_classic.maskers import ClassicMasker

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "dreambench"


class TestCompositeContract(GeneratorContract):
    preserves_product = False  # the product is moved and scaled onto a new canvas (tested below)
    sweep_point = {"background": "#000000"}

    def make_stage(self):
        return CompositeGenerator({"jitter": 0.5, "size": [96, 96]})


class TestCvInpaintContract(GeneratorContract):
    preserves_product = False  # region "product" repaints the product itself
    sweep_point = {"radius": 20}

    def make_stage(self):
        return CvInpaintGenerator({"region": "product"})


def request(gen, ref, mask, seeds=(1,), **cfg):
    return GenerationRequest(ref, mask, "p", "", gen.parse_config(cfg), tuple(seeds))


@pytest.fixture(scope="module")
def vase():
    (ref,) = LocalAcquirer().acquire([str(SAMPLES / "vase/02.jpg")], product="vase", base_dir=SAMPLES)
    return ref, ClassicMasker({"feather": 3}).mask(ref)


def test_native_scale_keeps_product_pixels_bit_exact(vase):
    ref, mask = vase
    gen = CompositeGenerator()
    (cand,) = gen.generate(request(gen, ref, mask, scale=None, background="linear:#ffffff:#cfd8e3"))
    dx, dy = cand.info["translate"]
    yy, xx = np.nonzero(erode(mask.data, mask.feather))
    inside = (yy + dy >= 0) & (yy + dy < cand.image.shape[0]) & (xx + dx >= 0) & (xx + dx < cand.image.shape[1])
    assert inside.mean() > 0.99
    yy, xx = yy[inside], xx[inside]
    assert np.array_equal(cand.image[yy + dy, xx + dx], ref.image[yy, xx])
    assert np.all(cand.mask[yy + dy, xx + dx] == 255)


def test_seeds_vary_only_with_jitter(vase):
    ref, mask = vase
    gen = CompositeGenerator()
    a1, a2 = gen.generate(request(gen, ref, mask, seeds=(1, 2), size=[256, 256]))
    assert np.array_equal(a1.image, a2.image)
    j1, j2 = gen.generate(request(gen, ref, mask, seeds=(1, 2), size=[256, 256], jitter=0.8))
    assert not np.array_equal(j1.image, j2.image)
    again = gen.generate(request(gen, ref, mask, seeds=(2,), size=[256, 256], jitter=0.8))[0]
    assert np.array_equal(again.image, j2.image)
    assert j1.info["placed_at"] != j2.info["placed_at"]
    assert j1.params == j2.params  # the config; the seed's jitter is derived (info)


def test_mask_follows_the_product_and_shadow_darkens_below(vase):
    ref, mask = vase
    gen = CompositeGenerator()
    (c,) = gen.generate(request(gen, ref, mask, size=[300, 300], placement="bottom", background="#ffffff", shadow=0.6))
    ys, xs = np.nonzero(c.mask)
    assert c.mask.shape == (300, 300) and 0.1 < c.mask.mean() / 255 < 0.5
    assert ys.max() > 230  # standing near the floor line
    below = c.image[min(299, ys.max() + 3), int(xs.mean())]
    assert below.max() < 250  # the contact shadow darkens the white floor under the product
    assert np.array_equal(c.image[5, 5], [255, 255, 255])  # far corner: untouched background


@pytest.mark.parametrize("bg", ["#102030", "linear:#000000:#ffffff", "radial:#ffffff:#000000"])
def test_backgrounds(bg):
    ref, mask = make_reference(64, 48)
    gen = CompositeGenerator()
    (c,) = gen.generate(request(gen, ref, mask, background=bg, size=[64, 64], shadow=0))
    corner = c.image[0, 0].astype(int)
    if bg == "#102030":
        assert corner.tolist() == [16, 32, 48]
    elif bg.startswith("linear"):
        assert corner.max() < 5 and c.image[-1, 0].min() > 250
    else:
        assert corner.max() < 10 and c.image[1, 32].min() > 60  # centre colour fades out to the corners


def test_background_photo(tmp_path):
    ref, mask = make_reference(64, 48)
    gen = CompositeGenerator()
    photo = str(SAMPLES / "berry_bowl/01.jpg")
    (c,) = gen.generate(request(gen, ref, mask, background=photo, size=[80, 60], shadow=0))
    assert c.image.shape == (60, 80, 3) and c.image[0, 0].std() >= 0


@pytest.mark.parametrize("bad", ["not-a-colour-or-file", "linear:#fff", "#12345", "bogus:#1"])
def test_bad_backgrounds_fail_the_config(bad):
    # before: they passed validation and failed at generation, mid-run
    with pytest.raises(RecipeError, match=r"^config\.background: background"):
        CompositeGenerator().parse_config({"background": bad})


def test_a_missing_background_photo_fails_the_generation(tmp_path):
    ref, mask = make_reference()
    gen = CompositeGenerator()
    with pytest.raises(InputError, match="missing.png"):
        gen.generate(request(gen, ref, mask, background=str(tmp_path / "missing.png")))


def test_declared_pixels_are_the_canvas_made():
    ref, mask = make_reference(64, 48)
    gen = CompositeGenerator()
    for cfg in ({}, {"size": [80, 60]}, {"size": [300, 120], "scale": 0.5}):
        (c,) = gen.generate(request(gen, ref, mask, **cfg))
        assert gen.work_pixels(gen.parse_config(cfg), ref.size) == c.image.shape[0] * c.image.shape[1]


def test_config_validation():
    with pytest.raises(RecipeError, match="size"):
        CompositeGenerator({"size": [8, 8]})
    with pytest.raises(RecipeError, match="scale"):
        CompositeGenerator({"scale": 1.5})


@settings(max_examples=25, deadline=None)
@given(w=st.integers(24, 120), h=st.integers(24, 120), scale=st.one_of(st.none(), st.floats(0.2, 1.0)),
       jitter=st.floats(0, 1), seed=st.integers(0, 1000))
def test_composite_properties(w, h, scale, jitter, seed):
    """Any size, scale and jitter: output of the requested size, a non-empty product mask inside it."""
    ref, mask = make_reference(64, 48, seed=seed % 7)
    gen = CompositeGenerator()
    (c,) = gen.generate(request(gen, ref, mask, seeds=(seed,), size=[w, h], scale=scale, jitter=jitter, padding=2))
    assert c.image.shape == (h, w, 3) and c.mask.shape == (h, w)
    assert c.mask.any()


def test_cv_inpaint_removes_product_and_keeps_background():
    ref, mask = make_reference(96, 64)
    gen = CvInpaintGenerator()
    (c,) = gen.generate(request(gen, ref, mask, region="product", grow=2))
    inside = mask.data > 0
    assert np.abs(c.image[inside].astype(int) - 235).mean() < 25  # filled with the plain background
    far = erode(255 - mask.data, 6) > 0
    assert np.array_equal(c.image[far], ref.image[far])
    (k,) = gen.generate(request(gen, ref, mask, region="background"))
    assert np.array_equal(k.image[inside], ref.image[inside])


def test_empty_mask_is_a_clear_error():
    ref, _ = make_reference()
    gen = CompositeGenerator()
    with pytest.raises(InputError, match="empty"):
        gen.generate(request(gen, ref, Mask(np.zeros(ref.image.shape[:2], np.uint8))))


def test_a_missing_background_photo_stops_the_run_before_any_work(tmp_path):
    # before: the run made its folder, masked every reference and failed at the first generation
    import subprocess
    import sys

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"""
name: studio
inputs: {{references: ["{SAMPLES / 'vase/02.jpg'}"]}}
mask: {{plugin: classic}}
generate: {{plugin: composite, config: {{background: studio/backdrop.jpg, size: [64, 64]}}, seeds: [1]}}
filter: {{plugin: threshold}}
""")
    exe = Path(sys.executable).parent / "ecomforge"
    run = [str(exe), "run", str(recipe), "--out", str(tmp_path / "runs")]
    res = subprocess.run(run, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 2
    (line,) = res.stderr.splitlines()
    assert line.startswith("error: ") and "'studio/backdrop.jpg': no such image file" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    # the photo beside the recipe (not in the current folder) is found, and the run goes ahead
    (tmp_path / "studio").mkdir()
    (tmp_path / "studio/backdrop.jpg").write_bytes((SAMPLES / "berry_bowl/01.jpg").read_bytes())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = subprocess.run(run, capture_output=True, text=True, timeout=120, cwd=elsewhere)
    assert res.returncode == 0, res.stderr
    (manifest,) = (tmp_path / "runs").glob("*/manifest.jsonl")
    assert len(manifest.read_text().splitlines()) == 1
