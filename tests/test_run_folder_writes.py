"""A run folder is written only inside itself: symlinks, FIFOs and hand-edited records in it are refused."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from runfolders import cli, manifest, one_error

from ecomforge.imaging.io import read_png
from ecomforge.recipe import load_recipe
from ecomforge.run.runner import run_recipe
from ecomforge.run.store import RunStore
from ecomforge.types import Reference

TAMPERED = "the run folder has been tampered with"


def _write(run: Path, recs: list[dict]) -> None:
    (run / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def _resume(capsys, recipe: Path, run: Path) -> tuple[int, str]:
    return cli(capsys, "run", str(recipe), "--resume", str(run), "--progress", "none")


# --- 1: the .lock file is never followed out of the folder -------------------------------------------------
@pytest.mark.parametrize("dangling", [False, True])
def test_resume_refuses_a_lock_that_is_a_symlink(done, toy_recipe, tmp_path, capsys, dangling):
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_text("precious data")
    (done / ".lock").unlink(missing_ok=True)
    (done / ".lock").symlink_to(victim)
    stored = (done / "manifest.jsonl").read_bytes()
    code, err = _resume(capsys, toy_recipe, done)
    line = one_error(err)
    assert code == 2 and line == f"error: {done / '.lock'}: not a regular file (a symlink?): {TAMPERED}"
    assert (victim.read_text() == "precious data") if not dangling else not os.path.lexists(victim)
    assert (done / "manifest.jsonl").read_bytes() == stored


def test_resume_refuses_a_lock_hard_linked_to_a_file_elsewhere(done, toy_recipe, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious data")
    (done / ".lock").unlink(missing_ok=True)
    os.link(victim, done / ".lock")
    code, err = _resume(capsys, toy_recipe, done)
    assert code == 2 and "not a regular file" in one_error(err) and victim.read_text() == "precious data"


# --- 2: nothing of the folder is a symlink out of it when it is resumed --------------------------------------
def test_resume_refuses_a_manifest_that_is_a_symlink(done, toy_recipe, tmp_path, capsys):
    outside = tmp_path / "outside.jsonl"
    outside.write_text("")
    (done / "manifest.jsonl").unlink()
    (done / "manifest.jsonl").symlink_to(outside)
    code, err = _resume(capsys, toy_recipe, done)
    assert code == 2 and f"{done / 'manifest.jsonl'}: not a regular file" in one_error(err)
    assert outside.read_text() == ""


@pytest.mark.parametrize("entry", ["recipe.yaml", "products.json", "failed.csv", "report.html"])
def test_resume_refuses_a_file_of_the_folder_that_is_a_symlink(done, toy_recipe, tmp_path, capsys, entry):
    outside = tmp_path / "outside"
    outside.write_bytes((done / entry).read_bytes() if (done / entry).exists() else b"x")
    before = outside.read_bytes()
    (done / entry).unlink(missing_ok=True)
    (done / entry).symlink_to(outside)
    code, err = _resume(capsys, toy_recipe, done)
    assert code == 2 and f"{done / entry}: not a regular file" in one_error(err) and TAMPERED in err
    assert outside.read_bytes() == before


@pytest.mark.parametrize("entry", ["candidates", "selected", "masks", "references", "recreated"])
def test_resume_refuses_a_folder_that_is_a_symlink_and_writes_nothing_there(done, toy_recipe, tmp_path, capsys,
                                                                            entry):
    outside = tmp_path / "outside"
    outside.mkdir()
    if (done / entry).exists():
        for p in sorted((done / entry).rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        (done / entry).rmdir()
    (done / entry).symlink_to(outside, target_is_directory=True)
    (done / "manifest.jsonl").write_text("")  # every product is redone: it would write into the folder
    code, err = _resume(capsys, toy_recipe, done)
    assert code == 2 and f"{done / entry}: not a folder (a symlink?): {TAMPERED}" in one_error(err)
    assert not list(outside.rglob("*"))


@pytest.mark.parametrize("entry", ["references", "masks"])
def test_resume_refuses_a_product_folder_that_is_a_symlink(done, toy_recipe, tmp_path, capsys, entry):
    outside = tmp_path / "outside"
    outside.mkdir()
    product = next((done / entry).iterdir())
    for p in product.iterdir():
        p.unlink()
    product.rmdir()
    product.symlink_to(outside, target_is_directory=True)
    (done / "manifest.jsonl").write_text("")
    code, err = _resume(capsys, toy_recipe, done)
    assert code == 2 and f"{product}: not a folder (a symlink?)" in one_error(err)
    assert not list(outside.iterdir())


def test_the_manifest_append_refuses_a_symlink_put_there_after_the_checks(done, tmp_path):
    """The append itself does not follow a symlink (one swapped in while the run goes on)."""
    from ecomforge.errors import InputError

    store = RunStore(done)
    outside = tmp_path / "outside.jsonl"
    outside.write_text("")
    (done / "manifest.jsonl").unlink()
    (done / "manifest.jsonl").symlink_to(outside)
    with pytest.raises(InputError, match="not a regular file"):
        store.record_failure("toy", "mask", "classic", "boom")
    assert outside.read_text() == ""


def test_export_refuses_a_manifest_that_is_a_symlink_out_of_the_folder(done, tmp_path, capsys):
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes((done / "manifest.jsonl").read_bytes())
    (done / "manifest.jsonl").unlink()
    (done / "manifest.jsonl").symlink_to(outside)
    code, err = cli(capsys, "export", str(done), str(tmp_path / "ds"))
    assert code == 2 and "not a regular file" in one_error(err) and not (tmp_path / "ds").exists()


# --- 3: a reference stored under a name is rewritten when its photo changed -----------------------------------
def _ref(value: int, sha: str) -> Reference:
    return Reference(image=np.full((8, 8, 3), value, np.uint8), source="photo.jpg", sha256=sha, product="p", name="00")


def test_a_stored_reference_is_rewritten_when_its_photo_changed(tmp_path):
    store = RunStore(tmp_path)
    store._save_references([_ref(10, "a" * 64)])
    path = store.reference_path(_ref(0, ""))
    assert read_png(path)[1]["sha256"] == "a" * 64
    store._save_references([_ref(200, "b" * 64)])  # the resumed product's fixed row: another photo
    pixels, text = read_png(path)
    assert text["sha256"] == "b" * 64 and int(pixels[0, 0, 0]) == 200
    mtime = path.stat().st_mtime_ns
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    store._save_references([_ref(200, "b" * 64)])  # the same photo: left as it is
    assert path.stat().st_mtime_ns == mtime and hashlib.sha256(path.read_bytes()).hexdigest() == digest


# --- 4: a FIFO as a candidate's sidecar is regenerated, never read -----------------------------------------
def test_resume_regenerates_a_candidate_whose_sidecar_is_a_fifo(done, toy_recipe):
    first = {r["id"]: (r["kept"], r["total"]) for r in manifest(done)}
    cid = next(iter(first))
    sidecar = done / "candidates" / f"{cid}.json"
    assert RunStore(done).load_candidate(cid) is not None
    sidecar.unlink()
    os.mkfifo(sidecar)
    assert RunStore(done).load_candidate(cid) is None  # returns at once: a read would block forever
    (done / "manifest.jsonl").write_text("")
    again = run_recipe(load_recipe(toy_recipe), resume=done).records
    assert {r["id"]: (r["kept"], r["total"]) for r in again} == first


# --- 5: the fields readers act on have their types --------------------------------------------------------
@pytest.mark.parametrize("change, words", [
    ({"kept": "false"}, "'kept' must be true or false"),
    ({"total": "1.0"}, "'total' must be a number or null"),
    ({"prompt": ["x"]}, "'prompt' must be a string"),
    ({"negative_prompt": 3}, "'negative_prompt' must be a string"),
])
def test_export_refuses_a_field_of_the_wrong_type_naming_its_line(done, tmp_path, capsys, change, words):
    recs = manifest(done)
    i = next(i for i, r in enumerate(recs) if not r["kept"])
    recs[i].update(change)
    _write(done, recs)
    code, err = cli(capsys, "export", str(done), str(tmp_path / "ds"), "--include", "all")
    assert code == 2 and f"manifest.jsonl: line {i + 1}: {words}" in one_error(err)
    assert not (tmp_path / "ds").exists()


def test_export_refuses_a_record_without_its_prompt(done, tmp_path, capsys):
    recs = manifest(done)
    i = next(i for i, r in enumerate(recs) if r["kept"])
    del recs[i]["prompt"]
    _write(done, recs)
    code, err = cli(capsys, "export", str(done), str(tmp_path / "ds"))
    assert code == 2 and f"manifest.jsonl: line {i + 1}: candidate record without prompt" in one_error(err)
    assert not (tmp_path / "ds").exists()


def test_a_manifest_line_nested_too_deeply_is_named(done, tmp_path, capsys):
    recs = (done / "manifest.jsonl").read_text()
    (done / "manifest.jsonl").write_text(recs + "[" * 100_000 + "]" * 100_000 + "\n")
    n = len(recs.splitlines()) + 1
    code, err = cli(capsys, "export", str(done), str(tmp_path / "ds"))
    assert code == 2 and f"manifest.jsonl: line {n}: " in one_error(err) and "nested too deeply" in err


# --- 6: export does not write through a symlinked destination ------------------------------------------------
def test_export_refuses_a_destination_that_is_a_symlink_to_a_folder(done, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (tmp_path / "ds").symlink_to(mine, target_is_directory=True)
    code, err = cli(capsys, "export", str(done), str(tmp_path / "ds"))
    assert code == 2 and f"{tmp_path / 'ds'}: is a symlink" in one_error(err)
    assert not list(mine.iterdir())
