"""End to end through ``ecomforge run``: the sam-clip text path and the sam prompt path in real runs."""
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


@pytest.fixture
def project(tmp_path):
    """A recipe folder with two 128x96 synthetic packshots under refs/."""
    (tmp_path / "refs").mkdir()
    for seed in (1, 2):
        Image.fromarray(sample_image(128, 96, seed)[0]).save(tmp_path / "refs" / f"shot{seed}.png")
    return tmp_path


def run(project: Path, capsys, mask: dict, *sets: str, references: str = "refs/*.png") -> tuple[int, str]:
    """Write the recipe and run ``ecomforge run`` in-process through its entry point."""
    recipe = {
        "name": "sam-e2e",
        "inputs": {"references": [references], "prompt": "a product on grey"},
        "mask": mask,
        "generate": {"plugin": "composite", "config": {"shadow": 0}, "seeds": [1]},
        "score": [{"plugin": "color", "weight": 1}],
        "filter": {"plugin": "threshold", "config": {"dedupe": False}},
    }
    path = project / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    args = ["run", str(path), "--out", str(project / "out"), "--progress", "none", "--device", "cpu"]
    for item in sets:
        args += ["--set", item]
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if "error" in ln.lower()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_text_prompt_run_writes_masks_and_manifest(project, capsys, sam_clip_base):
    # One reference keeps the automatic mask generator to a single run; the loop is the runner's.
    code, err = run(project, capsys, {"plugin": "sam-clip", "config": {**sam_clip_base, "feather": 2}},
                    references="refs/shot1.png")
    assert code == 0, err
    (folder,) = [p for p in (project / "out").iterdir() if p.is_dir()]
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["kept"]
    files = sorted(p for p in (folder / "masks").rglob("*.png") if not p.name.endswith(".overlay.png"))
    assert len(files) == 1
    for path in files:
        mask = np.asarray(Image.open(path).convert("L"))
        assert mask.shape == (96, 128) and set(np.unique(mask)) <= {0, 255} and mask.any()
    resolved = yaml.safe_load((folder / "recipe.yaml").read_text())
    assert resolved["mask"]["config"]["text"] == "a striped bag"
    assert resolved["mask"]["config"]["mode"] == "auto"  # defaults are written into the run's recipe


def test_nothing_found_is_exit_2_with_the_best_score(project, capsys, sam_clip_base):
    code, err = run(project, capsys, {"plugin": "sam-clip", "config": sam_clip_base},
                    "mask.config.min_score=1.0", "mask.config.mode=boxes")
    line = error_line(err)
    assert code == 2 and "nothing matches 'a striped bag'" in line and "best CLIP score" in line


@pytest.mark.parametrize("config, needle", [
    ({"points": [[500, 10]]}, "points[0] = [500, 10] is outside the 128x96 image"),
    ({"box": [90, 10, 20, 50]}, "inverted or empty"),
])
def test_bad_prompts_are_exit_2_with_one_line(project, capsys, tiny_sam_checkpoint, config, needle):
    code, err = run(project, capsys, {"plugin": "sam", "config": {"model": str(tiny_sam_checkpoint), **config}})
    assert code == 2 and needle in error_line(err)


def test_empty_text_is_rejected_before_models_load(project, capsys, tmp_path):
    code, err = run(project, capsys, {"plugin": "sam-clip", "config": {"text": " ", "model": str(tmp_path / "x")}})
    assert code == 2 and "mask.config.text" in error_line(err) and "text is empty" in err


def test_missing_clip_model_stops_the_run_before_any_work(project, capsys, sam_clip_base):
    """sam-clip's CLIP weights are checked with SAM's, before a run folder is made: exit 2 naming the key."""
    code, err = run(project, capsys, {"plugin": "sam-clip", "config": {**sam_clip_base,
                                                                       "clip_model": str(project / "clipp")}})
    line = error_line(err)
    assert code == 2 and f"mask.config.clip_model: no such folder or file: {project / 'clipp'}" in line
    assert not (project / "out").exists() or not list((project / "out").iterdir())
