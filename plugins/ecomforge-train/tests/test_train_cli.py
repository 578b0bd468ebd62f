"""``ecomforge train`` end to end on a tiny pipeline, resume, and bad inputs (exit code 2, one line)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ecomforge.cli import main

ROOT = Path(__file__).resolve().parents[3]


def run_cli(capsys, *args):
    """Run the real CLI entry point in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(["train", *map(str, args)])
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.fixture
def recipe(tmp_path, tiny_sd_inpaint, photos):
    """A train recipe for the tiny inpainting pipeline: 4 steps, checkpoints and validation every 2."""
    data = {"base_model": str(tiny_sd_inpaint), "references": [str(photos / "*.jpg")],
            "instance_prompt": "a photo of sks cup", "output": str(tmp_path / "out"), "steps": 4,
            "resolution": 64, "rank": 4, "checkpoint_every": 2, "device": "cpu", "learning_rate": 1e-3,
            "validation": {"num_images": 1, "steps": 2, "scorers": [{"plugin": "sharpness"}]}}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_train_end_to_end_then_resume(capsys, recipe, tmp_path):
    """LoRA file, checkpoints, jsonl log, loss curve, scored validation images; --resume carries on to 6."""
    code, out, err = run_cli(capsys, recipe, "--no-progress")
    assert code == 0, err
    folder = tmp_path / "out"
    assert (folder / "pytorch_lora_weights.safetensors").is_file()
    assert "estimated peak memory" in err
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    records = [json.loads(x) for x in (folder / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    val = [r for r in records if r.get("type") == "validation"]
    assert [r["step"] for r in val] == [2, 4]
    assert 0.0 <= val[-1]["scores"]["sharpness"] <= 1.0
    image = np.asarray(Image.open(folder / val[-1]["images"][0]))
    assert image.shape == (64, 64, 3) and image.std() > 0
    curve = Image.open(folder / "loss.png")
    assert curve.size == (720, 360) and np.asarray(curve.convert("L")).min() < 100  # something is drawn

    code, out, err = run_cli(capsys, recipe, "--no-progress")  # again, without --resume: refused
    assert code == 2 and "already holds checkpoints" in err.strip().splitlines()[-1]

    code, out, err = run_cli(capsys, recipe, "--set", "steps=6", "--resume", "--no-progress")
    assert code == 0, err
    records = [json.loads(x) for x in (folder / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]


def _not_a_diffusion_model(tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    return folder


@pytest.mark.parametrize("overrides,expected", [
    (["references=[/nonexistent/*.jpg]"], "/nonexistent/*.jpg"),
    (["base_model=NOT_A_MODEL"], "not a diffusion model"),
    (["stepz=3"], "did you mean 'steps'"),
    (["steps=0"], "steps"),
    (["resolution=100"], "multiple of 8"),
    (["use_8bit_adam=true"], "bitsandbytes"),
    (["variant=txt2img"], "inpainting model"),
    (["validation.scorers=[{plugin: nope}]"], "unknown scorer"),
    (["trainer=dreambooth"], "class_prompt"),
])
def test_bad_inputs_exit_2_with_one_line(capsys, recipe, tmp_path, overrides, expected):
    """Each mistake is one 'error:' line naming the key or file, and exit code 2 (no traceback)."""
    if importlib_has("bitsandbytes") and "use_8bit_adam=true" in overrides:
        pytest.skip("bitsandbytes is installed here")
    overrides = [o.replace("NOT_A_MODEL", str(_not_a_diffusion_model(tmp_path))) for o in overrides]
    args = [a for o in overrides for a in ("--set", o)]
    code, out, err = run_cli(capsys, recipe, *args, "--no-progress")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], err


def test_resume_without_a_checkpoint_is_a_usage_error(capsys, recipe):
    """--resume on an empty output folder says there is no checkpoint (exit 2)."""
    code, out, err = run_cli(capsys, recipe, "--resume", "--no-progress")
    assert code == 2 and "no checkpoint" in err.splitlines()[-1]


def importlib_has(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_imagefolder_captions_become_prompts(tmp_path, photos):
    """An 'ecomforge export' imagefolder: each metadata.jsonl text is that image's prompt."""
    from ecomforge.plugins import get_registry
    from ecomforge_train.command import gather_references

    folder = tmp_path / "export"
    folder.mkdir()
    rows = []
    for i, p in enumerate(sorted(photos.glob("*.jpg"))[:2]):
        (folder / f"img{i}.png").write_bytes(p.read_bytes())
        rows.append({"file_name": f"img{i}.png", "text": f"a photo of sks thing {i}", "id": str(i)})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    refs, captions = gather_references([str(folder)], tmp_path, get_registry())
    assert captions == ["a photo of sks thing 0", "a photo of sks thing 1"]
    assert refs[0].image.shape[2] == 3


def test_example_recipe_validates_offline_through_the_installed_command():
    """recipes/train-lora.yaml passes --check via the real console script (entry point, plugin hook)."""
    exe = Path(sys.executable).with_name("ecomforge")
    proc = subprocess.run([str(exe), "train", str(ROOT / "recipes" / "train-lora.yaml"), "--check"],
                          capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "trainer lora, 800 steps" in proc.stdout


def test_resume_without_a_checkpoint_is_found_before_the_model_loads(capsys, recipe, tmp_path):
    """The missing checkpoint is reported even where loading the model would fail: it is checked first."""
    code, out, err = run_cli(capsys, recipe, "--resume", "--no-progress",
                             "--set", f"base_model={_not_a_diffusion_model(tmp_path)}")
    assert code == 2 and err.strip().splitlines()[-1].startswith(f"error: --resume: no checkpoint in {tmp_path}")


def test_cuda_without_cuda_is_refused_before_loading(capsys, recipe, monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = run_cli(capsys, recipe, "--device", "cuda", "--no-progress",
                             "--set", f"base_model={_not_a_diffusion_model(tmp_path)}")
    assert code == 2 and "--device cuda: CUDA is not available on this machine" in err.strip().splitlines()[-1]


def test_interrupt_says_what_was_lost_and_resume_goes_on(capsys, recipe, tmp_path, monkeypatch):
    """Ctrl-C at step 3 (checkpoint at 2): one step lost and the resume command; the resume says where it starts
    and its log's clock goes on from the checkpoint's instead of restarting at 0."""
    from ecomforge_train.engine import LoraEngine

    real = LoraEngine.step

    def step(self, batch, n_prior=0):
        if self.step_count == 3:  # Ctrl-C during the fourth step, three of them done
            raise KeyboardInterrupt
        return real(self, batch, n_prior)

    monkeypatch.setattr(LoraEngine, "step", step)
    code, out, err = run_cli(capsys, recipe, "--no-progress", "--set", "validation.num_images=0")
    line = err.strip().splitlines()[-1]
    assert code == 130
    assert line.startswith("interrupted at step 3: 1 step(s) since the checkpoint at step 2 lost (resume with: "
                           f"ecomforge train {recipe} --set validation.num_images=0 --resume)"), err
    monkeypatch.setattr(LoraEngine, "step", real)
    log = tmp_path / "out" / "train_log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    records[1]["elapsed_s"] = 1000.0  # as if the first two steps had taken that long: the clock goes on from it
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, out, err = run_cli(capsys, recipe, "--no-progress", "--set", "validation.num_images=0", "--resume")
    assert code == 0, err
    assert f"resuming from step 2 ({tmp_path / 'out' / 'checkpoints' / 'step-000002'})" in err
    after = {r["step"]: r["elapsed_s"] for r in map(json.loads, log.read_text().splitlines()) if "loss" in r}
    assert list(after) == [1, 2, 3, 4] and after[1] == records[0]["elapsed_s"] and after[2] == 1000.0
    assert 1000.0 <= after[3] <= after[4]


def test_interrupt_before_any_checkpoint_says_none_exists(capsys, recipe, monkeypatch):
    from ecomforge_train.engine import LoraEngine

    real = LoraEngine.step

    def step(self, batch, n_prior=0):
        if self.step_count == 1:  # Ctrl-C during the second step
            raise KeyboardInterrupt
        return real(self, batch, n_prior)

    monkeypatch.setattr(LoraEngine, "step", step)
    code, out, err = run_cli(capsys, recipe, "--no-progress", "--set", "validation.num_images=0")
    assert code == 130 and err.strip().splitlines()[-1] == (
        "interrupted at step 1: 1 step(s) lost, and no checkpoint exists yet (checkpoint_every: 2)")
