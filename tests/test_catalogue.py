"""Catalogue inputs end to end with the offline plugins: CSV, Shopify export, folder; per-product prompts in the PNGs."""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ecomforge.errors import InputError, RecipeError, UsageError
from ecomforge.recipe import load_recipe
from ecomforge.recipe.catalog import read_catalog, variable_name
from ecomforge.recipe.products import fill
from ecomforge.run.runner import run_recipe
from ecomforge.run.store import read_manifest

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "dreambench"
DATA = Path(__file__).parent / "data"

# The offline stages, small: one reference, one sweep point, one seed per product.
RECIPE = """
name: cat
inputs:
  catalog: {catalog}
  prompt: "{prompt}"
  negative_prompt: "blurry"
mask: {{plugin: classic, config: {{working_size: 128, feather: 1}}}}
generate:
  plugin: composite
  config: {{size: [96, 96], scale: 0.7}}
  sources: first
  seeds: [1]
score: [{{plugin: color}}]
filter: {{plugin: threshold, config: {{min_score: 0.0}}}}
output: {{dir: runs}}
"""


def small_photo(src: Path, dst: Path, size: int = 128) -> Path:
    """A downscaled copy of a sample photo (the full-size ones would only slow the tests)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im.convert("RGB").resize((size, size)).save(dst, quality=95)
    return dst


def write_recipe(folder: Path, catalog: str, prompt: str = "{product} on a marble counter") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(RECIPE.format(catalog=catalog, prompt=prompt))
    return path


def prompts_in_pngs(run_dir: Path) -> dict[str, str]:
    """product -> the prompt line of its candidates' PNG ``parameters`` text (the same for all of them)."""
    out: dict[str, set[str]] = {}
    for rec in read_manifest(run_dir):
        with Image.open(run_dir / rec["image"]) as im:
            out.setdefault(rec["product"], set()).add(im.text["parameters"].splitlines()[0])
    assert all(len(v) == 1 for v in out.values()), out
    return {k: v.pop() for k, v in out.items()}


def test_csv_catalogue_prompts_and_overrides_per_product(tmp_path, monkeypatch):
    small_photo(SAMPLES / "vase" / "02.jpg", tmp_path / "shop" / "photos" / "vase.jpg")
    small_photo(SAMPLES / "can" / "00.jpg", tmp_path / "shop" / "photos" / "can.jpg")
    (tmp_path / "shop" / "catalog.csv").write_text(
        "product,references,title,type,generate.config.scale\n"
        "vase,photos/vase.jpg,Speckled Vase,vase,\n"
        'can,photos/can.jpg,"Tin can, retro {product}",can,0.5\n')
    recipe = write_recipe(tmp_path / "recipes", "../shop/catalog.csv", prompt="{title} on a marble counter")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # references resolve against the catalogue's folder, not the working folder
    result = run_recipe(load_recipe(recipe), out=tmp_path / "runs")
    assert result.summary["failed_products"] == []
    # a catalogue value is text: its braces are never filled in (no template injection)
    assert prompts_in_pngs(result.run_dir) == {"vase": "Speckled Vase on a marble counter",
                                               "can": "Tin can, retro {product} on a marble counter"}
    scale = {r["product"]: r["params"]["scale"] for r in result.records}
    assert scale == {"vase": 0.7, "can": 0.5}  # the column named after a recipe key overrode it for 'can'
    assert {r["prompt"] for r in result.records if r["product"] == "can"} == {"Tin can, retro {product} on a marble counter"}
    # the report shows each product's own prompt, as filled in from its row
    report = (result.run_dir / "report.html").read_text()
    section = {p: report.split(f"<h2>{p}</h2>", 1)[1].split("<h2", 1)[0] for p in ("vase", "can")}
    assert "Prompt: Speckled Vase on a marble counter<br>Negative prompt: blurry" in section["vase"]
    assert "Prompt: Tin can, retro {product} on a marble counter" in section["can"]
    # the stored recipe names the catalogue by its absolute path: --resume works from any folder
    stored = (result.run_dir / "recipe.yaml").read_text()
    assert str((tmp_path / "shop" / "catalog.csv").resolve()) in stored


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def cdn(tmp_path):
    """A local stand-in for Shopify's CDN serving small copies of the sample photos."""
    root = tmp_path / "cdn"
    small_photo(SAMPLES / "vase" / "02.jpg", root / "vase-02.jpg")
    small_photo(SAMPLES / "vase" / "03.jpg", root / "vase-03.jpg")
    small_photo(SAMPLES / "can" / "00.jpg", root / "can-00.jpg")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_shopify_export_as_it_comes(tmp_path, cdn):
    text = (DATA / "shopify_products_export.csv").read_text()
    export = tmp_path / "products_export_1.csv"
    export.write_text(text.replace("https://cdn.shopify.com/s/files/1/0523/8845/1234/products/", cdn))
    recipe = write_recipe(tmp_path, str(export), prompt="{title} by {vendor}, {type}, studio photo")
    # The stand-in CDN listens on 127.0.0.1, which downloads refuse unless the recipe allows private hosts.
    recipe.write_text(recipe.read_text() + "acquire: {plugin: local, config: {allow_private_hosts: true}}\n")
    resolved = load_recipe(recipe)
    vase = resolved.products["ceramic-vase"]
    assert len(vase.references) == 2 and vase.references[0].startswith(cdn)  # both Image Src rows
    assert resolved.products["tin-can"].prompt == "Retro Tin Can by Atelier Nord, Storage Tin, studio photo"
    result = run_recipe(resolved, out=tmp_path / "runs")
    assert prompts_in_pngs(result.run_dir) == {
        "ceramic-vase": "Speckled Ceramic Vase by Atelier Nord, Vase, studio photo",
        "tin-can": "Retro Tin Can by Atelier Nord, Storage Tin, studio photo"}


def test_shopify_columns_are_template_variables(tmp_path):
    export = tmp_path / "export.csv"
    shutil.copy(DATA / "shopify_products_export.csv", export)
    recipe = write_recipe(tmp_path, str(export), prompt="{title} ({tags}) {body_html} {seo_title}")
    plan = load_recipe(recipe).products["ceramic-vase"]
    assert plan.prompt.startswith("Speckled Ceramic Vase (ceramics, home, gift) <p>Hand-thrown")
    assert "\n" not in plan.prompt  # a multi-line cell cannot break the PNG's parameters text


def test_folder_catalogue_from_the_samples(tmp_path):
    for name, photo in (("vase", "02.jpg"), ("can", "00.jpg")):
        small_photo(SAMPLES / name / photo, tmp_path / "products" / name / photo)
    (tmp_path / "products" / "notes.txt").write_text("not a product")
    recipe = write_recipe(tmp_path, "products", prompt="a {product} on a beach")
    resolved = load_recipe(recipe)
    assert list(resolved.products) == ["can", "vase"]
    result = run_recipe(resolved, out=tmp_path / "runs")
    assert result.summary["failed_products"] == []
    assert prompts_in_pngs(result.run_dir) == {"can": "a can on a beach", "vase": "a vase on a beach"}


@pytest.mark.parametrize("catalog, prompt, needle", [
    ("product,references,title\nvase,v.jpg,Vase\n", "{titel} photo", "line 2: inputs.prompt: unknown template variable {titel}"),
    ("product,references,generate.config.scale\nvase,v.jpg,huge\n", "{product}", "line 2: generate.config.scale"),
    ("product,references,output.dir\nvase,v.jpg,/etc\n", "{product}", "line 2: column 'output.dir' is not a recipe key"),
    ("product,references,mask.plugin\nvase,v.jpg,upload\n", "{product}", "column 'mask.plugin' is not a recipe key"),
    ("product,references\n../../etc,v.jpg\n", "{product}", "line 2: product name '../../etc'"),
    ("product,refs\nvase,v.jpg\n", "{product}", "no 'references' column"),
])
def test_bad_catalogue_fails_before_any_work_naming_file_and_line(tmp_path, catalog, prompt, needle):
    (tmp_path / "catalog.csv").write_text(catalog)
    recipe = write_recipe(tmp_path, "catalog.csv", prompt=prompt)
    with pytest.raises((RecipeError, InputError)) as info:
        load_recipe(recipe)
    assert info.value.exit_code == 2
    assert needle in info.value.one_line() and "catalog.csv" in info.value.one_line()


def test_products_and_limit_select_part_of_a_catalogue(tmp_path):
    rows = "".join(f"p{i},x{i}.jpg\n" for i in range(5))
    (tmp_path / "catalog.csv").write_text("product,references\n" + rows)
    resolved = load_recipe(write_recipe(tmp_path, "catalog.csv"))
    resolved.select(["p3", "p1"], None)
    assert list(resolved.products) == ["p1", "p3"]  # catalogue order
    resolved.select(None, 1)
    assert list(resolved.products) == ["p1"]
    with pytest.raises(UsageError) as info:
        resolved.select(["p11"], None)
    assert "no product 'p11'" in info.value.one_line() and "did you mean 'p1'" in info.value.one_line()


# --- parsers and templates, property-tested ---------------------------------------------------


_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@given(values=st.dictionaries(_names, st.text(max_size=40), min_size=1, max_size=5), literal=st.text(max_size=20))
def test_fill_puts_values_in_verbatim_and_never_expands_them(values, literal):
    names = sorted(values)
    template = literal.replace("{", "{{").replace("}", "}}") + "".join(f"[{{{n}}}]" for n in names)
    assert fill(template, values, "x") == literal + "".join(f"[{values[n]}]" for n in names)


@given(name=_names, known=st.dictionaries(_names, st.text(max_size=5), max_size=3))
def test_fill_refuses_an_unknown_variable_naming_it(name, known):
    known.pop(name, None)
    with pytest.raises(RecipeError) as info:
        fill("{" + name + "}", known, "cat.csv: line 2")
    assert f"unknown template variable {{{name}}}" in info.value.one_line()


_cell = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["a", "b-2", "c.3"]), _cell, _cell), min_size=1, max_size=6))
def test_any_csv_cells_round_trip_into_variables_without_control_characters(tmp_path_factory, rows):
    import csv as csv_mod
    import io
    import re

    buf = io.StringIO()
    w = csv_mod.writer(buf)
    w.writerow(["product", "references", "Title", "Notes"])
    for prod, title, notes in rows:
        w.writerow([prod, "x.jpg", title, notes])
    path = tmp_path_factory.mktemp("cat") / "catalog.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    products = {p.name: p for p in read_catalog(path)}
    assert list(products) == list(dict.fromkeys(r[0] for r in rows))  # catalogue order, one per product
    for prod, _, _ in rows:
        got = products[prod].variables["title"]
        assert len(got.splitlines()) <= 1  # one line, whatever the cell held
        first = next((t for p, t, _ in rows if p == prod and t.strip()), "")  # the first non-empty cell
        assert got == re.sub("[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ", first).strip()
        assert products[prod].references == [str(path.parent / "x.jpg")] * sum(r[0] == prod for r in rows)


def test_variable_names():
    assert variable_name("Image Src") == "image_src"
    assert variable_name("Body (HTML)") == "body_html"
    assert variable_name("Google Shopping / MPN") == "google_shopping_mpn"


def test_jsonl_catalogue_keeps_types_and_lists(tmp_path):
    (tmp_path / "c.jsonl").write_text(
        '{"product": "vase", "references": ["a.jpg", "b/*.jpg"], "title": "Vase", "generate.config.scale": 0.5,'
        ' "tags": ["blue", "ceramic"]}\n\n{"product": "vase", "references": "https://example.com/c.jpg"}\n')
    (prod,) = read_catalog(tmp_path / "c.jsonl")
    assert prod.references == [str(tmp_path / "a.jpg"), str(tmp_path / "b/*.jpg"), "https://example.com/c.jpg"]
    assert prod.overrides == {"generate.config.scale": 0.5} and prod.variables["tags"] == "blue, ceramic"
    (tmp_path / "bad.jsonl").write_text('{"product": "x", "references": "a.jpg"}\n[1, 2]\n')
    with pytest.raises(InputError, match=r"bad.jsonl: line 2: a row must be a JSON object"):
        read_catalog(tmp_path / "bad.jsonl")


def test_woocommerce_export(tmp_path):
    (tmp_path / "wc-product-export.csv").write_text(
        "ID,Type,SKU,Name,Published,Short description,Categories,Tags,Images,Parent\n"
        '101,variable,MUG-01,Stoneware Mug,1,"A mug, glazed",Kitchen > Mugs,"mug, gift",'
        '"https://shop.example/wp-content/uploads/mug-1.jpg, https://shop.example/wp-content/uploads/mug-2.jpg",\n'
        "102,variation,MUG-01-BLUE,Stoneware Mug - Blue,1,,,,https://shop.example/wp-content/uploads/mug-blue.jpg,id:101\n"
        ",simple,,Linen Tea Towel,1,Soft linen,Kitchen,,https://shop.example/wp-content/uploads/towel.jpg,\n")
    products = {p.name: p for p in read_catalog(tmp_path / "wc-product-export.csv")}
    assert list(products) == ["MUG-01", "linen-tea-towel"]
    assert len(products["MUG-01"].references) == 2 and products["MUG-01"].variables["categories"] == "Kitchen > Mugs"


def test_conflicting_overrides_for_one_product_name_both_lines(tmp_path):
    (tmp_path / "c.csv").write_text("product,references,prompt\nvase,a.jpg,on sand\nvase,b.jpg,on snow\n")
    with pytest.raises(InputError, match=r"c.csv: line 3: 'prompt' is 'on snow' here but 'on sand' at .*line 2"):
        read_catalog(tmp_path / "c.csv")


@settings(max_examples=60, deadline=None)
@given(name=st.text(max_size=230))
def test_only_file_safe_product_names_get_through(tmp_path_factory, name):
    import json as json_mod
    import re

    path = tmp_path_factory.mktemp("names") / "c.jsonl"
    path.write_text(json_mod.dumps({"product": name, "references": "x.jpg"}) + "\n", encoding="utf-8")
    safe = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}", name.strip()) is not None
    try:
        (prod,) = read_catalog(path)
    except InputError as exc:
        assert not safe and "c.jsonl: line 1" in exc.one_line()
    else:
        assert safe and prod.name == name.strip() and "/" not in prod.name and prod.name not in (".", "..")


def test_string_settings_take_templates_and_bad_results_name_the_line(tmp_path):
    (tmp_path / "catalog.csv").write_text("product,references,stand\nvase,v.jpg,bottom\ncan,c.jpg,sideways\n")
    recipe = write_recipe(tmp_path, "catalog.csv")
    recipe.write_text(recipe.read_text().replace("scale: 0.7}", 'scale: 0.7, placement: "{stand}"}'))
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    assert "catalog.csv: line 3: generate.config.placement" in info.value.one_line()
    (tmp_path / "catalog.csv").write_text("product,references,stand\nvase,v.jpg,bottom\ncan,c.jpg,center\n")
    resolved = load_recipe(recipe)
    assert resolved.products["vase"].configs["generate"].placement == "bottom"
    assert resolved.products["can"].configs["generate"].placement == "center"
    assert resolved.to_dict()["generate"]["config"]["placement"] == "{stand}"  # the stored recipe keeps the template
    small_photo(SAMPLES / "vase" / "02.jpg", tmp_path / "v.jpg")
    small_photo(SAMPLES / "can" / "00.jpg", tmp_path / "c.jpg")
    result = run_recipe(resolved, out=tmp_path / "runs")
    assert {r["product"]: r["params"]["placement"] for r in result.records} == {"vase": "bottom", "can": "center"}
    again = run_recipe(load_recipe(recipe), resume=result.run_dir)  # the stored templates resolve the same
    assert sorted(r["id"] for r in again.records) == sorted(r["id"] for r in result.records)
