"""The runner and run folder: ids, manifest, PNG metadata, report, resume and crash safety."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ecomforge.recipe import load_recipe
from ecomforge.run.runner import run_recipe
from ecomforge.run.store import read_manifest

import toyplugins

TOYCLI = [sys.executable, str(Path(__file__).parent / "toycli.py")]


def _strip(records):
    """Manifest records without timings (the only field allowed to differ between runs)."""
    return sorted(({k: v for k, v in r.items() if k != "timings"} for r in records), key=lambda r: r["id"])


def test_run_folder_layout_and_manifest(toy_registry, toy_recipe, tmp_path):
    result = run_recipe(load_recipe(toy_recipe), out=tmp_path / "runs")
    root = result.run_dir
    for name in ("recipe.yaml", "manifest.jsonl", "report.html"):
        assert (root / name).is_file()
    records = read_manifest(root)
    assert len(records) == (2 + 1) * 2 * 3  # references x sweep points x seeds
    assert len({r["id"] for r in records}) == len(records)
    for r in records:
        assert (root / r["image"]).is_file()
        assert (root / r["mask"]).is_file()
        assert set(r["scores"]) == {"toy"}
        assert r["kept"] == (r["selected"] is not None)
        if r["kept"]:
            assert (root / r["selected"]).read_bytes() == (root / r["image"]).read_bytes()
        assert set(r["timings"]) == {"acquire", "mask", "generate", "score", "filter", "io"}
    # toy-top keeps the better half per product, and the brighter sweep point scores higher
    kept = [r for r in records if r["kept"]]
    assert len(kept) == 6 + 3 and all(r["params"]["level"] == 180 for r in kept)
    assert len(list((root / "selected").glob("*.png"))) == len(kept)
    assert "references_sha256" in records[0] and len(records[0]["references_sha256"]) == 2


def test_png_carries_parameters(toy_registry, toy_recipe, tmp_path):
    root = run_recipe(load_recipe(toy_recipe), out=tmp_path).run_dir
    rec = read_manifest(root)[0]
    with Image.open(root / rec["image"]) as im:
        text = im.text
    assert text["candidate_id"] == rec["id"]
    lines = text["parameters"].splitlines()
    assert lines[0] == "a toy on a table"
    assert lines[1] == "Negative prompt: blurry"
    assert f"Seed: {rec['seed']}" in lines[2] and "Size: 48x36" in lines[2]
    assert json.loads(text["ecomforge"])["params"] == rec["params"]


def test_same_recipe_same_ids_and_pixels(toy_registry, toy_recipe, tmp_path):
    a = run_recipe(load_recipe(toy_recipe), out=tmp_path / "a")
    b = run_recipe(load_recipe(toy_recipe), out=tmp_path / "b")
    assert _strip(a.records) == _strip(b.records)
    for r in a.records:
        assert (a.run_dir / r["image"]).read_bytes() == (b.run_dir / r["image"]).read_bytes()


def test_other_seeds_other_ids(toy_registry, toy_recipe, tmp_path):
    a = run_recipe(load_recipe(toy_recipe), out=tmp_path / "a")
    b = run_recipe(load_recipe(toy_recipe, ["generate.seeds=[4, 5, 6]"]), out=tmp_path / "b")
    assert not {r["id"] for r in a.records} & {r["id"] for r in b.records}


def test_resume_of_finished_run_does_nothing(toy_registry, toy_recipe, tmp_path):
    a = run_recipe(load_recipe(toy_recipe), out=tmp_path)
    before = (a.run_dir / "manifest.jsonl").read_bytes()
    toyplugins.CALLS.clear()
    run_recipe(load_recipe(toy_recipe), resume=a.run_dir)
    assert toyplugins.CALLS.get("generate", 0) == 0
    assert (a.run_dir / "manifest.jsonl").read_bytes() == before


def test_resume_refuses_another_recipe(toy_registry, toy_recipe, tmp_path):
    from ecomforge.errors import UsageError

    a = run_recipe(load_recipe(toy_recipe), out=tmp_path)
    with pytest.raises(UsageError, match="different recipe"):
        run_recipe(load_recipe(toy_recipe, ["generate.seeds=[9]"]), resume=a.run_dir)


def test_resume_repairs_cut_manifest_and_regenerates_nothing_done(toy_registry, toy_recipe, tmp_path):
    full = run_recipe(load_recipe(toy_recipe), out=tmp_path / "full")
    root = full.run_dir
    manifest = root / "manifest.jsonl"
    data = manifest.read_bytes()
    lines = data.splitlines(keepends=True)
    # Cut mid-way through product b's block (the last block): half a line left dangling.
    manifest.write_bytes(b"".join(lines[:13]) + lines[13][:20])
    toyplugins.CALLS.clear()
    run_recipe(load_recipe(toy_recipe), resume=root)
    assert toyplugins.CALLS.get("generate", 0) == 0  # every candidate PNG was already on disk
    assert manifest.read_bytes().count(b"\n") == 18
    assert _strip(read_manifest(root)) == _strip(full.records)


def test_killed_run_resumes_to_the_same_result(tmp_path, toy_recipe):
    """Kill the CLI mid-generation, resume it: same manifest as an uninterrupted run, no duplicates."""
    slow = ["--set", "generate.config.delay=0.15"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = subprocess.run([*TOYCLI, "run", str(toy_recipe), "--out", str(tmp_path / "ref"), *slow],
                         capture_output=True, text=True, env=env, timeout=120)
    assert ref.returncode == 0, ref.stderr
    ref_dir = next((tmp_path / "ref").iterdir())

    proc = subprocess.Popen([*TOYCLI, "run", str(toy_recipe), "--out", str(tmp_path / "crash"), *slow],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        dirs = list((tmp_path / "crash").glob("*/candidates/*.png")) if (tmp_path / "crash").exists() else []
        if len(dirs) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    crash_dir = next((tmp_path / "crash").iterdir())
    assert len(read_manifest(crash_dir)) < 18  # it really was interrupted

    res = subprocess.run([*TOYCLI, "run", str(toy_recipe), "--resume", str(crash_dir), *slow],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    final = read_manifest(crash_dir)
    assert len({r["id"] for r in final}) == len(final) == 18
    assert _strip(final) == _strip(read_manifest(ref_dir))
    for r in final:
        a = np.asarray(Image.open(crash_dir / r["image"]))
        b = np.asarray(Image.open(ref_dir / r["image"]))
        assert np.array_equal(a, b)
    assert not list(crash_dir.rglob("*.tmp"))


def test_report_lists_every_candidate(toy_registry, toy_recipe, tmp_path):
    root = run_recipe(load_recipe(toy_recipe), out=tmp_path).run_dir
    html = (root / "report.html").read_text()
    for r in read_manifest(root):
        assert r["id"] in html and r["image"] in html
    assert html.count("class='kept'") == 9
    assert "masks/a/s1.overlay.png" in html


def test_hooks_see_every_step(toy_registry, toy_recipe, tmp_path):
    from ecomforge import hookimpl

    seen = []

    class Spy:
        @hookimpl
        def on_step_end(self, run, step, product, seconds):
            seen.append((product, step))

        @hookimpl
        def on_run_end(self, run, summary):
            seen.append(("run", summary["total_candidates"]))

    run_recipe(load_recipe(toy_recipe), out=tmp_path, observers=[Spy()])
    steps = ["acquire", "mask", "generate", "score", "filter"]
    assert seen == [("a", s) for s in steps] + [("b", s) for s in steps] + [("run", 18)]


def test_stage_failure_names_step_plugin_and_product(toy_registry, toy_recipe, tmp_path):
    from ecomforge.errors import StageError

    with pytest.raises(Exception) as info:
        run_recipe(load_recipe(toy_recipe, ["inputs.products.b=[nope]"]), out=tmp_path / "runs", fail_fast=True)
    err = info.value
    assert isinstance(err, StageError)
    assert err.exit_code == 2  # the cause was bad input
    assert "acquire" in str(err) and "'toy'" in str(err) and "'b'" in str(err) and "nope" in str(err)
    # product a finished before b failed: its records are in the manifest and resumable
    run_dir = next((tmp_path / "runs").iterdir())
    assert {r["product"] for r in read_manifest(run_dir)} == {"a"}


def test_bad_input_on_a_fresh_run_leaves_no_empty_folder(toy_registry, toy_recipe, tmp_path):
    from ecomforge.errors import StageError

    with pytest.raises(StageError):
        run_recipe(load_recipe(toy_recipe, ["inputs.products.a=[nope]"]), out=tmp_path / "runs", fail_fast=True)
    assert list((tmp_path / "runs").iterdir()) == []


def test_missing_model_fails_before_any_work(toy_registry, toy_recipe, tmp_path, monkeypatch):
    """A stage's check() runs before the run folder exists; its error names the step and plugin."""
    from ecomforge.errors import ModelNotFound, StageError

    def missing(self):
        raise ModelNotFound("toy weights not found", hint="ecomforge models pull toy")

    monkeypatch.setattr(toyplugins.ToyGenerator, "check", missing)
    with pytest.raises(StageError) as info:
        run_recipe(load_recipe(toy_recipe), out=tmp_path / "runs")
    assert info.value.exit_code == 2
    assert "generate plugin 'toy' is not ready: toy weights not found" in info.value.one_line()
    assert not (tmp_path / "runs").exists() and not toyplugins.CALLS
