"""`ecomforge recreate RUN ID` with the offline composite generator: the record alone rebuilds the pixels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ecomforge.imaging.io import read_png

VASE = Path(__file__).resolve().parents[1] / "samples" / "dreambench" / "vase" / "02.jpg"
RECIPE = f"""
name: recreate-test
inputs: {{references: ["{VASE}"], prompt: "a vase, studio"}}
mask: {{plugin: classic, config: {{feather: 2, dilate: 1}}}}
generate:
  plugin: composite
  config: {{size: [160, 128], scale: 0.7, jitter: 0.6}}
  sweep: {{background: ["#f4efe6", "linear:#ffffff:#d8dee6"]}}
  seeds: [1, 2, 3]
  batch_size: 2
filter: {{plugin: threshold, config: {{min_score: 0.0}}}}
output: {{metadata: minimal, format: webp, quality: 80}}
"""


def _main(args):
    from ecomforge.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("recreate")
    (root / "r.yaml").write_text(RECIPE)
    assert _main(["run", str(root / "r.yaml"), "--out", str(root / "runs"), "--progress", "none"]) == 0
    return next((root / "runs").iterdir())


def test_every_candidate_recreates_bit_exact(run_dir, capsys):
    """A record's params are its generator's config (derived values such as hue_shift live in info)."""
    records = [json.loads(line) for line in (run_dir / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all("hue_shift" in r["info"] and "hue_shift" not in r["params"] for r in records)
    for rec in records:
        capsys.readouterr()
        assert _main(["recreate", str(run_dir), rec["id"]]) == 0, capsys.readouterr().err
        assert "bit-exact" in capsys.readouterr().out
        again, _ = read_png(run_dir / "recreated" / f"{rec['id']}.png")
        assert np.array_equal(again, read_png(run_dir / rec["image"])[0])


def test_recreate_reports_a_changed_image_and_a_missing_id(run_dir, capsys):
    """A stored image that no longer matches exits 1 naming how much differs; an unknown id exits 2."""
    from ecomforge.imaging.io import save_png

    rec = json.loads((run_dir / "manifest.jsonl").read_text().splitlines()[0])
    pixels, text = read_png(run_dir / rec["image"])
    tampered = pixels.copy()
    corner = tampered[:4, :4].astype(int)
    tampered[:4, :4] = np.where(corner > 127, corner - 7, corner + 7)
    save_png(run_dir / rec["image"], tampered, text)
    try:
        assert _main(["recreate", str(run_dir), rec["id"], "--out", str(run_dir / "x.png")]) == 1
        assert "16 pixels differ (max 7 levels)" in capsys.readouterr().err
    finally:
        save_png(run_dir / rec["image"], pixels, text)
    assert _main(["recreate", str(run_dir), "ffffffffffff"]) == 2
    assert "no candidate 'ffffffffffff'" in capsys.readouterr().err


def test_minimal_metadata_and_storefront_format(run_dir):
    """metadata: minimal keeps A1111's fields only; selected images are WebP with the same parameters."""
    from ecomforge.imaging.io import read_parameters

    records = [json.loads(line) for line in (run_dir / "manifest.jsonl").read_text().splitlines()]
    kept = [r for r in records if r["kept"]]
    assert kept and all(r["selected"].endswith(".webp") and (run_dir / r["selected"]).is_file() for r in kept)
    _, text = read_png(run_dir / kept[0]["image"])
    assert set(text) == {"parameters"}  # no candidate id, no ecomforge JSON
    assert read_parameters(run_dir / kept[0]["selected"]) == text["parameters"]
    assert f"Seed: {kept[0]['seed']}, Size: 160x128" in text["parameters"]
    # no absolute local path anywhere in the images' text (the reference's source included)
    ref_png = next((run_dir / "references").rglob("*.png"))
    assert str(VASE.parent) not in read_png(ref_png)[1]["source"]


def test_a_deleted_image_is_restored_with_the_command_export_names(run_dir, tmp_path, capsys):
    """Export refuses a run whose kept image was deleted and names the recreate command that restores it. That
    command says the stored image is missing (it cannot claim bit-exact against the file it is writing), and
    export goes on; run again, it compares with the restored file before writing."""
    import shlex
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    rec = json.loads((run / "manifest.jsonl").read_text().splitlines()[0])
    original, _ = read_png(run / rec["image"])
    (run / rec["image"]).unlink()
    capsys.readouterr()
    assert _main(["export", str(run), str(tmp_path / "ds"), "--include", "all"]) == 2
    err = capsys.readouterr().err
    hinted = shlex.split(err.split("(regenerate it from its record: ", 1)[1].rstrip().rstrip(")"))
    assert hinted[:3] == ["ecomforge", "recreate", str(run)] and hinted[3] == rec["id"]
    assert _main(hinted[1:]) == 0
    out = capsys.readouterr()
    assert "is missing" in out.err and "not compared" in out.err and "bit-exact" not in out.out
    assert np.array_equal(read_png(run / rec["image"])[0], original)
    assert _main(hinted[1:]) == 0 and "bit-exact" in capsys.readouterr().out
    assert _main(["export", str(run), str(tmp_path / "ds"), "--include", "all"]) == 0
