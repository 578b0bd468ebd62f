"""The cap of MAX_CANDIDATES candidates per product counts references x sweep points x seeds, not per reference."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from ecomforge.errors import RecipeError
from ecomforge.recipe import load_recipe
from ecomforge.recipe.load import MAX_CANDIDATES

RECIPE = """
name: cap
inputs:
  references: [refs]
  prompt: "a vase"
mask: {{plugin: classic, config: {{working_size: 128, feather: 1}}}}
generate:
  plugin: composite
  config: {{size: [96, 96], scale: 0.7}}
  sources: {sources}
  seeds: {seeds}
score: [{{plugin: color}}]
filter: {{plugin: threshold, config: {{min_score: 0.0}}}}
output: {{dir: runs}}
"""


def _recipe(tmp_path: Path, *, references: int, seeds: str, sources: str = "all") -> Path:
    folder = tmp_path / "refs"
    folder.mkdir()
    for i in range(references):
        Image.new("RGB", (8, 8), (i, 40, 40)).save(folder / f"{i:03d}.png")
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(seeds=seeds, sources=sources))
    return path


def test_references_times_seeds_over_the_cap_is_refused_at_load(tmp_path):
    path = _recipe(tmp_path, references=64, seeds="{count: 25000}")
    with pytest.raises(RecipeError, match=r"product '[^']+': its references \(64\) x generate.sweep \(1 point\(s\)\) "
                                          r"x generate.seeds \(25000\) is 1600000 candidates, over the limit of "
                                          rf"{MAX_CANDIDATES} per product"):
        load_recipe(path)


def test_sources_first_counts_one_reference(tmp_path):
    path = _recipe(tmp_path, references=64, seeds="{count: 25000}", sources="first")
    resolved = load_recipe(path)
    assert "25000 candidate(s)" in resolved.summary()


def test_under_the_cap_loads(tmp_path):
    path = _recipe(tmp_path, references=4, seeds="{count: 25000}")
    assert "100000 candidate(s)" in load_recipe(path).summary()
