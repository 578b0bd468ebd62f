"""The generated references are current, and every recipe in recipes/ validates offline."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_generated_docs_are_current():
    res = subprocess.run([sys.executable, str(ROOT / "scripts/gen_docs.py"), "--check"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_generated_docs_leave_out_third_party_plugins():
    """The example plugin is installed like a third-party one: it must not appear in the project's docs."""
    res = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'scripts'); import gen_docs; "
                          "gen_docs.skip_third_party(); print(gen_docs.recipe_reference())"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "`sharpness` (ecomforge-sharpness)" not in res.stdout and "`composite`" in res.stdout


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "recipes").glob("*.yaml")))
def test_shipped_recipes_validate(recipe):
    exe = Path(sys.executable).parent / "ecomforge"
    path = ROOT / "recipes" / recipe
    # Training recipes (base_model + instance_prompt) are checked by `ecomforge train --check`.
    args = ["train", str(path), "--check"] if "base_model:" in path.read_text() else ["validate", str(path)]
    res = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
