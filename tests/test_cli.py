"""The CLI: exit codes 0/1/2, one-line errors, plugins listing, schema, validate."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TOYCLI = [sys.executable, str(Path(__file__).parent / "toycli.py")]


def cli(*args, cwd=None):
    return subprocess.run([*TOYCLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _one_error_line(res):
    lines = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_run_ok(toy_recipe, tmp_path):
    res = cli("run", str(toy_recipe), "--out", str(tmp_path), "--progress", "none")
    assert res.returncode == 0, res.stderr
    assert "18 candidates, 9 kept" in res.stdout


@pytest.mark.parametrize("args, needle", [
    (["run", "missing.yaml"], "missing.yaml"),
    (["run", "{recipe}", "--set", "generate.config.levle=3"], "generate.config.levle"),
    (["run", "{recipe}", "--set", "generate.plugin=toi"], "did you mean 'toy'?"),
    (["run", "{recipe}", "--products", "a,c"], "no product 'c'"),
    (["run", "{recipe}", "--set", "inputs.products.b=[]"], "no references"),
    (["run", "{recipe}", "--resume", "{tmp}/not-a-run"], "not a run folder"),
    (["validate", "{recipe}", "--set", "score.0.weight=-1"], "score.0.weight"),
    (["validate", "{recipe}", "--device", "../../etc/passwd"], "'--device': '../../etc/passwd' is not one of"),
    (["compare", "{recipe}", "{recipe}", "--device", "cuda:0"], "'--device': 'cuda:0' is not one of"),
    (["run"], "Missing argument"),
])
def test_bad_input_one_line_exit_2(toy_recipe, tmp_path, args, needle):
    args = [a.format(recipe=toy_recipe, tmp=tmp_path) for a in args]
    if "--resume" in args:
        (tmp_path / "not-a-run").mkdir()
    own_out = args[0] == "run" and len(args) > 1 and "--resume" not in args  # --resume refuses --out
    res = cli(*args, "--out", str(tmp_path / "o")) if own_out else cli(*args)
    assert res.returncode == 2, (res.returncode, res.stderr)
    if needle != "Missing argument":
        assert needle in _one_error_line(res)
    else:
        assert needle in res.stderr


def test_unwritable_output_folder(toy_recipe, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = cli("run", str(toy_recipe), "--out", str(blocker / "sub"))
    assert res.returncode == 2
    assert "cannot write the run folder" in _one_error_line(res)


def test_verbose_shows_traceback(toy_recipe, tmp_path):
    res = cli("--verbose", "run", str(toy_recipe), "--set", "inputs.products.b=[nope]", "--fail-fast", "--out", str(tmp_path))
    assert res.returncode == 1 and "Traceback" in res.stderr  # product a was made first: a product failed


def test_verbose_may_follow_the_command(toy_recipe, tmp_path):
    """Errors say "run with --verbose": the flag works after the command too."""
    res = cli("run", str(toy_recipe), "--set", "inputs.products.b=[nope]", "--fail-fast", "--out", str(tmp_path), "-v")
    assert res.returncode == 1 and "Traceback" in res.stderr
    quiet = cli("run", str(toy_recipe), "--set", "inputs.products.b=[nope]", "--fail-fast", "--out", str(tmp_path))
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr


def test_validate_ok_and_bad(toy_recipe, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(toy_recipe.read_text().replace("plugin: toy-top", "plugin: toy-topp"))
    res = cli("validate", str(toy_recipe), str(bad))
    assert res.returncode == 2
    assert f"{toy_recipe}: ok" in res.stdout
    assert "did you mean 'toy-top'?" in res.stderr


def test_validate_names_every_stage_not_ready_here_and_fails_on_it_with_ready(toy_recipe):
    """A valid recipe whose model is not on disk is still valid (exit 0), but validate says it cannot run here and
    why, naming the key; with --ready it is an error (exit 2). A ready recipe prints no such line."""
    ok = cli("validate", str(toy_recipe), "--ready")
    assert ok.returncode == 0 and "not ready" not in ok.stderr, ok.stderr
    args = ("validate", str(toy_recipe), "--set", "generate.config.model=missing:big-model")
    warned = cli(*args)
    assert warned.returncode == 0, warned.stderr
    assert f"{toy_recipe}: ok" in warned.stdout
    line = [ln for ln in warned.stderr.splitlines() if "not ready" in ln]
    assert len(line) == 1 and line[0].startswith(f"warning: {toy_recipe}: not ready to run here: "), warned.stderr
    assert "generate.config.model: model 'missing:big-model' is not downloaded" in line[0]
    strict = cli(*args, "--ready")
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert _one_error_line(strict).startswith(f"error: {toy_recipe}: not ready to run here: generate plugin 'toy'")


def test_plugins_json_lists_configs_and_broken_plugins(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text(
        "import sys; sys.path.insert(0, %r)\n"
        "import toyplugins\n"
        "from ecomforge import hookimpl\n"
        "from ecomforge.cli import main\n"
        "from ecomforge.testing import temporary_plugins\n"
        "class Broken:\n"
        "    @hookimpl\n"
        "    def register_maskers(self, register):\n"
        "        raise ImportError('No module named segment_anything_missing')\n"
        "with temporary_plugins(toyplugins, Broken()):\n"
        "    main(sys.argv[1:])\n" % str(Path(__file__).parent))
    res = subprocess.run([sys.executable, str(script), "plugins", "--json"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr  # something failed to load: the listing says so in its exit code
    data = json.loads(res.stdout)
    toy = [p for p in data["plugins"] if p["name"] == "toy" and p["kind"] == "generator"][0]
    assert "level" in toy["config_schema"]["properties"]
    assert any("segment_anything_missing" in e["error"] for e in data["errors"])
    res = subprocess.run([sys.executable, str(script), "plugins"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "failed to load" in res.stdout


def test_schema_is_json_with_plugin_configs():
    res = cli("schema")
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    assert "generate" in schema["properties"]
    assert "toy" in schema["properties"]["generate"]["x-plugins"]
    assert "generator:toy" in schema["$defs"]


def test_help_does_not_import_torch():
    code = "import sys; from ecomforge.cli import cli; import ecomforge.recipe, ecomforge.run.runner; " \
           "print('torch' in sys.modules, 'diffusers' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False False"


def test_core_model_helpers_import_no_ml_framework():
    """ecomforge.clip and ecomforge.models load torch, open_clip, transformers and diffusers on first use only."""
    code = "import sys; import ecomforge.clip, ecomforge.models, ecomforge.jsonl; " \
           "print([m for m in ('torch', 'diffusers', 'transformers', 'open_clip') if m in sys.modules])"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr


def test_a_failed_product_is_recorded_the_others_finish_exit_1(toy_recipe, tmp_path):
    res = cli("run", str(toy_recipe), "--out", str(tmp_path / "runs"), "--progress", "none",
              "--set", "inputs.products.b=[nope]")
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert "1 product(s) failed" in res.stderr and "b: acquire failed in plugin 'toy'" in res.stderr
    assert "12 candidates" in res.stdout  # product a (2 references x 2 sweep points x 3 seeds) finished
    run_dir = next((tmp_path / "runs").iterdir())
    rows = (run_dir / "failed.csv").read_text().splitlines()
    assert rows[0] == "product,step,plugin,reason" and rows[1].startswith("b,acquire,toy,") and len(rows) == 2
    assert "nope" in rows[1]


def test_products_and_limit_run_part_of_the_recipe(toy_recipe, tmp_path):
    res = cli("run", str(toy_recipe), "--out", str(tmp_path / "p"), "--progress", "none", "--products", "b")
    assert res.returncode == 0, res.stderr
    assert "6 candidates" in res.stdout  # b alone: 1 reference x 2 sweep points x 3 seeds
    res = cli("run", str(toy_recipe), "--out", str(tmp_path / "l"), "--progress", "none", "--limit", "1")
    assert res.returncode == 0, res.stderr
    from ecomforge.run.store import read_manifest

    assert {r["product"] for r in read_manifest(next((tmp_path / "l").iterdir()))} == {"a"}
