"""SIGTERM and a second Ctrl-C: a clean stop with the resume hint, then, if asked again, an immediate one-line exit."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import toyplugins

TOYCLI = Path(__file__).parent / "toycli.py"

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX signals")

# An observer whose on_run_error blocks: the first signal's clean stop is still going when the second comes.
STALL = '''
import sys, time
from ecomforge.hookspecs import hookimpl

@hookimpl
def on_run_error(run, error):
    print("STOPPING", file=sys.stderr, flush=True)
    time.sleep(120)
'''


def _start(tmp_path: Path, *extra_plugins: str) -> subprocess.Popen:
    recipe = tmp_path / "slow.yaml"
    recipe.write_text(toyplugins.TOY_RECIPE.replace("  plugin: toy\n  sweep:", "  plugin: toy\n  config: {delay: 0.5}\n  sweep:"))
    # the toy CLI, with SIGINT as a terminal sends it (this test may run as a background job that ignores it)
    code = ("import runpy, signal, sys, importlib; signal.signal(signal.SIGINT, signal.default_int_handler); "
            f"sys.path[:0] = [{str(tmp_path)!r}, {str(TOYCLI.parent)!r}]; import toyplugins; "
            "from ecomforge.testing import temporary_plugins; from ecomforge.cli import main; "
            f"mods = [importlib.import_module(m) for m in {list(extra_plugins)!r}]; "
            "ctx = temporary_plugins(toyplugins, *mods); ctx.__enter__(); main(sys.argv[1:])")
    return subprocess.Popen([sys.executable, "-c", code, "run", str(recipe), "--out", str(tmp_path / "runs"),
                             "--progress", "plain"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, marker: str) -> list[str]:
    """stderr lines up to the first one containing ``marker``."""
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"ended before {marker!r}: {''.join(seen)}")


def test_sigterm_stops_cleanly_with_the_resume_hint_and_143(tmp_path):
    proc = _start(tmp_path)
    try:
        _wait_for(proc, "[a] mask done")  # generating now
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    run_dir = next((tmp_path / "runs").iterdir())
    assert proc.returncode == 143, err
    assert err.splitlines()[-1].startswith("terminated (resume with: ecomforge run ")
    assert err.splitlines()[-1].endswith(f"--resume {run_dir})") and "Traceback" not in err


def test_a_second_ctrl_c_exits_at_once_with_one_line(tmp_path):
    (tmp_path / "stall.py").write_text(STALL)
    proc = _start(tmp_path, "stall")
    try:
        _wait_for(proc, "[a] mask done")
        proc.send_signal(signal.SIGINT)
        _wait_for(proc, "STOPPING")  # the clean stop is under way, and stalls
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["SIGINT again: stopped at once (the run folder keeps every finished "
                                        "product; --resume goes on from there)"]
