"""One product cannot stop a catalogue, one run cannot touch another, a hook's failure is its plugin's."""
from __future__ import annotations

import csv
import threading

import numpy as np
import pytest
from PIL import Image

from ecomforge import hookimpl
from ecomforge.errors import HookError, StageError
from ecomforge.recipe import load_recipe
from ecomforge.run.runner import run_recipe
from ecomforge.run.store import read_failures, read_manifest

from test_catalogue import SAMPLES, prompts_in_pngs, small_photo, write_recipe


def main(*args: str) -> int:
    """The real CLI entry point in this process; returns its exit code."""
    from ecomforge.cli import main as cli_main

    with pytest.raises(SystemExit) as info:
        cli_main(list(args))
    return info.value.code


@pytest.fixture
def shaky_catalogue(tmp_path):
    """Three products: a good vase, a corrupt photo, and a flat grey photo in which no product can be found."""
    photos = tmp_path / "shop" / "photos"
    small_photo(SAMPLES / "vase" / "02.jpg", photos / "vase.jpg")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    Image.fromarray(np.full((128, 128, 3), 128, np.uint8)).save(photos / "flat.png")
    (tmp_path / "shop" / "catalog.csv").write_text(
        "product,references,title\nvase,photos/vase.jpg,Vase\nbroken,photos/broken.jpg,Broken\n"
        "flat,photos/flat.png,Flat\n")
    return write_recipe(tmp_path / "recipes", "../shop/catalog.csv", prompt="{title}, studio photo")


def test_failed_products_are_recorded_the_others_complete_and_resume_retries(shaky_catalogue, tmp_path, capsys,
                                                                           monkeypatch):
    assert main("run", str(shaky_catalogue), "--out", str(tmp_path / "runs"), "--progress", "none") == 1
    run_dir = next((tmp_path / "runs").iterdir())
    err = capsys.readouterr().err
    assert "2 product(s) failed" in err and "broken:" in err and "flat:" in err
    assert {r["product"] for r in read_manifest(run_dir)} == {"vase"}
    with open(run_dir / "failed.csv", newline="") as fh:
        rows = {r["product"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"broken", "flat"}
    assert rows["broken"]["step"] == "acquire" and "broken.jpg" in rows["broken"]["reason"]
    assert rows["flat"]["step"] == "mask" and rows["flat"]["plugin"] == "classic"
    assert all("\n" not in r["reason"] for r in rows.values())
    assert {f["product"] for f in read_failures(run_dir)} == {"broken", "flat"}
    report = (run_dir / "report.html").read_text()
    assert "Failed products" in report and "broken.jpg" in report

    # The photo is fixed; resuming (from another folder) retries only the failed products.
    small_photo(SAMPLES / "can" / "00.jpg", tmp_path / "shop" / "photos" / "broken.jpg")
    vase_png = (run_dir / read_manifest(run_dir)[0]["image"]).stat().st_mtime_ns
    monkeypatch.chdir(tmp_path / "shop" / "photos")
    assert main("run", str(shaky_catalogue), "--resume", str(run_dir), "--progress", "none") == 1
    assert {r["product"] for r in read_manifest(run_dir)} == {"vase", "broken"}
    assert prompts_in_pngs(run_dir)["broken"] == "Broken, studio photo"
    assert (run_dir / read_manifest(run_dir)[0]["image"]).stat().st_mtime_ns == vase_png  # not redone
    with open(run_dir / "failed.csv", newline="") as fh:
        assert [r["product"] for r in csv.DictReader(fh)] == ["flat"]


def test_fail_fast_stops_at_the_first_failed_product(shaky_catalogue, tmp_path):
    with pytest.raises(StageError) as info:
        run_recipe(load_recipe(shaky_catalogue), out=tmp_path / "runs", fail_fast=True)
    assert info.value.product == "broken" and info.value.step == "acquire"


class Recorder:
    """An observer that remembers which runs' events it saw."""

    def __init__(self) -> None:
        self.runs: set[str] = set()
        self.candidates: list[str] = []

    @hookimpl
    def on_run_start(self, run):
        self.runs.add(run.run_id)

    @hookimpl
    def on_candidate(self, run, record, image):
        self.runs.add(run.run_id)
        self.candidates.append(record["product"])


def test_two_concurrent_runs_write_only_their_own_folders(tmp_path):
    recipes = {}
    for name, photo in (("vase", "02.jpg"), ("can", "00.jpg")):
        small_photo(SAMPLES / name / photo, tmp_path / name / "products" / name / photo)
        recipes[name] = write_recipe(tmp_path / name, "products", prompt=f"{name} run: {{product}}")
    results, errors, observers = {}, [], {k: Recorder() for k in recipes}
    start = threading.Barrier(2)

    def go(name):
        try:
            resolved = load_recipe(recipes[name])
            start.wait()
            results[name] = run_recipe(resolved, out=tmp_path / "runs", observers=[observers[name]])
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(n,)) for n in recipes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for name, result in results.items():
        records = read_manifest(result.run_dir)
        assert {r["product"] for r in records} == {name} and records
        assert prompts_in_pngs(result.run_dir) == {name: f"{name} run: {name}"}
        assert observers[name].runs == {result.summary["run_id"]}  # never the other run's events
        assert set(observers[name].candidates) == {name}
        pngs = {p.name for p in (result.run_dir / "candidates").glob("*.png") if not p.name.endswith(".mask.png")}
        assert pngs == {f"{r['id']}.png" for r in records}


class Broken:
    """An observer whose on_candidate raises."""

    @hookimpl
    def on_candidate(self, run, record, image):
        raise ValueError("observer bug")


def test_an_observer_failure_warns_and_the_run_goes_on(toy_registry, toy_recipe, tmp_path):
    result = run_recipe(load_recipe(toy_recipe), out=tmp_path, observers=[Broken()])
    assert result.summary["total_candidates"] == 18 and not result.summary["failed_products"]
    assert result.summary["hook_warnings"] == [
        "hook on_candidate of plugin 'Broken' failed: ValueError: observer bug"]


def test_a_run_store_failure_is_fatal_and_named_as_a_hook_failure(toy_registry, toy_recipe, tmp_path, monkeypatch):
    from ecomforge.run.store import RunStore

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RunStore, "_save_candidate", disk_full)
    with pytest.raises(HookError) as info:
        run_recipe(load_recipe(toy_recipe), out=tmp_path)
    msg = info.value.one_line()
    assert msg.startswith("hook on_candidate of plugin 'RunStore' failed:") and "No space left" in msg
    assert "generate failed" not in msg  # not blamed on the generator


def test_stage_identity_and_versions_by_kind_in_the_run_folder(toy_registry, toy_recipe, tmp_path, monkeypatch):
    import yaml

    monkeypatch.setattr(toyplugins_scorer(), "identity", lambda self: {"model": "toy-judge-v1"}, raising=False)
    root = run_recipe(load_recipe(toy_recipe), out=tmp_path).run_dir
    rec = read_manifest(root)[0]
    assert rec["stage_models"] == {"score.toy": {"model": "toy-judge-v1"}}
    plugins = yaml.safe_load((root / "recipe.yaml").read_text())["plugins"]
    assert "executor:local" in plugins and "acquirer:toy" in plugins


def toyplugins_scorer():
    import toyplugins

    return toyplugins.ToyScorer


class Misspelt:
    """An observer with a hook name that does not exist."""

    @hookimpl
    def on_candidat(self, run, record, image):
        pass


def test_a_misspelt_observer_hook_fails_before_any_work_naming_the_observer(toy_registry, toy_recipe, tmp_path):
    from ecomforge.errors import PluginError

    with pytest.raises(PluginError) as info:
        run_recipe(load_recipe(toy_recipe), out=tmp_path / "runs", observers=[Misspelt()])
    assert "plugin 'Misspelt' implements an unknown hook" in info.value.one_line()
    assert "on_candidat" in info.value.one_line()
    assert not (tmp_path / "runs").exists()


def test_resume_from_another_working_folder_with_references_relative_to_the_first(tmp_path, monkeypatch):
    """Like the quickstart: references relative to the folder the run started in, resumed from elsewhere."""
    small_photo(SAMPLES / "vase" / "02.jpg", tmp_path / "project" / "photos" / "vase.jpg")
    recipe = tmp_path / "project" / "recipes" / "vase.yaml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text("name: vase\ninputs: {references: [photos/vase.jpg], prompt: a vase}\n"
                      "mask: {plugin: classic, config: {working_size: 128}}\n"
                      "generate: {plugin: composite, config: {size: [64, 64]}, seeds: [1, 2]}\n"
                      "score: [{plugin: color}]\n")
    monkeypatch.chdir(tmp_path / "project")
    first = run_recipe(load_recipe("recipes/vase.yaml"), out=tmp_path / "runs")
    stored = (first.run_dir / "recipe.yaml").read_text()
    assert str(tmp_path / "project" / "photos" / "vase.jpg") in stored  # absolute in the run folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = run_recipe(load_recipe(recipe), resume=first.run_dir)
    assert len(again.records) == 2 and not again.summary["failed_products"]


def test_manifest_records_have_exactly_the_documented_fields(toy_registry, toy_recipe, tmp_path):
    from ecomforge.run.record import FIELD_DOCS, ManifestRecord

    rec = run_recipe(load_recipe(toy_recipe), out=tmp_path).records[0]
    assert set(rec) == set(ManifestRecord.__annotations__) == set(FIELD_DOCS)
