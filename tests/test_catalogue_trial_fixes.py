"""What an outside trial of catalogues found, fixed.

Before: a JSON or YAML catalogue got a CSV error about its header split at ','; ``ecomforge validate`` said "ok"
for photos it had already found missing (it counted them 0) without a word; and a catalogue with several bad
rows was reported one row a run.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecomforge.cli import main
from ecomforge.errors import InputError, RecipeError, UsageError
from ecomforge.recipe import load_recipe
from ecomforge.recipe.catalog import MAX_REPORTED, RowErrors, read_catalog
from ecomforge_classic.acquire import LocalAcquirer

from test_catalogue import SAMPLES, small_photo, write_recipe


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the CLI, which returns without SystemExit when all is well."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


def refused(path: Path) -> str:
    with pytest.raises(InputError) as info:
        read_catalog(path)
    assert info.value.exit_code == 2
    line = info.value.one_line()
    assert str(path) in line and "\n" not in line, line
    return line


# --- 1. a JSON or YAML catalogue is named for what it is --------------------------------------------------------


@pytest.mark.parametrize("name, text, kind, advice", [
    ("catalog.json", '[{"product": "vase", "references": "vase.jpg"}]\n', "a JSON file", "named .jsonl"),
    ("pretty.json", '[\n  {"product": "vase",\n   "references": "vase.jpg"}\n]\n', "a JSON file", "named .jsonl"),
    ("rows.json", '{"product": "vase", "references": "vase.jpg"}\n', "a JSON file", "looks like JSON Lines"),
    ("catalog.yaml", "- product: vase\n  references: vase.jpg\n", "a YAML file", "save it as CSV"),
    ("catalog.yml", "vase: [vase.jpg]\n", "a YAML file", "save it as CSV"),
    ("catalog.txt", "products:\n  vase: vase.jpg\n", "a YAML file", "save it as CSV"),  # by its content
    ("quoted.txt", '"product": vase\n', "a YAML file", "save it as CSV"),  # a CSV reader stops at its first line
    ("book.xlsx", "", "a spreadsheet workbook", "CSV UTF-8"),
])
def test_a_json_yaml_or_workbook_catalogue_is_refused_as_such(tmp_path, name, text, kind, advice):
    path = tmp_path / name
    if name.endswith(".xlsx"):
        path.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\xff\xfe\x00binary")
    else:
        path.write_text(text)
    line = refused(path)
    assert f"{kind} is not a kind of catalogue ecomforge reads" in line, line
    assert ".jsonl" in line and "Shopify" in line and "folder" in line and advice in line, line
    assert "column" not in line.split(";")[0] and "header" not in line, line  # not the CSV reader's complaint


@pytest.mark.parametrize("name", ["catalog.json", "catalog.yaml", "catalog.txt", "catalog"])
def test_a_csv_named_oddly_is_still_read(tmp_path, name):
    path = tmp_path / name
    path.write_text("product,references,title\nvase,vase.jpg,Vase: speckled\n")
    (prod,) = read_catalog(path)
    assert prod.name == "vase" and prod.references == [str(tmp_path / "vase.jpg")]


def test_a_csv_with_the_wrong_columns_still_says_which_even_named_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text("title,name\na,b\n")
    assert "line 1: no 'product' column" in refused(path)
    yaml_looking_csv = tmp_path / "c.csv"
    yaml_looking_csv.write_text("Title: EN,name\na,b\n")  # a header cell with ': ' is a CSV's, not YAML
    assert "line 1: no 'product' column" in refused(yaml_looking_csv)


def test_validate_names_the_json_catalogue_in_one_line(tmp_path, capsys):
    recipe = write_recipe(tmp_path, "catalog.csv")
    (tmp_path / "catalog.json").write_text('[{"product": "vase", "references": "vase.jpg"}]\n')
    code, _, err = cli(capsys, "validate", str(recipe), "--set", f"inputs.catalog={tmp_path / 'catalog.json'}")
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {recipe}: {tmp_path / 'catalog.json'}: a JSON file is not"), err


# --- 2. validate warns of photos it can see are missing ---------------------------------------------------------


def _photo(folder: Path, name: str = "vase.jpg") -> Path:
    return small_photo(SAMPLES / "vase" / "02.jpg", folder / name, size=64)


def test_validate_warns_of_a_product_whose_photo_is_missing_and_stays_ok(tmp_path, capsys):
    (tmp_path / "g.csv").write_text("product,references\nghost,/nope/x.jpg\n")
    recipe = write_recipe(tmp_path, "g.csv")
    for ready in ((), ("--ready",)):  # a missing photo fails its product when it runs: a warning, also with --ready
        code, out, err = cli(capsys, "validate", str(recipe), *ready)
        assert code == 0, err
        assert f"{recipe}: ok (1 product(s), 0 reference(s)" in out
        warnings = [ln for ln in err.splitlines() if ln.startswith("warning:") and "product" in ln]
        assert warnings == [f"warning: {recipe}: product 'ghost' ({tmp_path / 'g.csv'}: line 2): "
                            "no such file /nope/x.jpg"], err


def test_validate_says_which_reference_a_counted_catalogue_lost(tmp_path, capsys):
    """5 products, 6 photos named, one of them missing: 5 references counted, and the warning says why."""
    for n in range(5):
        _photo(tmp_path / "photos", f"p{n}.jpg")
    (tmp_path / "photos" / "empty").mkdir()
    (tmp_path / "cat.csv").write_text(
        "product,references\np0,photos/p0.jpg\np1,photos/p1.jpg;photos/gone.jpg\np2,photos/p2.jpg\n"
        "p3,photos/p3.jpg\np4,photos/p4.jpg\np5,photos/*.png\np6,photos/empty\n")
    recipe = write_recipe(tmp_path, "cat.csv")
    code, out, err = cli(capsys, "validate", str(recipe))
    assert code == 0 and "ok (7 product(s), 5 reference(s)" in out, (out, err)
    cat = tmp_path / "cat.csv"
    assert [ln for ln in err.splitlines() if ln.startswith("warning:")] == [
        f"warning: {recipe}: product 'p1' ({cat}: line 3): no such file {tmp_path / 'photos' / 'gone.jpg'}",
        f"warning: {recipe}: product 'p5' ({cat}: line 7): the pattern {tmp_path / 'photos' / '*.png'} "
        "matches no photos",
        f"warning: {recipe}: product 'p6' ({cat}: line 8): the folder {tmp_path / 'photos' / 'empty'} holds no photos",
    ], err


def test_missing_photo_warnings_are_capped(tmp_path, capsys):
    rows = "".join(f"p{n},missing{n}.jpg\n" for n in range(25))
    (tmp_path / "cat.csv").write_text("product,references\n" + rows)
    recipe = write_recipe(tmp_path, "cat.csv")
    code, _, err = cli(capsys, "validate", str(recipe))
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert code == 0 and len(warnings) == 21, err
    assert warnings[0].endswith(f"no such file {tmp_path / 'missing0.jpg'}")
    assert warnings[-1] == f"warning: {recipe}: ... and 5 more product(s) whose photos are missing"


def test_a_recipes_own_products_are_warned_of_too(tmp_path, monkeypatch):
    _photo(tmp_path)
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path, "unused.csv")
    resolved = load_recipe(recipe, ["inputs.catalog=null", "inputs.products={vase: [vase.jpg], mug: [mug.jpg]}"])
    assert resolved.photo_problems() == (["product 'mug': no such file mug.jpg"], 1)
    assert resolved.products["vase"].unmatched == [] and resolved.products["vase"].reference_count == 1


def test_references_are_looked_up_once_each(tmp_path, monkeypatch):
    """Knowing which reference names nothing costs no look-up more than counting them did: one each."""
    for n in range(3):
        _photo(tmp_path / "photos", f"p{n}.jpg")
    (tmp_path / "cat.csv").write_text("product,references\na,photos/p0.jpg;photos/p1.jpg\nb,photos/*.jpg;nope.jpg\n")
    recipe = write_recipe(tmp_path, "cat.csv")
    seen: list[str] = []
    resolve = LocalAcquirer._resolve

    def counted(self, spec, base_dir, **kwargs):
        seen.append(spec)
        return resolve(self, spec, base_dir, **kwargs)

    monkeypatch.setattr(LocalAcquirer, "_resolve", counted)
    resolved = load_recipe(recipe)
    assert sorted(seen) == sorted(str(tmp_path / s) for s in
                                  ("photos/p0.jpg", "photos/p1.jpg", "photos/*.jpg", "nope.jpg"))
    assert resolved.products["b"].reference_count == 3 and resolved.products["b"].unmatched == [str(tmp_path / "nope.jpg")]


# --- 3. several bad rows are reported at once -------------------------------------------------------------------


def test_several_bad_rows_of_a_catalogue_are_each_named(tmp_path):
    path = tmp_path / "cat.csv"
    path.write_text("product,references,acquire.config.timeout\nb!,a.jpg,\ngood,a.jpg,\n,a.jpg,\n"
                    "c,a.jpg,5\nd,a.jpg,,extra\n")
    with pytest.raises(RowErrors) as info:
        read_catalog(path)
    lines = info.value.lines()
    assert [ln.split(": ")[1] for ln in lines] == ["line 6", "line 2", "line 4", "line 5"], lines
    assert all(ln.startswith(f"{path}: line ") for ln in lines)
    assert info.value.exit_code == 2 and isinstance(info.value, InputError)


def test_rows_refused_before_a_record_that_stops_the_reading_are_named_too(tmp_path):
    path = tmp_path / "cat.csv"
    path.write_text('product,references\na,a.jpg,extra\nb,b.jpg\nc,"c.jpg\n')
    with pytest.raises(RowErrors) as info:
        read_catalog(path)
    assert info.value.lines() == [f"{path}: line 2: more cells than the header has columns",
                                  f"{path}: line 4: unterminated quoted field (a cell that starts with \" must end "
                                  'with "; a " inside it is written "")']


def test_at_most_ten_row_errors_then_how_many_more(tmp_path):
    path = tmp_path / "cat.csv"
    path.write_text("product,references\n" + "".join(f"bad{n}!,a.jpg\n" for n in range(15)))
    with pytest.raises(RowErrors) as info:
        read_catalog(path)
    lines = info.value.lines()
    assert len(lines) == MAX_REPORTED + 1 and lines[-1] == "... and 5 more", lines
    assert lines[0].startswith(f"{path}: line 2: product name 'bad0!'")


def test_one_bad_row_is_the_error_it_always_was(tmp_path):
    path = tmp_path / "cat.csv"
    path.write_text("product,references\nb!,a.jpg\ngood,a.jpg\n")
    with pytest.raises(InputError) as info:
        read_catalog(path)
    assert type(info.value) is InputError and "line 2: product name 'b!'" in info.value.one_line()


def test_bad_settings_of_several_products_are_each_named(tmp_path, capsys):
    """Settings are checked per product (config, sweep point, reference limits): every bad row in one run."""
    _photo(tmp_path)
    _photo(tmp_path, "other.jpg")
    (tmp_path / "cat.csv").write_text(
        "product,references,generate.config.scale,title\n"
        "a,vase.jpg,huge,A\nb,vase.jpg,0.5,{nope}\nc,vase.jpg,x,C\nd,vase.jpg;other.jpg,,D\n")
    recipe = write_recipe(tmp_path, "cat.csv", prompt="{title} on a table")
    limit = "inputs.max_references=1"  # d names two: found when references are counted, after planning
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe, [limit])
    assert isinstance(info.value, RowErrors)
    lines = info.value.lines()
    assert len(lines) == 3 and all(ln.startswith(f"{recipe}: {tmp_path / 'cat.csv'}: line ") for ln in lines), lines
    assert [ln.split("line ")[1][:1] for ln in lines] == ["2", "4", "5"]
    assert "generate.config.scale" in lines[0] and "'huge'" in lines[0] and "'x'" in lines[1]
    assert "product 'd' names more than 1 references" in lines[2]
    code, _, err = cli(capsys, "validate", str(recipe), "--set", limit)
    assert code == 2 and err.splitlines() == [f"error: {ln}" for ln in lines], err
    code, _, err = cli(capsys, "run", str(recipe), "--set", limit, "--out", str(tmp_path / "runs"),
                       "--progress", "none")
    assert code == 2 and err.splitlines() == [f"error: {ln}" for ln in lines], err
    assert not (tmp_path / "runs").exists()


def test_a_jsonl_catalogue_names_each_bad_row(tmp_path):
    path = tmp_path / "cat.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"product": "a", "references": 5}, {"product": "b", "references": "b.jpg"}, {"product": "c"}]) + "\n")
    with pytest.raises(UsageError) as info:
        read_catalog(path)
    assert isinstance(info.value, RowErrors)
    assert [ln.split(": ")[1] for ln in info.value.lines()] == ["line 1", "line 3"]
