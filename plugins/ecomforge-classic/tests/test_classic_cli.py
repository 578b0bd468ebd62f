"""End to end through the CLI: the ``local`` acquirer and the ``classic`` / ``upload`` maskers in a real run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ecomforge.cli import main
from ecomforge.testing import sample_image

# Downstream stages are the real offline ones: composite, color, threshold (keeping everything).


def write_recipe(folder: Path, refs: list[str], mask: dict) -> Path:
    recipe = {
        "name": "classic-e2e",
        "inputs": {"references": refs, "prompt": "a product on grey"},
        "mask": mask,
        "generate": {"plugin": "composite", "config": {"shadow": 0}, "seeds": [1]},
        "score": [{"plugin": "color", "weight": 1}],
        "filter": {"plugin": "threshold", "config": {"dedupe": False}},
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture
def project(tmp_path):
    """A recipe folder with two synthetic packshots under refs/ and their true masks under masks/."""
    truths = []
    for seed in (1, 2):
        image, truth = sample_image(96, 64, seed)
        for sub in ("refs", "masks"):
            (tmp_path / sub).mkdir(exist_ok=True)
        Image.fromarray(image).save(tmp_path / "refs" / f"shot{seed}.png")
        Image.fromarray(truth).save(tmp_path / "masks" / f"shot{seed}.png")
        truths.append(truth)
    return tmp_path, truths


def run_cli(capsys, recipe: Path, out: Path) -> tuple[int, str]:
    """``ecomforge run`` in-process through the real entry point; returns (exit code, stderr)."""
    try:
        main(["run", str(recipe), "--out", str(out), "--progress", "none"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def run_masks(out: Path) -> list[np.ndarray]:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    rows = [json.loads(line) for line in (run / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["kept"] for r in rows)
    files = sorted(p for p in (run / "masks").rglob("*.png") if not p.name.endswith(".overlay.png"))
    return [np.asarray(Image.open(p).convert("L")) for p in files]


def test_run_with_classic_masker(project, tmp_path, monkeypatch, capsys):
    folder, truths = project
    monkeypatch.chdir(tmp_path.parent)  # relative specs must resolve against the recipe's folder
    recipe = write_recipe(folder, ["refs/*.png"], {"plugin": "classic", "config": {"working_size": 96}})
    code, err = run_cli(capsys, recipe, tmp_path / "out")
    assert code == 0, err
    masks = run_masks(tmp_path / "out")
    for mask, truth in zip(masks, truths, strict=True):
        agree = np.mean((mask > 127) == (truth > 127))
        assert agree > 0.95, f"only {agree:.3f} of pixels agree with the true mask"


def test_run_with_upload_masker(project, tmp_path, capsys):
    folder, truths = project
    recipe = write_recipe(folder, [str(folder / "refs")], {"plugin": "upload",
                                                          "config": {"path": str(folder / "masks" / "{stem}.png")}})
    code, err = run_cli(capsys, recipe, tmp_path / "out")
    assert code == 0, err
    for mask, truth in zip(run_masks(tmp_path / "out"), truths, strict=True):
        np.testing.assert_array_equal(mask, truth)


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if "error" in ln.lower()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("bad, needle", [(b"plain text", "not an image"), (b"", "the file is empty")])
def test_bad_reference_is_exit_2_naming_the_file(project, tmp_path, capsys, bad, needle):
    folder, _ = project
    (folder / "refs" / "broken.png").write_bytes(bad)
    recipe = write_recipe(folder, [str(folder / "refs" / "broken.png")], {"plugin": "classic"})
    code, err = run_cli(capsys, recipe, tmp_path / "out")
    line = _error_line(err)
    assert code == 2 and "broken.png" in line and needle in line


def test_mask_size_mismatch_is_exit_2(project, tmp_path, capsys):
    folder, _ = project
    Image.new("L", (10, 10), 255).save(folder / "masks" / "small.png")
    recipe = write_recipe(folder, [str(folder / "refs" / "shot1.png")],
                          {"plugin": "upload", "config": {"path": str(folder / "masks" / "small.png")}})
    code, err = run_cli(capsys, recipe, tmp_path / "out")
    assert code == 2 and "small.png: mask is 10x10 but reference" in _error_line(err)
