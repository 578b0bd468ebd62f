"""The CLI's error contract: bad input is one line starting with `error:` (exit 2), Ctrl-C names the folder to resume."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import toyplugins

TOYCLI = Path(__file__).parent / "toycli.py"


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, str(TOYCLI), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _only_line(res) -> str:
    """stderr is a single line starting with `error:` (no Usage/Try lines, no traceback)."""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def _single_product(tmp_path, spec: str = "seed:1") -> Path:
    path = tmp_path / "one.yaml"
    path.write_text(toyplugins.TOY_RECIPE.replace('{a: ["seed:1", "seed:2"], b: ["seed:3"]}', f'{{a: ["{spec}"]}}'))
    return path


@pytest.mark.parametrize("override, needle", [
    ("score.99.weight=1", "score.99: no list item '99'"),           # a list index
    ("generate.config.steps", "--set: expected key.path=value"),    # --set syntax
    ("score.0.weight=-1", "score.0.weight"),                        # a value the schema refuses
])
def test_validate_lines_start_with_error_then_the_file(toy_recipe, override, needle):
    res = cli("validate", str(toy_recipe), "--set", override)
    assert res.returncode == 2
    line = _only_line(res)
    assert line.startswith(f"error: {toy_recipe}: ") and needle in line


def test_validate_catalogue_error_starts_with_error_then_the_file(tmp_path):
    (tmp_path / "cat.csv").write_text("product,references\nv,seed:1\n,seed:2\n")
    recipe = tmp_path / "cat.yaml"
    recipe.write_text(toyplugins.TOY_RECIPE.replace('products: {a: ["seed:1", "seed:2"], b: ["seed:3"]}',
                                                    "catalog: cat.csv"))
    res = cli("validate", "cat.yaml", cwd=tmp_path)
    assert res.returncode == 2
    line = _only_line(res)
    assert line.startswith("error: cat.yaml: ") and "cat.csv: line 3" in line


@pytest.mark.parametrize("args, needle", [
    (["run", "{tmp}"], "is a directory"),
    (["run", "{recipe}", "--limit", "0"], "'--limit': 0 is not in the range"),
    (["run", "{recipe}", "--device", "tpu"], "'tpu' is not one of"),
    (["run", "{recipe}", "--bogus"], "No such option '--bogus'"),
    (["compare", "{tmp}", "/nonexistent"], "'/nonexistent' does not exist"),
    (["run"], "Missing argument 'RECIPE'"),
    (["no-such-command"], "No such command 'no-such-command'"),
])
def test_click_usage_errors_are_one_line(toy_recipe, tmp_path, args, needle):
    res = cli(*[a.format(recipe=toy_recipe, tmp=tmp_path) for a in args])
    assert res.returncode == 2
    line = _only_line(res)
    assert needle in line and "--help'" in line  # says where the usage is explained


def test_help_and_bare_command_still_show_the_usage():
    res = cli("run", "--help")
    assert res.returncode == 0 and res.stdout.startswith("Usage: ecomforge run [OPTIONS] RECIPE")
    bare = cli()
    assert bare.stderr.startswith("Usage: ecomforge [OPTIONS] COMMAND") and "Commands:" in bare.stderr
    assert bare.returncode == 2  # as click has it: no command is a usage error, answered with the help


def test_resume_refuses_out(toy_recipe, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    res = cli("run", str(toy_recipe), "--resume", str(run), "--out", str(tmp_path / "other"))
    assert res.returncode == 2
    line = _only_line(res)
    assert "--out" in line and "--resume" in line and str(run) in line
    assert not (tmp_path / "other").exists()


def test_a_removed_run_folder_is_not_left_named(tmp_path):
    """A single product whose reference is bad input: exit 2, and the folder the run line named is said removed."""
    res = cli("run", str(_single_product(tmp_path, "nope")), "--out", str(tmp_path / "runs"), "--progress", "plain")
    assert res.returncode == 2, res.stderr
    assert not any((tmp_path / "runs").iterdir())  # the runner removed the empty run folder
    named = re.findall(r"^run \S+ -> (.+)$", res.stderr, re.M)
    assert named, res.stderr
    assert f"run folder {named[0]} removed" in res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "nope" in errors[0]


@pytest.mark.parametrize("single", [True, False])
def test_verbose_shows_a_failed_products_traceback_once(toy_recipe, tmp_path, single):
    recipe = _single_product(tmp_path, "nope") if single else toy_recipe
    extra = [] if single else ["--set", "inputs.products.b=[nope]", "--fail-fast"]
    res = cli("-v", "run", str(recipe), *extra, "--out", str(tmp_path / "runs"), "--progress", "none")
    assert res.returncode == (2 if single else 1), res.stderr  # with another product made first: a product failed
    assert res.stderr.count("ecomforge.errors.StageError: acquire failed") == 1, res.stderr
    assert res.stderr.splitlines()[-1].startswith("error: acquire failed")


def test_recreate_with_the_stored_image_deleted(toy_recipe, tmp_path):
    """The regenerated image is still written, with a warning that it was not compared; exit 0."""
    assert cli("run", str(toy_recipe), "--out", str(tmp_path / "runs"), "--progress", "none").returncode == 0
    run_dir = next((tmp_path / "runs").iterdir())
    rec = json.loads((run_dir / "manifest.jsonl").read_text().splitlines()[0])
    (run_dir / rec["image"]).unlink()
    res = cli("recreate", str(run_dir), rec["id"])
    assert res.returncode == 0, res.stderr
    target = run_dir / "recreated" / f"{rec['id']}.png"
    assert target.is_file()
    assert res.stderr.strip() == (f"warning: {rec['id']}: stored image candidates/{rec['id']}.png is missing; "
                                  f"regenerated image written to {target} (not compared)")


def test_interrupt_before_a_run_folder_exits_130(monkeypatch, capsys):
    import ecomforge.recipe
    from ecomforge.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ecomforge.recipe, "load_recipe", interrupted)
    with pytest.raises(SystemExit) as info:
        main(["run", "any.yaml"])
    assert info.value.code == 130
    assert capsys.readouterr().err.strip() == "interrupted"


@pytest.mark.skipif(os.name == "nt", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_names_the_run_folder_to_resume(tmp_path):
    recipe = tmp_path / "slow.yaml"
    recipe.write_text(toyplugins.TOY_RECIPE.replace("  plugin: toy\n  sweep:", "  plugin: toy\n  config: {delay: 0.5}\n  sweep:"))
    out = tmp_path / "runs"
    # SIGINT as a terminal sends it, even where this test runs with SIGINT ignored (a background job)
    code = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            f"sys.argv = [{str(TOYCLI)!r}, *sys.argv[1:]]; runpy.run_path({str(TOYCLI)!r}, run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", code, "run", str(recipe), "--set", "generate.config.delay=0.4",
                             "--out", str(out), "--progress", "plain"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out.is_dir() and any((p / "manifest.jsonl").exists() for p in out.iterdir())):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)  # inside the slow generate step
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    run_dir = next(out.iterdir())
    assert proc.returncode == 130, err
    hint = err.splitlines()[-1]
    assert hint == f"interrupted (resume with: ecomforge run {recipe} --set generate.config.delay=0.4 --resume {run_dir})"
    assert "Traceback" not in err and (run_dir / "recipe.yaml").is_file()
    # the command it names resumes the run (the same recipe, its --set included)
    args = shlex.split(hint.removeprefix("interrupted (resume with: ").removesuffix(")"))[1:]
    done = subprocess.run([sys.executable, str(TOYCLI), *args, "--progress", "none"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
