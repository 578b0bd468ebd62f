"""The trainers as registered plugins: ``lora`` and ``dreambooth`` (prior preservation on class images)."""
from __future__ import annotations

import json

import pytest

from ecomforge.errors import RecipeError
from ecomforge.plugins import get_registry
from ecomforge.stages import Trainer


def test_both_trainers_are_registered_with_described_configs():
    """`lora` and `dreambooth` come from ecomforge-train; every config field has a description."""
    registry = get_registry()
    for name in ("lora", "dreambooth"):
        info = registry.get("trainer", name)
        assert issubclass(info.cls, Trainer) and info.distribution == "ecomforge-train"
        fields = info.cls.Config.model_fields
        assert all(f.description for f in fields.values()), [k for k, f in fields.items() if not f.description]
    assert registry.get("trainer", "dreambooth").cls.Config.model_fields["prior_preservation"].default is True


def test_dreambooth_generates_class_images_and_trains_with_the_prior_loss(tmp_path, tiny_sd_img2img, references,
                                                                          config_for):
    """Missing class images are drawn by the base model; training then mixes them into every batch."""
    refs, _ = references
    cfg = config_for(tiny_sd_img2img, steps=2, class_prompt="a photo of a cup", num_class_images=2,
                     validation={"num_images": 1, "steps": 2, "scorers": []})
    trainer = get_registry().create("trainer", "dreambooth", cfg, device="cpu")
    path = trainer.train(refs, tmp_path, echo=lambda m: None)
    assert path.is_file()
    assert sorted(p.name for p in (tmp_path / "class_images").iterdir()) == ["class-00000.png", "class-00001.png"]
    info = json.loads((tmp_path / "train_info.json").read_text())
    assert info["train_text_encoder"] is True  # dreambooth's default


def test_unknown_validation_scorer_fails_before_any_weights_load(tmp_path, references, config_for):
    """A misspelt scorer is a RecipeError naming validation.scorers (the base model is never opened)."""
    refs, _ = references
    cfg = config_for("/nonexistent/model", validation={"num_images": 1, "scorers": [{"plugin": "colr"}]})
    with pytest.raises(RecipeError, match="validation.scorers.0.plugin"):
        get_registry().create("trainer", "lora", cfg, device="cpu").train(refs, tmp_path)


def test_registering_the_plugin_and_its_command_imports_no_torch():
    """The hooks and the train command module stay light: torch loads only when training runs."""
    import subprocess
    import sys

    code = ("import sys, click, ecomforge_train as p; import ecomforge_train.command, ecomforge_train.trainers, "
            "ecomforge_train.config; g = click.Group(); p.register_commands(cli=g); p.register_trainers(lambda c: None); "
            "assert 'train' in g.commands; assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
