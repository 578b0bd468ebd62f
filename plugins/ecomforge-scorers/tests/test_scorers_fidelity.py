"""The fidelity benchmark: AUROC on known data, the transforms, the harness and its CLI command."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.testing import sample_image
from ecomforge_scorers.fidelity import auroc
from ecomforge_scorers.fidelity.transforms import VARIANTS
from ecomforge_scorers.regions import product_crop


@pytest.mark.parametrize("pos, neg, expected", [
    ([0.9, 0.8], [0.1, 0.2], 1.0),  # perfect separation
    ([0.1, 0.2], [0.9, 0.8], 0.0),  # perfectly reversed
    ([0.5, 0.5], [0.5], 0.5),  # all ties count half
    ([0.9, 0.4], [0.5, 0.1], 0.75),  # 3 of the 4 pairs ordered correctly
    ([0.3, 0.7, 0.5], [0.5, 0.2], 4.5 / 6),  # 0.3 beats one, 0.7 both, 0.5 ties one and beats one
])
def test_auroc_known_answers(pos, neg, expected):
    """Hand-computed Mann-Whitney AUROCs."""
    assert auroc(pos, neg) == pytest.approx(expected)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=20), st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_auroc_matches_rank_statistic_and_is_antisymmetric(pos, neg):
    """AUROC equals the Mann-Whitney U from average ranks, and swapping classes gives 1 - AUROC."""
    from scipy.stats import rankdata

    ranks = rankdata(pos + neg)
    u = ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    assert auroc(pos, neg) == pytest.approx(u / (len(pos) * len(neg)))
    assert auroc(neg, pos) == pytest.approx(1 - auroc(pos, neg))


def test_auroc_needs_both_classes():
    with pytest.raises(ValueError):
        auroc([], [0.1])


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v.kind == "distorted"], ids=lambda v: v.name)
def test_distortions_change_the_product_only(variant):
    """Distortions alter pixels inside the product mask and leave the background untouched (missing: inpainting near it)."""
    img, mask = sample_image(128, 96, seed=2)
    out, out_mask = variant.apply(img, mask, np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8 and np.array_equal(out_mask, mask)
    inside = mask > 0
    assert np.abs(out[inside].astype(int) - img[inside]).mean() > 2.0
    if variant.name != "missing":
        assert np.array_equal(out[~inside], img[~inside])


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v.kind == "benign"], ids=lambda v: v.name)
def test_benign_variants_keep_the_product_and_move_its_mask(variant):
    """Benign variants keep the mask's area (geometry moves it with the pixels) and change the image."""
    img, mask = sample_image(128, 96, seed=2)
    out, out_mask = variant.apply(img, mask, np.random.default_rng(0))
    assert out.shape == img.shape and out_mask.shape == mask.shape
    assert not np.array_equal(out, img)
    assert abs((out_mask > 0).mean() - (mask > 0).mean()) < 0.6 * (mask > 0).mean()
    if variant.name == "flip":
        assert np.array_equal(out_mask, mask[:, ::-1])
    if variant.name in ("brightness", "temperature", "background"):
        assert np.array_equal(out_mask, mask)
    if variant.name == "background":  # the product's own pixels survive the new background
        from ecomforge.imaging.masks import erode

        core = erode(mask, 3) > 0
        assert np.array_equal(out[core], img[core])


@settings(max_examples=50, deadline=None)
@given(st.integers(8, 60), st.integers(8, 60), st.integers(0, 59), st.integers(0, 59), st.integers(1, 40),
       st.integers(1, 40), st.floats(0, 0.5))
def test_product_crop_is_square_grey_outside_and_keeps_the_product(h, w, x, y, bw, bh, margin):
    """The crop is square, holds every product pixel once, and shows only fill grey elsewhere."""
    rng = np.random.default_rng(h * w)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[img == 128] = 127  # keep the fill value out of the image so the grey can be counted
    mask = np.zeros((h, w), np.uint8)
    mask[min(y, h - 1):min(y, h - 1) + bh, min(x, w - 1):min(x, w - 1) + bw] = 255
    crop = product_crop(img, mask, margin=margin, fill=128)
    assert crop.shape[0] == crop.shape[1] and crop.shape[2] == 3
    not_grey = np.any(crop != 128, axis=2)
    assert not_grey.sum() == np.count_nonzero(mask)
    assert sorted(map(tuple, crop[not_grey])) == sorted(map(tuple, img[mask > 0]))


def test_product_crop_without_mask_pads_the_whole_image():
    """No mask (or an empty one) keeps the whole image, padded square."""
    img = np.full((10, 30, 3), 7, np.uint8)
    for mask in (None, np.zeros((10, 30), np.uint8)):
        crop = product_crop(img, mask, margin=0.0)
        assert crop.shape == (30, 30, 3) and (crop == 7).all(axis=2).sum() == 300


def _check_result(result, names):
    assert set(result) >= {"command", "products", "transforms", "scorers", "combined", "skipped", "scores"}
    assert set(result["scorers"]) == set(names)
    assert result["combined"]["members"] == list(names)
    for entry in [*result["scorers"].values(), result["combined"]]:
        assert 0.0 <= entry["auroc"] <= 1.0 and 0.0 <= entry["auroc_per_product_mean"] <= 1.0
        assert set(entry["per_transform"]) == {v.name for v in VARIANTS}
    n = len(result["products"]) * len(VARIANTS)
    assert len(result["scores"]) == n
    assert {r["kind"] for r in result["scores"]} == {"benign", "distorted"}


def test_harness_runs_and_writes_fidelity_json(tmp_path, tiny_open_clip, tiny_dinov2):
    """Two real photos, three learned scorers on tiny models: fidelity.json has every key, AUROCs in [0,1]."""
    from ecomforge_scorers.fidelity import run_fidelity

    names = ["clip-image", "dino", "lpips"]
    result = run_fidelity(tmp_path, names, ["coffee", "can"], size=96,
                          models={"clip-image": str(tiny_open_clip), "dino": str(tiny_dinov2)})
    on_disk = json.loads((tmp_path / "fidelity.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    _check_result(on_disk, names)
    assert on_disk["scorers"]["lpips"]["random_weights"] is True
    assert [p["name"] for p in on_disk["products"]] == ["coffee", "can"]
    assert (tmp_path / "variants.png").stat().st_size > 1000


def test_harness_skips_unavailable_scorers_with_the_reason(tmp_path, monkeypatch):
    """A scorer whose weights are missing offline is skipped, its ModelNotFound message kept."""
    from ecomforge_scorers.fidelity import run_fidelity

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("ECOMFORGE_MODELS", str(tmp_path / "models"))
    result = run_fidelity(tmp_path, ["dino", "lpips", "no-such-scorer"], ["rocket"], size=64)
    assert set(result["scorers"]) == {"lpips"}
    assert "facebook/dinov2-small" in result["skipped"]["dino"]
    assert "unknown scorer plugin" in result["skipped"]["no-such-scorer"]


def test_views_pair_other_shots_with_other_products(tmp_path):
    """--views: each DreamBench product's other photos are 'same', other products' photos 'other'."""
    from ecomforge_scorers.fidelity import run_fidelity

    result = run_fidelity(tmp_path, ["lpips"], ["can", "duck_toy", "coffee"], size=64, views=True)
    pairs = result["views"]["pairs"]
    assert {r["product"] for r in pairs} == {"can", "duck_toy"}  # skimage photos have no other shots
    for product in ("can", "duck_toy"):
        kinds = [r["kind"] for r in pairs if r["product"] == product]
        assert kinds == ["same"] * 3 + ["other"]
    assert all(f"dreambench/{r['product']}/" in r["candidate"] for r in pairs if r["kind"] == "same")
    for entry in result["views"]["summary"].values():
        assert 0.0 <= entry["auroc"] <= 1.0
    assert json.loads((tmp_path / "fidelity.json").read_text())["views"]["summary"].keys() == {"lpips", "combined"}


def test_bench_fidelity_cli_tiny(tmp_path):
    """`ecomforge bench fidelity --tiny` runs through the real CLI, labels random weights, writes the JSON."""
    from ecomforge.cli import cli

    res = CliRunner().invoke(cli, ["bench", "fidelity", "--out", str(tmp_path), "--tiny", "--products", "rocket",
                                   "--scorers", "clip-image,clip-text", "--size", "64"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "RANDOM" in res.output and "AUROC" in res.output
    result = json.loads((tmp_path / "fidelity.json").read_text())
    _check_result(result, ["clip-image", "clip-text"])
    assert all(result["scorers"][n]["random_weights"] for n in ("clip-image", "clip-text"))
    assert result["command"] == (f"ecomforge bench fidelity --out {tmp_path} --scorers clip-image,clip-text "
                                 "--products rocket --tiny --size 64")


def test_bench_fidelity_bad_input_exits_2(tmp_path, capsys):
    """A malformed --model or an unknown product is one line and exit code 2, in both entry points."""
    import subprocess
    import sys

    from ecomforge.cli import main

    proc = subprocess.run([sys.executable, "-m", "ecomforge_scorers.fidelity", "--out", str(tmp_path),
                           "--model", "clip-image"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --model 'clip-image': expected SCORER=PATH"
    with pytest.raises(SystemExit) as info:
        main(["bench", "fidelity", "--out", str(tmp_path), "--products", "no_such_product", "--scorers", "lpips"])
    assert info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "no_such_product" in err[0]
