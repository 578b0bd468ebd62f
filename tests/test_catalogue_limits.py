"""Limits a catalogue row, a recipe or an input file cannot lift, and the clear one-line errors for bad input."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from PIL import Image

from ecomforge.errors import EcomforgeError, InputError, PluginNotFound, RecipeError
from ecomforge.recipe import load_recipe
from ecomforge.recipe.catalog import read_catalog

RECIPE = """
name: cat
inputs:
  {source}
  prompt: "{prompt}"
mask: {{plugin: classic, config: {{working_size: 128, feather: 1}}}}
generate:
  plugin: composite
  config: {{size: [96, 96], scale: 0.7}}
  sources: first
  seeds: {seeds}
score: [{{plugin: color}}]
filter: {{plugin: threshold, config: {{min_score: 0.0}}}}
output: {{dir: runs}}
{extra}
"""


def photo(path: Path, shade: int = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (64, 64), (240, 240, 240))
    img.paste((shade, 40, 40), (16, 16, 48, 48))
    img.save(path)
    return path


def recipe(tmp_path: Path, *, catalog: str | None = None, references: str = "a.png", prompt: str = "{product}",
           seeds: str = "[1]", extra: str = "") -> Path:
    source = f"catalog: {catalog}" if catalog else f"references: [{references}]"
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(source=source, prompt=prompt, seeds=seeds, extra=extra))
    return path


def catalogue(tmp_path: Path, text: str, name: str = "c.csv") -> Path:
    photo(tmp_path / "a.png")
    (tmp_path / name).write_text(text)
    return recipe(tmp_path, catalog=name)


# --- 1. a catalogue row cannot lift the recipe's or the operator's limits ----------------------

@pytest.mark.parametrize("column, value", [("acquire.config.max_pixels", "1000000000"),
                                           ("acquire.config.max_bytes", "100000000000"),
                                           ("acquire.plugin", "local")])
def test_a_row_may_not_set_acquire_settings(tmp_path, column, value):
    path = catalogue(tmp_path, f"product,references,{column}\nvase,a.png,{value}\n")
    with pytest.raises(InputError, match=rf"c.csv: line 2: column '{column}': a catalogue may not set acquire"):
        load_recipe(path)


def test_a_row_may_lower_a_work_setting_but_not_raise_it(tmp_path):
    path = catalogue(tmp_path, "product,references,mask.config.working_size\nvase,a.png,4096\n")
    with pytest.raises(RecipeError, match=r"c.csv: line 2: column 'mask.config.working_size' is 4096, more work "
                                          r"than the recipe's 128"):
        load_recipe(path)
    (tmp_path / "c.csv").write_text("product,references,mask.config.working_size\nvase,a.png,64\n")
    assert load_recipe(path).products["vase"].configs["mask"].working_size == 64


def test_a_row_may_not_make_a_candidate_bigger_than_the_recipe(tmp_path):
    path = catalogue(tmp_path, 'product,references,generate.config.size\nvase,a.png,"[8192,8192]"\n')
    with pytest.raises(RecipeError, match=r"c.csv: line 2: column\(s\) 'generate.config.size' make a candidate "
                                          r"67108864 pixels .* more than the recipe's own 9216"):
        load_recipe(path)
    (tmp_path / "c.csv").write_text('product,references,generate.config.size\nvase,a.png,"[64,96]"\n')
    assert load_recipe(path).products["vase"].configs["generate"].size == (64, 96)


def test_the_pixel_check_is_made_at_every_sweep_point(tmp_path):
    photo(tmp_path / "a.png")
    (tmp_path / "c.jsonl").write_text(json.dumps({"product": "vase", "references": "a.png",
                                                  "generate.config.size": [200, 200]}) + "\n")
    path = recipe(tmp_path, catalog="c.jsonl")
    text = path.read_text().replace("config: {size: [96, 96], scale: 0.7}",
                                    "config: {size: [96, 96]}\n  sweep: {scale: [0.5, 0.7]}")
    path.write_text(text)
    with pytest.raises(RecipeError, match=r"c.jsonl: line 1: .* at sweep point \{'scale': 0.5\}"):
        load_recipe(path)


def test_work_fields_are_declared_and_found():
    from ecomforge.pathspec import work_fields
    from ecomforge_classic.maskers import ClassicMasker

    assert "working_size" in list(work_fields(ClassicMasker.Config))


# --- 3. references per product and the entries a pattern may look at ----------------------------

def test_references_per_product_are_capped_before_any_is_read(tmp_path):
    for i in range(70):
        photo(tmp_path / "many" / f"{i:03d}.png", shade=i)
    path = catalogue(tmp_path, "product,references\nvase,many\n")
    with pytest.raises(RecipeError, match=r"c.csv: line 2: product 'vase' names more than 64 references "
                                          r"\(the limit, inputs.max_references\)"):
        load_recipe(path)
    path.write_text(path.read_text().replace("  prompt:", "  max_references: 100\n  prompt:"))
    resolved = load_recipe(path)
    assert resolved.products["vase"].reference_count == 70
    assert resolved.summary().startswith("1 product(s), 70 reference(s), 1 candidate(s)")  # sources: first


def test_a_pattern_looks_at_a_bounded_number_of_entries(tmp_path, monkeypatch):
    import ecomforge_classic.acquire as acquire

    monkeypatch.setattr(acquire, "MAX_VISITED", 20)
    for i in range(30):
        (tmp_path / "deep" / f"d{i}").mkdir(parents=True)
    photo(tmp_path / "deep" / "d0" / "x.png")
    path = catalogue(tmp_path, "product,references\nvase,deep/**/*.png\n")
    with pytest.raises(RecipeError, match=r"c.csv: line 2: product 'vase': .*deep/\*\*/\*.png: .*more than 20 files "
                                          r"and folders \(the limit\)"):
        load_recipe(path)


def test_a_capped_glob_finds_what_glob_finds(tmp_path):
    import glob

    from ecomforge_classic.acquire import capped_glob

    for rel in ("a/x.png", "a/b/y.png", "a/b/c/z.PNG", "a/.hidden/h.png", "q.png"):
        photo(tmp_path / rel)
    for pattern in ("**/*.png", "a/**/*.png", "a/*/*.png", "*.png", "a/b/*"):
        full = str(tmp_path / pattern)
        assert sorted(capped_glob(full, pattern)) == sorted(glob.glob(full, recursive=True)), pattern


# --- 4. an integer too long for Python is a clear error in every source ---------------------------

BIG = "9" * 5000


def test_a_long_integer_in_a_jsonl_catalogue_names_the_line_and_key(tmp_path):
    photo(tmp_path / "a.png")
    (tmp_path / "c.jsonl").write_text('{"product": "vase", "references": "a.png", "filter.config.top_k": %s}\n' % BIG)
    with pytest.raises(InputError, match=r"c.jsonl: line 1: filter.config.top_k: a number of 5000 digits is over "
                                         r"the limit of \d+ digits"):
        load_recipe(recipe(tmp_path, catalog="c.jsonl"))


def test_a_long_integer_in_set_or_yaml_names_the_key(tmp_path):
    photo(tmp_path / "a.png")
    path = recipe(tmp_path)
    with pytest.raises(RecipeError, match=r"--set: filter.config.top_k: a number of 5000 digits"):
        load_recipe(path, [f"filter.config.top_k={BIG}"])
    path.write_text(path.read_text().replace("min_score: 0.0", f"top_k: {BIG}"))
    with pytest.raises(InputError, match=r"recipe.yaml: line \d+ filter.config.top_k: a number of 5000 digits"):
        load_recipe(path)


def test_the_cli_gives_one_line_and_exit_2_for_a_long_integer(tmp_path, capsys):
    from ecomforge.cli import main

    photo(tmp_path / "a.png")
    with pytest.raises(SystemExit) as info:
        main(["validate", str(recipe(tmp_path)), "--set", f"filter.config.top_k={BIG}"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "a number of 5000 digits" in err


# --- 5. candidates per product: the product of the factors is capped ---------------------------------

def test_sweep_points_times_seeds_is_capped(tmp_path):
    photo(tmp_path / "a.png")
    path = recipe(tmp_path, seeds="{count: 100000}")
    path.write_text(path.read_text().replace("config: {size: [96, 96], scale: 0.7}",
                                             "config: {size: [96, 96]}\n  sweep: {scale: [0.5, 0.6]}"))
    with pytest.raises(RecipeError, match=r"generate: generate.sweep \(2 point\(s\)\) x generate.seeds \(100000\) "
                                          r"is 200000 candidates per product, over the limit of 100000"):
        load_recipe(path)


# --- 6. messages ------------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    photo(tmp_path / "a.png")
    with pytest.raises(RecipeError, match=r"pipe.png: not a regular file"):
        load_recipe(recipe(tmp_path, references=str(tmp_path / "pipe.png")))
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(InputError, match=r"pipe.csv: not a regular file .*not a catalogue"):
        read_catalog(tmp_path / "pipe.csv")


def test_settings_for_the_default_acquirer_use_the_default_acquirer(tmp_path):
    photo(tmp_path / "a.png")
    resolved = load_recipe(recipe(tmp_path), ["acquire.config.timeout=5"])
    assert resolved.recipe.acquire.plugin == "local" and resolved.configs["acquire"].timeout == 5


WOO = "ID,Type,SKU,Name,Images\n{id},simple,,Ваза,a.png\n"


def test_a_woocommerce_name_without_file_name_characters(tmp_path):
    path = catalogue(tmp_path, WOO.format(id="4711"))
    assert list(load_recipe(path).products) == ["4711"]  # named after its ID
    (tmp_path / "c.csv").write_text(WOO.format(id=""))
    with pytest.raises(InputError, match=r"c.csv: line 2: the product's Name 'Ваза' has no characters a file name "
                                         r"can use .*give the product a SKU"):
        read_catalog(tmp_path / "c.csv")


@pytest.mark.parametrize("prompt", ["{product on a table", "{product!r}", "{product:>9} x", "{product.name}"])
def test_a_broken_placeholder_is_refused_at_load(tmp_path, prompt):
    photo(tmp_path / "a.png")
    with pytest.raises(RecipeError, match=r"inputs.prompt: .* is not a template variable"):
        load_recipe(recipe(tmp_path, prompt=prompt))


@pytest.mark.parametrize("prompt", ["{product} on a table", "a {} b", "{a b} c", "{{literal}}"])
def test_text_braces_still_pass(tmp_path, prompt):
    photo(tmp_path / "a.png")
    load_recipe(recipe(tmp_path, prompt=prompt))


def test_an_empty_recipe_file_says_so(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    with pytest.raises(InputError, match=r"empty.yaml: the recipe file is empty"):
        load_recipe(tmp_path / "empty.yaml")


# --- 7. a run folder's recipe.yaml can be run again ----------------------------------------------------

def test_a_stored_recipe_validates_and_runs_again(tmp_path, caplog):
    import yaml

    from ecomforge.run.runner import run_recipe

    photo(tmp_path / "a.png")
    first = run_recipe(load_recipe(recipe(tmp_path)), out=tmp_path / "runs")
    stored = first.run_dir / "recipe.yaml"
    assert "plugins" in yaml.safe_load(stored.read_text())
    again = run_recipe(load_recipe(stored), out=tmp_path / "runs2")
    assert len(again.records) == len(first.records)
    data = yaml.safe_load(stored.read_text())
    key = next(k for k in data["plugins"] if k.startswith("generator:"))
    data["plugins"][key] = "ecomforge-classic==0.0.1"
    (tmp_path / "pinned.yaml").write_text(yaml.safe_dump(data))
    with caplog.at_level(logging.WARNING, logger="ecomforge"):
        resolved = load_recipe(tmp_path / "pinned.yaml")
    assert resolved.warnings == [f"generator 'composite': the recipe was made with ecomforge-classic==0.0.1, "
                                 f"installed is {resolved.versions[key]}"]
    assert [r.getMessage() for r in caplog.records] == [f"warning: {resolved.warnings[0]}"]


# --- 8. plugin hints -------------------------------------------------------------------------------------

def test_a_disabled_first_party_plugin_gets_its_hint_not_a_close_name(monkeypatch):
    from ecomforge.plugins import build_registry

    monkeypatch.setenv("ECOMFORGE_DISABLE", "ecomforge-diffusers")
    registry = build_registry()
    assert "cv-inpaint" in registry.plugins["generator"]  # the close name that used to win
    with pytest.raises(PluginNotFound) as info:
        registry.get("generator", "sd-inpaint")
    assert info.value.hint == "ecomforge-diffusers is disabled: remove it from ECOMFORGE_DISABLE"


def test_a_missing_default_acquirer_names_what_to_install(monkeypatch):
    from ecomforge.plugins import Registry

    monkeypatch.setattr("ecomforge.plugins.install_hint", lambda dist: f"pip install {dist}")
    with pytest.raises(PluginNotFound) as info:
        Registry().default("acquirer")
    assert info.value.hint == ("name one in the recipe; available acquirers: none installed; "
                               "pip install ecomforge-classic")


def test_known_plugins_match_what_the_distributions_register():
    from ecomforge.plugins import KNOWN_PLUGINS, get_registry

    registry = get_registry()
    first_party = set(KNOWN_PLUGINS.values())
    registered = {(info.name, info.distribution) for info in registry.all() if info.distribution in first_party
                  and info.distribution != "ecomforge"}
    installed = {d for _, d in registered}
    assert registered == {(n, d) for n, d in KNOWN_PLUGINS.items() if d in installed}


def test_an_unknown_key_of_a_config_without_settings():
    from ecomforge.stages import Stage, StageConfig

    class Bare(Stage):
        Config = StageConfig

    with pytest.raises(EcomforgeError) as info:
        Bare.parse_config({"x": 1})
    assert info.value.hint == "this plugin takes no settings"
