"""A recipe run end to end through `ecomforge run` with the tiny inpainting model on disk."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ecomforge.imaging.io import read_png, save_png
from ecomforge.imaging.masks import erode
from ecomforge.testing import sample_image

from diffusers_testutil import KeepAllFilterPlugin

RECIPE = """
name: tiny-sd
inputs:
  references: [ref.png]
  prompt: "a (red:1.2) product on a table"
  negative_prompt: blurry
mask: {plugin: classic, config: {feather: 3, dilate: 1}}
generate:
  plugin: sd-inpaint
  config: {model: stable-diffusion-v1-5/stable-diffusion-inpainting, steps: 2, max_side: 96, scheduler: DDIM}
  sweep: {guidance_scale: [5.0, 7.5]}
  seeds: [1, 2]
filter: {plugin: keep-all-sd-test}
"""


def _main(args):
    from ecomforge.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def test_cli_run_with_tiny_model(tmp_path, tiny_sd_inpaint, ecomforge_plugins, capsys):
    """Four candidates (2 guidance × 2 seeds), PNGs with A1111 parameters, product bit-exact."""
    ecomforge_plugins(KeepAllFilterPlugin)
    image, _ = sample_image(96, 64)
    save_png(tmp_path / "ref.png", image)
    (tmp_path / "r.yaml").write_text(RECIPE)
    code = _main(["run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "runs"), "--progress", "none",
                  "--device", "cpu", "--set", f"generate.config.model={tiny_sd_inpaint}"])
    assert code == 0, capsys.readouterr().err
    run = next((tmp_path / "runs").iterdir())
    records = [json.loads(line) for line in (run / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["kept"] for r in records)
    assert sorted((r["params"]["guidance_scale"], r["seed"]) for r in records) == [(5.0, 1), (5.0, 2), (7.5, 1), (7.5, 2)]
    mask, _ = read_png(run / records[0]["mask"])
    core = erode(mask if mask.ndim == 2 else mask[..., 0], 2) > 0
    assert core.sum() > 500
    for rec in records:
        pixels, text = read_png(run / rec["image"])
        assert np.array_equal(pixels[core], image[core])
        params = text["parameters"]
        assert "Sampler: DDIM, Schedule type: Automatic" in params and f"Seed: {rec['seed']}" in params
        assert f"Model: {tiny_sd_inpaint.name}," in params and re.search(r"Model hash: [0-9a-f]{10},", params)
        assert f"Size: {'x'.join(map(str, rec['info']['size']))}," in params and "Mask blur: 3" in params
        # names and hashes only: no local path in any text chunk of the image
        assert all(str(tmp_path) not in value and str(tiny_sd_inpaint) not in value for value in text.values())
        assert rec["models"]["model"] == tiny_sd_inpaint.name
        assert rec["params"]["model"] == str(tiny_sd_inpaint)  # the local record keeps where the model is


def test_cli_run_unknown_scheduler_exits_2(tmp_path, tiny_sd_inpaint, ecomforge_plugins, capsys):
    """A misspelt scheduler is a one-line recipe error with a suggestion, before any model loads."""
    ecomforge_plugins(KeepAllFilterPlugin)
    save_png(tmp_path / "ref.png", sample_image(96, 64)[0])
    (tmp_path / "r.yaml").write_text(RECIPE)
    code = _main(["run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "runs"), "--progress", "none",
                  "--set", "generate.config.scheduler=DPM++ 2M Karas"])
    err = capsys.readouterr().err
    assert code == 2 and "generate.config.scheduler" in err and "did you mean 'DPM++ 2M Karras'" in err


def test_recreate_is_bit_exact_from_the_record(tmp_path, tiny_sd_inpaint, ecomforge_plugins, capsys):
    """`ecomforge recreate RUN ID` regenerates a candidate from its manifest record: same pixels."""
    ecomforge_plugins(KeepAllFilterPlugin)
    save_png(tmp_path / "ref.png", sample_image(96, 64)[0])
    (tmp_path / "r.yaml").write_text(RECIPE)
    assert _main(["run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "runs"), "--progress", "none",
                  "--device", "cpu", "--set", f"generate.config.model={tiny_sd_inpaint}"]) == 0
    run = next((tmp_path / "runs").iterdir())
    rec = next(json.loads(line) for line in (run / "manifest.jsonl").read_text().splitlines()
               if json.loads(line)["seed"] == 2)
    assert rec["info"]["reproduce"]["batch_seeds"] == [1, 2] and rec["info"]["reproduce"]["device"] == "cpu"
    assert set(rec["info"]["reproduce"]["versions"]) >= {"torch", "diffusers"}
    capsys.readouterr()
    assert _main(["recreate", str(run), rec["id"][:10]]) == 0
    assert "bit-exact" in capsys.readouterr().out
    again, _ = read_png(run / "recreated" / f"{rec['id']}.png")
    assert np.array_equal(again, read_png(run / rec["image"])[0])


def test_recreate_names_weights_that_changed_since_the_run(tmp_path, tiny_sd_inpaint, ecomforge_plugins, capsys):
    """Pixels that differ because a weight file was replaced are put down to that file, not to batching."""
    import shutil

    from safetensors.numpy import load_file, save_file

    ecomforge_plugins(KeepAllFilterPlugin)
    model = tmp_path / "model"
    shutil.copytree(tiny_sd_inpaint, model)
    save_png(tmp_path / "ref.png", sample_image(96, 64)[0])
    (tmp_path / "r.yaml").write_text(RECIPE)
    assert _main(["run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "runs"), "--progress", "none",
                  "--device", "cpu", "--set", f"generate.config.model={model}"]) == 0
    run = next((tmp_path / "runs").iterdir())
    rec = json.loads((run / "manifest.jsonl").read_text().splitlines()[0])
    unet = model / "unet" / "diffusion_pytorch_model.safetensors"
    weights = load_file(str(unet))
    save_file({k: (v * 1.5 if v.dtype.kind == "f" else v) for k, v in weights.items()}, str(unet))
    from ecomforge.models import MODEL_CACHE

    MODEL_CACHE.clear()  # as a new process would: the run's pipeline is not reused
    capsys.readouterr()
    assert _main(["recreate", str(run), rec["id"]]) == 1
    err = capsys.readouterr().err
    assert "pixels differ" in err and "weights changed since the run: weights: recorded" in err
