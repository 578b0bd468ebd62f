"""The shipped recipes, as the README uses them: `validate recipes/*.yaml` passes, and they run from any folder."""
from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(glob.glob(str(ROOT / "recipes" / "*.yaml")))


def _main(args):
    from ecomforge.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def test_validate_every_shipped_recipe_training_ones_included(capsys, monkeypatch, tmp_path):
    """The README's own command passes from another folder; the train recipe is checked as a train recipe."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    assert _main(["validate", *RECIPES]) in (0, None), capsys.readouterr().err
    out = capsys.readouterr().out
    assert all(f"{path}: ok" in out for path in RECIPES), out
    assert "train-lora.yaml: ok (training recipe: trainer lora" in out


def test_a_broken_training_recipe_is_reported_like_any_other(capsys, tmp_path):
    """A misspelt key in a train recipe is a one-line error and exit code 2."""
    bad = tmp_path / "t.yaml"
    bad.write_text("trainer: lora\nbase_model: x\nreferences: [a.png]\ninstance_prompt: p\nstepz: 3\n")
    assert _main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "stepz" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: Path(p).name)
def test_references_resolve_against_the_recipe_file(recipe, monkeypatch, tmp_path):
    """Every reference of a shipped recipe names files that exist, seen from any working folder."""
    import yaml

    monkeypatch.chdir(tmp_path)
    data = yaml.safe_load(Path(recipe).read_text())
    specs = (data.get("inputs") or {}).get("references") or data.get("references") or []
    assert specs
    for spec in specs:
        anchored = str(Path(recipe).parent / spec)
        assert glob.glob(anchored) or os.path.exists(anchored), (spec, anchored)
        assert not glob.glob(spec), f"{spec} also resolves against the working folder"
