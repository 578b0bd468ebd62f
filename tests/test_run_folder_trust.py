"""A run folder is input: tampered manifests, files that are not ours, a folder in use, a changed catalogue."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from runfolders import cli, manifest, one_error

from ecomforge.recipe import load_recipe
from ecomforge.run.runner import run_recipe

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "dreambench"


def _tamper(run: Path, index: int, **changes) -> int:
    """Change record ``index`` of the manifest; returns its line number."""
    recs = manifest(run)
    recs[index].update(changes)
    (run / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return index + 1


def _kept(run: Path) -> int:
    return next(i for i, r in enumerate(manifest(run)) if r["kept"])


# --- 1: every reader of a manifest refuses a record naming files outside its folder ---------------------
@pytest.mark.parametrize("changes, words", [
    ({"id": "x/../../escaped_by_id"}, "'id' must be 16 hex digits"),
    ({"image": "../../../../etc/passwd"}, "'image' must be a relative path inside the run folder"),
    ({"image": "/etc/hostname"}, "'image' must be a relative path inside the run folder"),
    ({"product": "../up"}, "is not a product name"),
    ({"reference": "../../x"}, "is not a reference name"),
])
def test_export_refuses_a_tampered_record_naming_its_line(done, tmp_path, capsys, monkeypatch, changes, words):
    monkeypatch.chdir(tmp_path)
    n = _tamper(done, _kept(done), **changes)
    code, err = cli(capsys, "export", str(done), str(tmp_path / "ex" / "ds"))
    line = one_error(err)
    assert code == 2 and f"manifest.jsonl: line {n}: " in line and words in line
    assert not (tmp_path / "ex").exists() and not list(tmp_path.glob("*.png"))  # nothing written, anywhere


def test_export_refuses_a_candidate_png_that_is_a_symlink_out_of_the_folder(done, tmp_path, capsys):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n not yours")
    i = _kept(done)
    image = done / manifest(done)[i]["image"]
    image.unlink()
    image.symlink_to(secret)
    code, err = cli(capsys, "export", str(done), str(tmp_path / "ds"))
    assert code == 2 and f"line {i + 1}: 'image': " in one_error(err) and "outside the run folder" in err
    assert not (tmp_path / "ds").exists()


def test_export_refuses_a_candidate_that_is_not_an_image(done, tmp_path, capsys):
    i = _kept(done)
    (done / manifest(done)[i]["image"]).write_text("root:x:0:0:root:/root:/bin/bash\n")
    code, err = cli(capsys, "export", str(done), str(tmp_path / "ds"))
    assert code == 2 and "is not a PNG, JPEG or WebP file" in one_error(err)


def test_compare_refuses_a_record_linking_outside_its_folder(toy_registry, toy_recipe, done, tmp_path, capsys):
    other = run_recipe(load_recipe(toy_recipe), out=tmp_path / "other").run_dir
    n = _tamper(other, 0, image="../../../etc/passwd")
    code, err = cli(capsys, "compare", str(done), str(other), "--out", str(tmp_path / "cmp"))
    assert code == 2 and f"manifest.jsonl: line {n}: 'image' must be a relative path" in one_error(err)
    assert not (tmp_path / "cmp").exists()


def test_resume_refuses_a_tampered_record_and_keeps_the_report(done, toy_recipe, capsys):
    before = (done / "report.html").read_bytes()
    n = _tamper(done, 0, image="../../../etc/passwd")
    stored = (done / "manifest.jsonl").read_bytes()
    code, err = cli(capsys, "run", str(toy_recipe), "--resume", str(done), "--progress", "none")
    assert code == 2 and f"line {n}: 'image' must be a relative path" in one_error(err)
    assert (done / "report.html").read_bytes() == before and (done / "manifest.jsonl").read_bytes() == stored


# --- 2: one process at a time in a run folder -----------------------------------------------------------
def test_resume_of_a_folder_in_use_is_refused_and_writes_nothing(done, toy_recipe, capsys):
    (done / "manifest.jsonl").write_bytes((done / "manifest.jsonl").read_bytes()[:-40])  # a cut-off last line
    (done / "candidates" / ".x.png.tmp").write_bytes(b"half")  # a leftover that a resume would delete
    before = {p: p.read_bytes() for p in done.rglob("*") if p.is_file() and p.name != ".lock"}
    with open(done / ".lock", "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.truncate(0)
        held.write(b"4242\n")
        held.flush()
        code, err = cli(capsys, "run", str(toy_recipe), "--resume", str(done), "--progress", "none")
        assert code == 2 and one_error(err) == f"error: {done} is in use by another ecomforge run (pid 4242) " \
                                                 "(wait for it to finish, or stop it first)"
        after = {p: p.read_bytes() for p in done.rglob("*") if p.is_file() and p.name != ".lock"}
        assert after == before
    code, err = cli(capsys, "run", str(toy_recipe), "--resume", str(done), "--progress", "none")
    assert code == 0, err  # the lock went with its holder; the run's own lock went with the run
    code, err = cli(capsys, "run", str(toy_recipe), "--resume", str(done), "--progress", "none")
    assert code == 0, err


# --- 3: --out never replaces what is not a regular file, nor a symlink -----------------------------------
@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_recreate_out_refuses_a_fifo_or_a_symlink(done, tmp_path, capsys, kind):
    target, out = tmp_path / "target.png", tmp_path / "out.png"
    target.write_bytes(b"keep me")
    os.mkfifo(out) if kind == "fifo" else out.symlink_to(target)
    cid = manifest(done)[0]["id"]
    code, err = cli(capsys, "recreate", str(done), cid, "--out", str(out))
    assert code == 2 and str(out) in one_error(err)
    assert (out.is_fifo() if kind == "fifo" else out.is_symlink()) and target.read_bytes() == b"keep me"


def test_export_refuses_a_fifo_and_compare_a_fifo_out(done, tmp_path, capsys):
    os.mkfifo(tmp_path / "fifo")
    code, err = cli(capsys, "export", str(done), str(tmp_path / "fifo"))
    assert code == 2 and "is not a folder" in one_error(err)
    code, err = cli(capsys, "compare", str(done), str(done), "--out", str(tmp_path / "fifo"))
    assert code == 2 and "is not a folder" in one_error(err) and (tmp_path / "fifo").is_fifo()


def test_export_into_another_selections_export_is_refused(done, tmp_path, capsys):
    ds = tmp_path / "ds"
    assert cli(capsys, "export", str(done), str(ds), "--include", "all")[0] == 0
    files = sorted(p.name for p in ds.iterdir())
    code, err = cli(capsys, "export", str(done), str(ds))
    assert code == 2 and "--include all" in one_error(err) and sorted(p.name for p in ds.iterdir()) == files
    assert cli(capsys, "export", str(done), str(ds), "--include", "all")[0] == 0  # its own: adds nothing
    assert sorted(p.name for p in ds.iterdir()) == files
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    code, err = cli(capsys, "export", str(done), str(tmp_path / "mine"))
    assert code == 2 and "not an ecomforge export" in one_error(err)


# --- 4: --resume regenerates a candidate file changed since it was written --------------------------------
def test_resume_does_not_trust_a_candidate_file_changed_after_it_was_written(done, toy_recipe):
    first = {r["id"]: r for r in manifest(done)}
    kept = next(r for r in first.values() if r["kept"])
    from ecomforge.imaging.io import read_png, save_png

    pixels, text = read_png(done / kept["image"])
    save_png(done / kept["image"], np.zeros_like(pixels), text)  # black, with the metadata it had
    (done / "manifest.jsonl").write_text("")  # interrupted before any product was recorded
    again = {r["id"]: r for r in run_recipe(load_recipe(toy_recipe), resume=done).records}
    assert again[kept["id"]]["kept"] and again[kept["id"]]["total"] == kept["total"]
    assert {k: (r["kept"], r["total"]) for k, r in again.items()} == {k: (r["kept"], r["total"])
                                                                       for k, r in first.items()}


# --- 5: --resume refuses a changed catalogue, other plugin versions, and names the recipe key -------------
def _catalogue_run(tmp_path: Path, rows: list[str]) -> tuple[Path, Path]:
    shutil.copy(SAMPLES / "vase" / "02.jpg", tmp_path / "vase.jpg")
    shutil.copy(SAMPLES / "can" / "00.jpg", tmp_path / "can.jpg")
    shutil.copy(SAMPLES / "can" / "01.jpg", tmp_path / "can2.jpg")
    (tmp_path / "cat.csv").write_text("product,references,title\n" + "".join(r + "\n" for r in rows))
    recipe = tmp_path / "c.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "cat", "inputs": {"catalog": "cat.csv", "prompt": "{title} packshot"},
        "mask": {"plugin": "classic"}, "generate": {"plugin": "composite", "config": {"size": [64, 64]}, "seeds": [1]},
        "score": [{"plugin": "color"}], "filter": {"plugin": "threshold", "config": {"top_k": 1}},
        "output": {"dir": str(tmp_path / "runs")}}))
    return recipe, run_recipe(load_recipe(recipe)).run_dir


def test_resume_refuses_a_catalogue_edited_since_the_run_started(tmp_path, capsys):
    """A finished product's row may not change under a resume; a new row is new work, and is made."""
    recipe, run = _catalogue_run(tmp_path, ["vase,vase.jpg,V", "can,can.jpg,C"])
    before = (run / "manifest.jsonl").read_bytes()
    (tmp_path / "cat.csv").write_text("product,references,title\nvase,vase.jpg,V2\ncan,can2.jpg,C\nnew,can.jpg,N\n")
    code, err = cli(capsys, "run", str(recipe), "--resume", str(run), "--progress", "none")
    line = one_error(err)
    assert code == 2 and "products it finished changed since (photos, prompt or config): vase, can" in line
    assert (run / "manifest.jsonl").read_bytes() == before
    (tmp_path / "cat.csv").write_text("product,references,title\nvase,vase.jpg,V\ncan,can.jpg,C\nnew,can.jpg,N\n")
    assert cli(capsys, "run", str(recipe), "--resume", str(run), "--progress", "none")[0] == 0  # undone, one added
    assert {r["product"] for r in manifest(run)} == {"vase", "can", "new"}


def test_a_failed_products_row_may_be_fixed_and_resumed(tmp_path, capsys):
    """The documented fix for a failed product: take the bad photo out of its row, then --resume."""
    (tmp_path / "bad.jpg").write_bytes(b"not a photo")
    recipe, run = _catalogue_run(tmp_path, ["vase,vase.jpg,V", "can,bad.jpg,C"])
    assert (run / "failed.csv").is_file() and {r["product"] for r in manifest(run) if "kept" in r} == {"vase"}
    (tmp_path / "cat.csv").write_text("product,references,title\nvase,vase.jpg,V\ncan,can.jpg,C\n")
    code, err = cli(capsys, "run", str(recipe), "--resume", str(run), "--progress", "none")
    assert code == 0, err
    assert {r["product"] for r in manifest(run) if "kept" in r} == {"vase", "can"} and not (run / "failed.csv").exists()
    (tmp_path / "cat.csv").write_text("product,references,title\nvase,vase.jpg,V\ncan,can2.jpg,C\n")
    code, err = cli(capsys, "run", str(recipe), "--resume", str(run), "--progress", "none")
    assert code == 2 and "products it finished changed since" in one_error(err) and "can" in err  # finished now


def test_resume_refuses_other_plugin_versions_naming_both(done, toy_recipe, capsys):
    stored = yaml.safe_load((done / "recipe.yaml").read_text())
    key, pin = next(iter(stored["plugins"].items()))
    stored["plugins"][key] = pin.split("==")[0] + "==0.0.0-other"
    (done / "recipe.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    code, err = cli(capsys, "run", str(toy_recipe), "--resume", str(done), "--progress", "none")
    line = one_error(err)
    assert code == 2 and f"{key} was {pin.split('==')[0]}==0.0.0-other, installed is {pin}" in line


def test_a_different_recipe_names_the_key_that_differs(done, toy_recipe, capsys):
    code, err = cli(capsys, "run", str(toy_recipe), "--set", "generate.seeds=[9]", "--resume", str(done),
                      "--progress", "none")
    assert code == 2 and "differs in generate.seeds: run folder [1, 2, 3], given [9]" in one_error(err)


# --- 6: only a cut-off last line of a manifest is dropped ---------------------------------------------------
def test_resume_names_a_broken_line_before_good_ones(done, toy_recipe, capsys):
    lines = (done / "manifest.jsonl").read_text().splitlines(keepends=True)
    lines[1] = "{oops\n"
    (done / "manifest.jsonl").write_text("".join(lines))
    code, err = cli(capsys, "run", str(toy_recipe), "--resume", str(done), "--progress", "none")
    assert code == 2 and "manifest.jsonl: line 2: not a JSON record" in one_error(err)
    assert (done / "manifest.jsonl").read_text() == "".join(lines)  # nothing dropped


def test_a_manifest_that_is_not_json_is_named_not_an_empty_run(done, tmp_path, capsys):
    (done / "manifest.jsonl").write_text("not json\n")
    code, err = cli(capsys, "export", str(done), str(tmp_path / "ds"))
    assert code == 2 and "manifest.jsonl: line 1: not a JSON record" in one_error(err)
    code, err = cli(capsys, "compare", str(done), str(done), "--out", str(tmp_path / "c"))
    assert code == 2 and "manifest.jsonl: line 1: not a JSON record" in one_error(err)
