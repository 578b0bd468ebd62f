"""The plugin-author helpers: a full recipe run with toy stages in a few lines."""
from __future__ import annotations

import toyplugins
from ecomforge.plugins import get_registry
from ecomforge.testing import read_manifest, run_test_recipe


def test_full_run_with_toy_stages(tmp_path):
    result = run_test_recipe(toyplugins.TOY_RECIPE, tmp_path, toyplugins)
    records = read_manifest(result.run_dir)
    # 3 references x 2 sweep points x 3 seeds; toy-top keeps half of each product's candidates.
    assert len(records) == len(result.records) == 18
    assert {r["product"] for r in records} == {"a", "b"}
    assert sum(r["kept"] for r in records if r["product"] == "a") == 6
    assert all((result.run_dir / r["image"]).is_file() for r in records)


def test_the_plugins_do_not_leak(tmp_path):
    run_test_recipe(toyplugins.TOY_RECIPE, tmp_path, toyplugins)
    assert "toy-top" not in get_registry().plugins["filter"]
