"""--fail-fast, and an error after work was kept: exit 1 (a product failed), one line that says how to resume."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import toyplugins

TOYCLI = Path(__file__).parent / "toycli.py"


def _cli(*args, cwd):
    return subprocess.run([sys.executable, str(TOYCLI), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_fail_fast_after_a_finished_product_exits_1_and_names_the_folder_to_resume(tmp_path):
    recipe = tmp_path / "two.yaml"
    recipe.write_text(toyplugins.TOY_RECIPE.replace('b: ["seed:3"]', 'b: ["bad:3"]'))
    res = _cli("run", "two.yaml", "--fail-fast", "--progress", "none", "--out", "runs", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    (line,) = res.stderr.splitlines()
    (folder,) = (tmp_path / "runs").iterdir()
    assert line.startswith("error: ") and "bad:3" in line
    assert line.endswith(f"resume with: ecomforge run two.yaml --resume runs/{folder.name})")
    # the command it names goes on in that folder: product a is kept, b is tried again (and recorded)
    again = _cli("run", "two.yaml", "--resume", f"runs/{folder.name}", "--progress", "none", cwd=tmp_path)
    assert again.returncode == 1 and "1 product(s) failed" in again.stderr
    assert "12 candidates" in again.stdout and (folder / "failed.csv").is_file()


def test_bad_input_found_before_any_work_stays_exit_2_without_a_resume_hint(tmp_path):
    recipe = tmp_path / "one.yaml"
    recipe.write_text(toyplugins.TOY_RECIPE.replace('products: {a: ["seed:1", "seed:2"], b: ["seed:3"]}',
                                                    'products: {a: ["bad:1"]}'))
    res = _cli("run", "one.yaml", "--fail-fast", "--progress", "none", "--out", "runs", cwd=tmp_path)
    assert res.returncode == 2
    (line,) = res.stderr.splitlines()
    assert "resume with" not in line and not any((tmp_path / "runs").glob("*/manifest.jsonl"))
