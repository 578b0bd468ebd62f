"""Catalogues as spreadsheets really save them: ';' or tab separators, and columns that clash."""
from __future__ import annotations

import csv

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecomforge.errors import InputError
from ecomforge.recipe.catalog import read_catalog

_CELL = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(delimiter=st.sampled_from([",", ";", "\t"]), titles=st.lists(_CELL, min_size=1, max_size=4))
def test_a_catalogue_reads_the_same_whatever_its_separator(tmp_path, delimiter, titles):
    # before: a ';'-separated export (what spreadsheets save in many locales) was one column, "no 'product' column"
    path = tmp_path / f"cat{ord(delimiter)}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(["product", "references", "title"])
        for i, title in enumerate(titles):
            writer.writerow([f"p{i}", f"photos/p{i}a.jpg;photos/p{i}b.jpg", title])
    products = read_catalog(path)
    assert [p.name for p in products] == [f"p{i}" for i in range(len(titles))]
    assert [p.variables["title"] for p in products] == [t.strip() for t in titles]
    assert [len(p.references) for p in products] == [2] * len(titles)


@pytest.mark.parametrize("header", ["product,references,title,title", "product,references,Title,title ",
                                    "product,references,Image Src,image_src"])
def test_two_columns_that_are_one_variable_are_refused(tmp_path, header):
    # before: the later column silently replaced the earlier one in every prompt
    path = tmp_path / "cat.csv"
    path.write_text(header + "\nv,a.jpg,x,y\n")
    with pytest.raises(InputError, match=r"cat.csv: line 1: columns '.+' and '.+' are the same column \(\{\w+\}\)"):
        read_catalog(path)


def test_a_comma_header_keeps_semicolons_in_cells(tmp_path):
    path = tmp_path / "cat.csv"
    path.write_text('product,references,title\nv,a.jpg;b.jpg,"one; two"\n')
    (prod,) = read_catalog(path)
    assert prod.variables["title"] == "one; two" and len(prod.references) == 2
