"""Catalogue rows as stores and spreadsheets really write them, and the ways they used to be misread.

Before: two WooCommerce products with unsafe SKUs (or no SKU) and one Name were merged into one; an unclosed
quote swallowed the rest of the file without a word; `can[1].jpg` was read as a pattern; a `__MACOSX` folder
stopped a folder catalogue; a product without photos was found only when it ran; multi-line records were named by
their last line; a cp1252 file, a ';' file with a ',' in a quoted header, a blank Shopify Handle and JSON values
of the wrong kind gave messages that did not say what to do; a background photo a cell named was looked for in
the current folder instead of the catalogue's.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecomforge.errors import InputError, RecipeError
from ecomforge.recipe import load_recipe
from ecomforge.recipe.catalog import read_catalog
from ecomforge.recipe.products import anchor_reference
from ecomforge_classic.acquire import LocalAcquirer

from test_catalogue import SAMPLES, small_photo, write_recipe

WOO_HEADER = "ID,Type,SKU,Name,Categories,Images\n"


def names(path: Path) -> list[str]:
    return [p.name for p in read_catalog(path)]


def refused(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        read_catalog(path)
    assert info.value.exit_code == 2 and str(path.name) in info.value.one_line()
    return info.value


# --- 1. distinct products are never merged ----------------------------------------------------------------------


def test_an_unsafe_woocommerce_sku_is_made_file_safe_not_replaced_by_the_name(tmp_path):
    path = tmp_path / "wc.csv"
    path.write_text(WOO_HEADER + "40,simple,BAG 01,Backpack,Bags,a.jpg\n60,simple,BAG 02,Backpack,Bags,b.jpg\n"
                    "30,simple,CLOCK-01,Alarm Clock,Home,c.jpg\n70,simple,,Alarm Clock,Other,d.jpg\n")
    products = {p.name: p for p in read_catalog(path)}
    assert list(products) == ["BAG-01", "BAG-02", "CLOCK-01", "alarm-clock"]
    assert products["BAG-01"].references == [str(tmp_path / "a.jpg")]
    assert products["BAG-02"].references == [str(tmp_path / "b.jpg")]


@pytest.mark.parametrize("rows, needle", [
    # two products without a SKU and one Name
    ("20,simple,,Tin Can (Blue) 330ml,Kitchen,a.jpg\n80,simple,,Tin Can (Blue) 330ml,Other,b.jpg\n",
     "line 3: this product and the one at line 2 both get the name 'tin-can-blue-330ml'"),
    # a SKU made file-safe that another SKU already is
    ("40,simple,BAG 01,Backpack,Bags,a.jpg\n41,simple,BAG-01,Other bag,Bags,b.jpg\n",
     "line 3: this product and the one at line 2 both get the name 'BAG-01'"),
    # no IDs at all: rows of one SKU-less Name are still two products
    (",simple,,Mug,Kitchen,a.jpg\n,simple,,Mug,Kitchen,b.jpg\n", "line 3: this product and the one at line 2"),
])
def test_two_woocommerce_products_with_one_name_are_refused_naming_both_lines(tmp_path, rows, needle):
    path = tmp_path / "wc.csv"
    path.write_text(WOO_HEADER + rows)
    err = refused(path)
    assert needle in err.one_line() and "different SKUs" in err.one_line()


def test_the_same_woocommerce_product_listed_twice_is_still_one_product(tmp_path):
    path = tmp_path / "wc.csv"
    path.write_text(WOO_HEADER + "20,simple,,Mug,Kitchen,a.jpg\n20,simple,,Mug,Kitchen,b.jpg\n")
    (prod,) = read_catalog(path)
    assert prod.name == "mug" and len(prod.references) == 2


@pytest.mark.parametrize("text", [
    "product,references\nVase,a.jpg\nvase,b.jpg\n",
    "Handle,Title,Image Src\nVase,V,a.jpg\nvase,v,b.jpg\n",
])
def test_names_that_differ_only_in_case_are_refused(tmp_path, text):
    # on macOS and Windows 'Vase' and 'vase' are one folder of the run: the two products would overwrite each other
    path = tmp_path / "c.csv"
    path.write_text(text)
    err = refused(path)
    assert "line 3: product 'vase' and 'Vase' (line 2) differ only in case" in err.one_line()


# --- 2. an unclosed quote ---------------------------------------------------------------------------------------


def test_an_unclosed_quote_is_an_error_at_its_record_not_the_rest_of_the_file_swallowed(tmp_path):
    path = tmp_path / "quote2.csv"
    path.write_text('product,references,title\nvase,v.jpg,"Vase 12"" tall\ncan,c.jpg,Can\nclock,k.jpg,Clock\n')
    assert "quote2.csv: line 2: unterminated quoted field" in refused(path).one_line()
    path.write_text('product,references,title\nvase,v.jpg,"Vase 12 tall\ncan,c.jpg,"Can"\n')
    # a quote closed too late, or text after a closing quote: malformed, named at the record's first line
    assert "quote2.csv: line 2: a quoted cell goes on after its closing quote" in refused(path).one_line()
    path.write_text('product,references,title\nvase,v.jpg,"Vase" 12\n')
    assert "quote2.csv: line 2: a quoted cell goes on after its closing quote" in refused(path).one_line()
    path.write_text('product,references,title\nvase,v.jpg,"Vase 12"" tall"\ncan,c.jpg,12" tin\n')
    assert [p.variables["title"] for p in read_catalog(path)] == ['Vase 12" tall', '12" tin']


# --- 3. a file whose name has glob characters -------------------------------------------------------------------


def test_an_existing_file_with_glob_characters_is_that_file(tmp_path, monkeypatch):
    small_photo(SAMPLES / "can" / "00.jpg", tmp_path / "can[1].jpg")
    small_photo(SAMPLES / "vase" / "02.jpg", tmp_path / "can1.jpg")  # what 'can[1].jpg' matches as a pattern
    monkeypatch.chdir(tmp_path)
    acquirer = LocalAcquirer()
    (ref,) = acquirer.acquire(["can[1].jpg"], product="can", base_dir=tmp_path)
    assert Path(ref.source).name == "can[1].jpg"
    (ref,) = acquirer.acquire([str(tmp_path / "can[1].jpg")], product="can", base_dir=tmp_path)
    assert Path(ref.source).name == "can[1].jpg"
    (ref,) = acquirer.acquire(["can[0-9].jpg"], product="can", base_dir=tmp_path)  # a pattern is still a pattern
    assert Path(ref.source).name == "can1.jpg"
    recipe_dir = tmp_path / "recipe"
    small_photo(SAMPLES / "can" / "00.jpg", recipe_dir / "can[1].jpg")
    monkeypatch.chdir(tmp_path.parent)  # a recipe's own reference, found in the recipe's folder
    assert anchor_reference("can[1].jpg", recipe_dir) == str(recipe_dir / "can[1].jpg")


# --- 4. folder catalogues and the name rule ---------------------------------------------------------------------


def test_a_macos_zip_folder_is_not_a_product(tmp_path):
    for name in ("vase", "can", "__MACOSX", ".git"):
        (tmp_path / "products" / name).mkdir(parents=True)
    assert names(tmp_path / "products") == ["can", "vase"]


def test_the_product_name_message_states_the_rule(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("product,references\n_vase,a.jpg\n")
    assert ("product name '_vase' must be 1-200 ASCII letters, digits, '.', '_' or '-', starting with a letter or "
            "digit") in refused(path).one_line()
    path.write_text("product,references\nvasé,a.jpg\n")
    assert "ASCII" in refused(path).one_line()


# --- 5. a product without photos --------------------------------------------------------------------------------


def test_a_product_without_references_is_a_catalogue_error(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("product,references,title\nvase,v.jpg,Vase\nempty,,Empty\ncan,c.jpg,Can\nempty,,Again\n"
                    "none, ; ,None\n")
    err = refused(path).one_line()
    assert "c.csv: lines 3, 5: product 'empty' has no photos (its 'references' cell is empty)" in err
    assert "1 more without: 'none' (line 6)" in err
    path.write_text("product,references,title\nvase,v.jpg,Vase\nvase,,In blue\n")  # a row that only adds columns
    assert names(path) == ["vase"]
    (tmp_path / "c.jsonl").write_text('{"product": "vase", "references": []}\n')
    assert "c.jsonl: line 1: product 'vase' has no photos" in refused(tmp_path / "c.jsonl").one_line()


def test_a_store_product_without_images_is_named_by_handle_and_lines(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("Handle,Title,Image Src\nvase,Vase,v.jpg\ntin-can,Can,\ntin-can,,\n")
    assert ("export.csv: lines 3, 4: product 'tin-can' has no photos (no 'Image Src' on any of its rows)"
            in refused(path).one_line())
    path.write_text(WOO_HEADER + "1,simple,MUG,Mug,Kitchen,\n")
    assert "line 2: product 'MUG' has no photos (its 'Images' cell is empty)" in refused(path).one_line()


def test_a_recipe_cannot_give_an_empty_reference(tmp_path):
    recipe = write_recipe(tmp_path, "c.csv")
    for inputs in ('references: [""]', 'products: {vase: ["a.jpg", " "]}'):
        recipe.write_text(recipe.read_text().replace("catalog: c.csv", inputs))
        with pytest.raises(RecipeError, match="empty"):  # before: '' named the current folder, all of its images
            load_recipe(recipe)
        recipe.write_text(recipe.read_text().replace(inputs, "catalog: c.csv"))


# --- 6. line numbers of multi-line records ----------------------------------------------------------------------


def test_a_multi_line_record_is_named_by_the_line_it_starts_on(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('product,references,title\nvase,v.jpg,"Vase\nwith\nlines"\n\ncan,c.jpg,Can\n'
                    'clock,k.jpg,"a\r\nb",1\n')
    with pytest.raises(InputError, match=r"c.csv: line 7: more cells than the header"):
        read_catalog(path)
    path.write_text('product,references,title\nvase,v.jpg,"Vase\nwith\nlines"\n\ncan,c.jpg,Can\n')
    assert [p.where.rsplit(": ", 1)[1] for p in read_catalog(path)] == ["line 2", "line 6"]
    (tmp_path / "c.csv").write_text('product,references,title,generate.config.scale\n'
                                    'vase,v.jpg,"Vase\nwith\nlines",0.5\ncan,c.jpg,Can,huge\n')
    with pytest.raises(RecipeError) as info:
        load_recipe(write_recipe(tmp_path, "c.csv"))
    assert "c.csv: line 5: generate.config.scale" in info.value.one_line()


# --- 7. an encoding other than UTF-8 ----------------------------------------------------------------------------


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_latin1_file_names_its_line_and_says_to_save_it_as_csv_utf8(tmp_path, bom):
    path = tmp_path / "c.csv"
    path.write_bytes(bom + "product,references,title\nvase,v.jpg,Vase\ncafe,c.jpg,Café\n".encode("cp1252"))
    err = refused(path)
    assert "c.csv: line 3: not UTF-8 text (byte 0xe9)" in err.one_line() and '"CSV UTF-8"' in err.one_line()
    assert "codec" not in err.one_line() and "position" not in err.one_line()


# --- 8. the separator -------------------------------------------------------------------------------------------


def test_a_comma_inside_a_quoted_header_cell_does_not_make_a_semicolon_file_comma_separated(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('product;references;title;"Preis, EUR"\nvase;v.jpg;Vase;12,50\n')
    (prod,) = read_catalog(path)
    assert prod.variables["preis_eur"] == "12,50" and prod.references == [str(tmp_path / "v.jpg")]


def test_a_missing_column_says_which_separator_split_the_header(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("product;references;title,size\nvase;v.jpg;Vase,12\n")
    err = refused(path).one_line()
    assert "line 1: no 'product' column" in err and "split at ','" in err and "no ',' outside quotes" in err
    path.write_text("product;title\nvase;Vase\n")
    assert "no 'references' column" in refused(path).one_line() and "split at ';'" in refused(path).one_line()


# --- 9. Shopify's Handle ----------------------------------------------------------------------------------------


def test_a_blank_shopify_handle_says_every_row_repeats_it(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text('Handle,Title,Image Src\nvase,"Vase\ntall",a.jpg\n,,b.jpg\n')
    assert ("export.csv: line 4: empty Handle (every row of a product repeats its handle)"
            in refused(path).one_line())


# --- 10. JSON values of the wrong kind --------------------------------------------------------------------------


@pytest.mark.parametrize("row, needle", [
    ({"product": "vase", "references": 5}, "'references' must be text or a list of texts, got int"),
    ({"product": "vase", "references": ["a.jpg", 5]}, "'references' must list texts"),
    ({"product": "vase", "references": {"a": "b"}}, "'references' must be text or a list of texts, got dict"),
    ({"product": "vase", "references": "a.jpg", "title": {"en": "Vase"}}, "column 'title' is a JSON object"),
    ({"product": "vase", "references": "a.jpg", "tags": ["a", ["b"]]}, "column 'tags' is a list holding a list"),
])
def test_a_jsonl_value_of_the_wrong_kind_is_refused(tmp_path, row, needle):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(row) + "\n")
    err = refused(path).one_line()
    assert "c.jsonl: line 1: " in err and needle in err


def test_jsonl_lists_and_numbers_still_make_variables(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"product": 12, "references": ["a.jpg"], "tags": ["a", 2], "size": 30}) + "\n")
    (prod,) = read_catalog(path)
    assert prod.name == "12" and prod.variables["tags"] == "a, 2" and prod.variables["size"] == "30"


# --- 11. a path a cell names ------------------------------------------------------------------------------------


def test_a_background_photo_a_cell_names_is_the_catalogue_folders(tmp_path, monkeypatch):
    catdir = tmp_path / "catdir"
    small_photo(SAMPLES / "vase" / "02.jpg", catdir / "v.jpg")
    small_photo(SAMPLES / "can" / "00.jpg", catdir / "wood.jpg")
    (catdir / "bg.csv").write_text("product,references,generate.config.background\nvase,v.jpg,wood.jpg\n"
                                   "can,v.jpg,#102030\nclock,v.jpg,linear:#ffffff:#000000\n"
                                   f"duck,v.jpg,{catdir / 'wood.jpg'}\n")
    recipe = write_recipe(tmp_path / "recipes", "../catdir/bg.csv")
    monkeypatch.chdir(tmp_path)  # neither the current folder nor the recipe's has wood.jpg
    products = load_recipe(recipe).products
    assert products["vase"].configs["generate"].background == str(catdir / "wood.jpg")
    assert products["can"].configs["generate"].background == "#102030"  # a colour is not a path
    assert products["clock"].configs["generate"].background == "linear:#ffffff:#000000"
    assert products["duck"].configs["generate"].background == str(catdir / "wood.jpg")
    assert products["vase"].references == [str(catdir / "v.jpg")]


def test_a_long_shopify_handle_is_a_product_name(tmp_path):
    # before: names were limited to 64 characters, and real Shopify handles (up to 255) are often longer
    handle = "mens-organic-cotton-crew-neck-t-shirt-with-embroidered-logo-in-forest-green-size-xl"
    (tmp_path / "v.jpg").write_bytes(b"")
    path = tmp_path / "export.csv"
    path.write_text(f"Handle,Title,Image Src\n{handle},Tee,v.jpg\n{'x' * 201},Long,v.jpg\n")
    with pytest.raises(InputError, match=r"line 3: product name 'x{201}' must be 1-200"):
        read_catalog(path)
    path.write_text(f"Handle,Title,Image Src\n{handle},Tee,v.jpg\n")
    (prod,) = read_catalog(path)
    assert prod.name == handle and len(handle) > 64
