"""Run folders and export folders are files a user can edit: a broken line is named, never a traceback."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ecomforge.analysis.export import export_imagefolder
from ecomforge.cli import main
from ecomforge.errors import InputError, UsageError
from ecomforge.run.store import read_failures, read_manifest


def _record(i: int) -> dict:
    return {"id": f"c{i:015d}", "product": "vase", "kept": True, "image": f"candidates/c{i:015d}.png",
            "prompt": "a vase", "negative_prompt": "", "seed": i, "params": {}, "models": {},
            "scores": {"s": 0.9}, "total": 0.9, "reference_sha256": "ab" * 32}


def _run_folder(tmp_path: Path, lines: list[str]) -> Path:
    run = tmp_path / "run"
    (run / "candidates").mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(run / "candidates" / f"c{i:015d}.png")
    (run / "manifest.jsonl").write_text("".join(line + "\n" for line in lines))
    return run


def test_cut_off_last_line_is_skipped(tmp_path):
    run = _run_folder(tmp_path, [json.dumps(_record(0)), json.dumps(_record(1))[:30]])
    assert [r["id"] for r in read_manifest(run)] == [_record(0)["id"]]


def test_broken_line_before_good_ones_is_named_not_dropped(tmp_path):
    # before: reading stopped at the broken line, silently losing every record after it
    run = _run_folder(tmp_path, [json.dumps(_record(0)), "{oops", json.dumps(_record(1))])
    with pytest.raises(InputError, match=r"manifest.jsonl: line 2: not a JSON record"):
        read_manifest(run)


@pytest.mark.parametrize("line, words", [("[1, 2]", "a record must be a JSON object, not list"),
                                         ('{"id": "x", "kept": true}', "candidate record without product")])
def test_record_that_is_not_a_candidate_is_named(tmp_path, line, words):
    run = _run_folder(tmp_path, [line, json.dumps(_record(0))])
    with pytest.raises(InputError, match=rf"line 1: {words}"):
        read_manifest(run)


def test_failure_record_without_product_is_named(tmp_path):
    run = _run_folder(tmp_path, ['{"record": "product_failed", "step": "mask"}'])
    with pytest.raises(InputError, match=r"line 1: product_failed record without a product"):
        read_failures(run)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(max_size=40), st.builds(lambda i: json.dumps(_record(i)), st.integers(0, 2))),
                max_size=6))
def test_any_manifest_reads_or_says_which_line(tmp_path, lines):
    run = _run_folder(tmp_path, [line.replace("\n", " ").replace("\r", " ") for line in lines])
    try:
        records = read_manifest(run)
        read_failures(run)
    except InputError as exc:
        assert "manifest.jsonl: line " in str(exc)
    else:
        assert all(isinstance(r, dict) and "id" in r for r in records)


def test_export_into_folder_with_broken_metadata_is_refused(tmp_path):
    run = _run_folder(tmp_path, [json.dumps(_record(0))])
    out = tmp_path / "ds"
    out.mkdir()
    (out / "metadata.jsonl").write_text('{"file_name": "a.png"}\nnot json\n')
    with pytest.raises(UsageError, match=r"metadata.jsonl: line 2: not a JSON row"):
        export_imagefolder(run, out)
    assert (out / "metadata.jsonl").read_text() == '{"file_name": "a.png"}\nnot json\n'  # left as it was
    (out / "metadata.jsonl").write_text('{"text": "no name"}\n')
    with pytest.raises(UsageError, match=r"line 1: a row needs a file_name"):
        export_imagefolder(run, out)


def test_cli_export_of_a_hand_broken_run_is_one_line_exit_2(tmp_path, capsys):
    run = _run_folder(tmp_path, ['{"id": "x", "kept": true}'])
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(run), str(tmp_path / "ds")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "manifest.jsonl: line 1: candidate record without product" in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["", " , "])
def test_products_option_naming_nothing_is_refused(toy_registry, toy_recipe, tmp_path, capsys, value):
    # before: an empty --products (say, an unset shell variable) silently ran the whole catalogue
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(toy_recipe), "--products", value, "--out", str(tmp_path / "runs")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--products: no product named" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # refused before any folder is made


def test_compare_report_shows_scorer_agreement_as_a_table_not_json_nulls():
    # before: the report printed the raw JSON, a column of "null" for every scorer that was constant
    from ecomforge.analysis.compare import _agreement_table

    page = _agreement_table({"a": {"color~seams": None, "dino~seams": 0.5}, "b": {"color~seams": -0.25}})
    assert "null" not in page and "{" not in page
    assert "<td>color ~ seams</td><td title=" in page and "<td>-0.25</td>" in page and "<td>+0.50</td>" in page
    assert page.count("—</td>") == 2  # A's constant pair and B's missing one
    assert "nothing to correlate" in _agreement_table({"a": {}, "b": {}})


def test_report_names_each_reference_by_the_photo_it_came_from(tmp_path):
    # before: references were captioned "00", "01" only, so a user could not tell which photo had which mask
    from ecomforge.run.report import render_report

    (tmp_path / "references" / "vase").mkdir(parents=True)
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("source", "shoot/02.jpg")
    Image.new("RGB", (8, 8)).save(tmp_path / "references" / "vase" / "00.png", pnginfo=info)
    recs = [{**_record(0), "reference": "00"}, {**_record(1), "reference": "01"}]  # 01 was never stored
    page = render_report(recs, title="t", root=tmp_path)
    assert "<figcaption>00 (02.jpg)</figcaption>" in page
    assert "<figcaption>01</figcaption>" in page
