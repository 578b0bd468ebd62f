"""Values as a user writes them: catalogue cells, JSONL values and --set values keep what was typed.

Before, every string went through YAML 1.1: '#000000' was a comment (None), '1:1' the sexagesimal 61,
'no' a boolean, '012' the octal 10; a repeated key silently replaced the first, and '[[[[...' a
RecursionError. Also here: a catalogue column for a swept key, and composite backgrounds checked at
validation, every sweep point.
"""
from __future__ import annotations

import json

import pytest

from ecomforge.errors import InputError, RecipeError
from ecomforge.recipe import load_recipe
from ecomforge.recipe.catalog import read_catalog
from ecomforge.recipe.load import parse_overrides, read_yaml
from ecomforge.recipe.safeyaml import safe_load

RECIPE = """
name: values
inputs:
  {inputs}
  prompt: "{{product}}"
mask: {{plugin: classic}}
generate:
  plugin: composite
  config: {{size: [96, 96], scale: 0.7}}
  {sweep}
  seeds: [1]
filter: {{plugin: threshold, config: {{min_score: 0.0}}}}
"""


def recipe(tmp_path, inputs="catalog: catalog.csv", sweep=""):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(inputs=inputs, sweep=sweep))
    return path


def overrides_of(tmp_path, header, cell):
    path = tmp_path / "catalog.csv"
    path.write_text(f"product,references,{header}\nvase,v.jpg,{cell}\n")
    (prod,) = read_catalog(path)
    return prod.overrides[header]


@pytest.mark.parametrize("cell, value", [
    ("12", "12"), (" 12 ", "12"), ("0.75", "0.75"), ("true", "true"), ("1984", "1984"),
    ('"[256, 320]"', [256, 320]), ('"[""#ffffff"", ""#000000""]"', ["#ffffff", "#000000"]),
    ("#000000", "#000000"), ("1:1", "1:1"), ("4:5", "4:5"), ("no", "no"), ("on", "on"), ("yes", "yes"),
    ("012", "012"), ("null", "null"), ("~", "~"), ("2024-01-01", "2024-01-01"), (".inf", ".inf"),
    ("[new] tee", "[new] tee"), ('"{""a"": 1}"', '{"a": 1}'), ("0x1F", "0x1F"), ("1_000", "1_000"),
    ('"[NaN, 0.5]"', "[NaN, 0.5]"), ("[]", []),
])
def test_a_csv_cell_is_its_text_unless_a_json_list(tmp_path, cell, value):
    got = overrides_of(tmp_path, "generate.config.x", cell)
    assert got == value and type(got) is type(value)


def test_the_setting_types_a_csv_cell(tmp_path):
    """A number setting reads '12' as 12, a text setting keeps '1984' (before: 'Input should be a valid string')."""
    (tmp_path / "catalog.csv").write_text("product,references,generate.config.scale,generate.config.shadow,"
                                          "filter.config.top_k,filter.config.dedupe,mask.config.text\n"
                                          "vase,v.jpg,0.5,1e-1,3,TRUE,1984\n")
    text = RECIPE.format(inputs="catalog: catalog.csv", sweep="").replace("mask: {plugin: classic}",
                                                                           "mask: {plugin: sam-clip, config: {text: x}}")
    (tmp_path / "recipe.yaml").write_text(text)
    plan = load_recipe(tmp_path / "recipe.yaml").products["vase"]
    gen, flt, mask = plan.configs["generate"], plan.configs["filter"], plan.configs["mask"]
    assert (gen.scale, gen.shadow, flt.top_k, flt.dedupe, mask.text) == (0.5, 0.1, 3, True, "1984")


def test_a_number_that_is_not_finite_is_refused(tmp_path):
    """NaN and infinity would pass every bound and end as invalid JSON in the manifest."""
    for cell in ('"[NaN, 0.5]"', '"[1e400, 0.5]"'):
        (tmp_path / "catalog.csv").write_text(f"product,references,generate.config.position\nvase,v.jpg,{cell}\n")
        with pytest.raises(RecipeError, match="position"):
            load_recipe(recipe(tmp_path))
    with pytest.raises(RecipeError, match="finite"):
        load_recipe(recipe(tmp_path, inputs="references: [v.jpg]"), ["generate.config.position=[1e400, 0.5]"])


def test_a_jsonl_string_stays_that_string(tmp_path):
    path = tmp_path / "catalog.jsonl"
    row = {"product": "vase", "references": ["v.jpg"], "generate.config.background": "#000000",
           "generate.config.canvas": "1:1", "generate.config.text": "12", "generate.config.flag": "no",
           "generate.config.scale": 0.5, "generate.config.size": [256, 320]}
    path.write_text(json.dumps(row) + "\n")
    (prod,) = read_catalog(path)
    assert prod.overrides == {"generate.config.background": "#000000", "generate.config.canvas": "1:1",
                              "generate.config.text": "12", "generate.config.flag": "no",
                              "generate.config.scale": 0.5, "generate.config.size": [256, 320]}


def test_a_jsonl_key_given_twice_is_refused_with_its_line(tmp_path):
    # before: JSON's rule, the last value won, so a catalogue row silently lost the first value written
    path = tmp_path / "catalog.jsonl"
    path.write_text('{"product": "vase", "references": ["v.jpg"]}\n\n'
                    '{"product": "can", "references": ["c.jpg"], "prompt": "a", "prompt": "b"}\n')
    with pytest.raises(InputError, match=r"catalog\.jsonl: line 3: the key 'prompt' is given twice"):
        read_catalog(path)
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"product": "can", "references": ["c.jpg"], "generate.config.size": [1, {"a": 1, "a": 2}]}\n')
    with pytest.raises(InputError, match="line 1: the key 'a' is given twice"):
        read_catalog(nested)


def test_catalogue_colours_and_sizes_reach_the_config(tmp_path):
    # before: '#000000' was read as a YAML comment (None: "Input should be a valid string"), a list was refused
    (tmp_path / "catalog.csv").write_text('product,references,generate.config.background,generate.config.size\n'
                                          'vase,v.jpg,#000000,"[128, 64]"\ncan,c.jpg,linear:#ffffff:#d8dee6,\n')
    resolved = load_recipe(recipe(tmp_path))
    assert resolved.products["vase"].configs["generate"].background == "#000000"
    assert resolved.products["vase"].configs["generate"].size == (128, 64)
    assert resolved.products["can"].configs["generate"].background == "linear:#ffffff:#d8dee6"


@pytest.mark.parametrize("raw, value", [
    ("20", 20), ("0.5", 0.5), ("-3", -3), ("1e-3", 0.001), ("true", True), ("False", False), ("null", None),
    ("~", None), ("", ""), ("1:1", "1:1"), ("4:5", "4:5"), ("#000000", "#000000"), (" #000000 ", "#000000"),
    ("no", "no"), ("on", "on"), ("012", "012"), ("2024-01-01", "2024-01-01"), ("a: b", "a: b"),
    ("vase #1 seller", "vase #1 seller"), ('"12"', "12"), ("'#fff'", "#fff"), ('"a" b', '"a" b'),
    ("[1, 2]", [1, 2]), ("[1:1, 4:5]", ["1:1", "4:5"]), ('["#ffffff", "#000000"]', ["#ffffff", "#000000"]),
    ("{a: 1, b: no}", {"a": 1, "b": "no"}), ("[new] tee", "[new] tee"), ("[#000000]", "[#000000]"),
])
def test_set_values_are_core_schema_scalars_or_the_text_as_typed(raw, value):
    ((key, got),) = parse_overrides([f"generate.config.x={raw}"])
    assert key == ["generate", "config", "x"] and got == value and type(got) is type(value)


def test_a_set_colour_reaches_the_config(tmp_path):
    # before: "generate.config.background: Input should be a valid string (got None)"
    path = recipe(tmp_path, inputs="references: [v.jpg]")
    resolved = load_recipe(path, ["generate.config.background=#000000"])
    assert resolved.configs["generate"].background == "#000000"


@pytest.mark.parametrize("raw, needle", [("{a: 1, a: 2}", "duplicate key 'a'"),
                                         ("[" * 5000, "nested too deeply")])
def test_set_values_that_are_not_a_list_or_mapping_one_can_use(raw, needle):
    with pytest.raises(RecipeError, match=needle) as info:
        parse_overrides([f"generate.config.x={raw}"])
    assert info.value.exit_code == 2 and "generate.config.x" in info.value.one_line()


def test_a_catalogue_column_for_a_swept_key_is_refused(tmp_path):
    # before: the sweep's values replaced the column's for every candidate, silently
    (tmp_path / "catalog.csv").write_text("product,references,generate.config.background,generate.config.scale\n"
                                          "can,c.jpg,,0.5\nvase,v.jpg,#000000,\n")
    sweep = 'sweep: {background: ["#f4efe6", "#e9eef2"]}'
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe(tmp_path, sweep=sweep))
    line = info.value.one_line()
    assert "catalog.csv: line 3: column 'generate.config.background'" in line, line
    assert "which the recipe sweeps" in line and "generate.sweep.background" in line
    # an empty cell sets nothing, and a column for a key the recipe does not sweep is fine
    (tmp_path / "catalog.csv").write_text("product,references,generate.config.background,generate.config.scale\n"
                                          "can,c.jpg,,0.5\n")
    resolved = load_recipe(recipe(tmp_path, sweep=sweep))
    assert resolved.products["can"].configs["generate"].scale == 0.5


@pytest.mark.parametrize("bad", ["bogus:#1", "#12345", "red", "linear:#fff:#000", "radial:#ffffff", "linear:#ffffff:red", ""])
def test_a_bad_composite_background_fails_validation_naming_its_sweep_point(tmp_path, bad):
    # before: it validated, and the run failed at that sweep point after writing the earlier candidates
    sweep = f"sweep: {{background: {json.dumps(['#f4efe6', bad])}}}"
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe(tmp_path, inputs="references: [v.jpg]", sweep=sweep))
    line = info.value.one_line()
    assert info.value.exit_code == 2 and "generate.sweep.background" in line
    assert f"(sweep point {{'background': {bad!r}}})" in line, line


@pytest.mark.parametrize("good", ["#ffffff", "f4efe6", " #FFFFFF ", "linear:#ffffff:#d8dee6", "radial:fdf6ec:#e2cdb0",
                                  "backgrounds/studio.jpg", "C:/photos/bg.png", "shots/a:b.png"])
def test_good_composite_backgrounds_validate(tmp_path, good):
    sweep = f"sweep: {{background: {json.dumps([good])}}}"
    assert load_recipe(recipe(tmp_path, inputs="references: [v.jpg]", sweep=sweep)).grid == [{"background": good}]


def test_deep_nesting_is_an_input_error_not_a_recursion_error(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 60000)
    with pytest.raises(InputError, match=r"deep.yaml: line 1 nested too deeply") as info:
        load_recipe(deep)
    assert info.value.exit_code == 2
    (tmp_path / "catalog.jsonl").write_text("[" * 60000 + "\n")
    with pytest.raises(InputError, match=r"catalog.jsonl: line 1: not a JSON row \(nested too deeply\)"):
        load_recipe(recipe(tmp_path, inputs="catalog: catalog.jsonl"))
    (tmp_path / "catalog.csv").write_text(f"product,references,generate.config.size\nvase,v.jpg,{'[' * 5000}\n")
    with pytest.raises(InputError, match=r"catalog.csv: line 2: 'generate.config.size' is nested too deeply"):
        load_recipe(recipe(tmp_path))


@pytest.mark.parametrize("text, line, key", [
    ("name: a\ndescription: x\nname: b\n", 3, "name"),
    ("name: a\ngenerate:\n  plugin: composite\n  config: {scale: 0.5, scale: 0.6}\n", 4, "scale"),
    ("name: a\nscore:\n  - plugin: color\n    weight: 1\n    weight: 2\n", 5, "weight"),
])
def test_a_repeated_key_is_refused_naming_it_and_its_line(tmp_path, text, line, key):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=rf"r.yaml: line {line} duplicate key '{key}' \(first at line \d+\)"):
        read_yaml(path)


def test_merge_keys_are_not_repeats():
    text = "base: &b {steps: 20, scale: 1}\nother: {<<: *b, steps: 30}\n"
    assert safe_load(text) == {"base": {"steps": 20, "scale": 1}, "other": {"steps": 30, "scale": 1}}


@pytest.mark.parametrize("header", ["product,title", "references,title", "Product Name,refs"])
def test_a_missing_column_is_reported_at_the_header_line(tmp_path, header):
    # before: "line 2", the first row's, though the header (line 1) is what lacks it
    path = tmp_path / "catalog.csv"
    path.write_text(f"{header}\nvase,v.jpg\n")
    with pytest.raises(InputError, match=r"catalog.csv: line 1: no '(product|references)' column"):
        read_catalog(path)


def test_a_recipe_file_is_typed_by_the_core_schema(tmp_path):
    """A recipe's own values as written: YAML 1.1 read 'canvas: 16:9' as 969 and 'name: 2024-01-01' as a date."""
    (tmp_path / "v.png").write_bytes(b"")
    text = RECIPE.format(inputs="references: [v.png]", sweep="").replace("name: values", "name: 2024-01-01")
    text = text.replace("scale: 0.7}", "scale: 0.7, background: '#102030'}\n  sweep: {shadow: [.5, 1e-1]}")
    data = safe_load(text)
    assert data["name"] == "2024-01-01" and data["generate"]["sweep"]["shadow"] == [0.5, 0.1]
    assert safe_load("canvas: 16:9\nflag: no\nn: 012\n") == {"canvas": "16:9", "flag": "no", "n": "012"}
    (tmp_path / "r.yaml").write_text(text)
    assert load_recipe(tmp_path / "r.yaml").recipe.name == "2024-01-01"


@pytest.mark.parametrize("override, hint", [
    ("generate.config.background={type}", "quote text that starts with { or ["),
    ("generate.sweep.background=[#ffffff]", "inside [...] a # starts a YAML comment: quote each colour"),
])
def test_an_unquoted_value_that_yaml_reads_otherwise_says_to_quote_it(tmp_path, override, hint):
    (tmp_path / "v.jpg").write_bytes(b"")
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe(tmp_path, inputs="references: [v.jpg]"), [override])
    assert hint in err.value.one_line()
    if "#" in override:  # quoted, it is read as written
        load_recipe(recipe(tmp_path, inputs="references: [v.jpg]"), [override.replace("[#ffffff]", '["#ffffff"]')])
