"""`ecomforge models pull|list` through the real CLI entry point, offline."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ECOMFORGE = [sys.executable, "-c", "from ecomforge.cli import main; main()"]


def _run(args, env_extra, tmp_path):
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), **env_extra}
    return subprocess.run(ECOMFORGE + args, capture_output=True, text=True, env=env, timeout=120)


def test_models_pull_offline_is_one_clear_line(tmp_path):
    """Offline, `models pull` exits 2 with one line saying why and where to put the files instead."""
    res = _run(["models", "pull", "acme/some-inpainting"], {"ECOMFORGE_MODELS": str(tmp_path / "m")}, tmp_path)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith("error: cannot pull 'acme/some-inpainting'")
    assert str(tmp_path / "m" / "acme" / "some-inpainting") in lines[0]
    assert "Traceback" not in res.stderr


def test_models_list_shows_pulled_folders_and_single_files(tmp_path, tiny_sd_inpaint):
    """`models list --json` lists diffusers folders and single files under $ECOMFORGE_MODELS."""
    root = tmp_path / "m"
    shutil.copytree(tiny_sd_inpaint, root / "acme" / "tiny-inpaint")
    (root / "loose").mkdir(parents=True)
    (root / "loose" / "ckpt.safetensors").write_bytes(b"x" * 10)
    res = _run(["models", "list", "--json"], {"ECOMFORGE_MODELS": str(root)}, tmp_path)
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    ids = {r["id"]: r for r in rows}
    assert set(ids) == {"acme/tiny-inpaint", "loose/ckpt.safetensors"}
    assert ids["acme/tiny-inpaint"]["size"] > 100_000 and ids["loose/ckpt.safetensors"]["size"] == 10
    table = _run(["models", "list"], {"ECOMFORGE_MODELS": str(root)}, tmp_path)
    assert "acme/tiny-inpaint" in table.stdout and Path(table.stdout.split()[-1]).name == "ckpt.safetensors"
