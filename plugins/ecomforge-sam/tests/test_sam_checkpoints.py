"""SAM checkpoints: the tiny builder, safe loading (.pth weights_only, .safetensors), type inference, errors."""
from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch

from ecomforge.errors import InputError, ModelNotFound
from ecomforge.testing.tiny_sam import build_tiny_sam, tiny_sam_state_dict
from ecomforge_sam.checkpoints import (
    ARCHITECTURES,
    DOWNLOAD_URL,
    OFFICIAL,
    infer_architecture,
    load_sam,
    model_type_of,
    resolve_checkpoint,
)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_builder_is_deterministic_and_a_plain_state_dict(tmp_path, tiny_sam_checkpoint):
    again = build_tiny_sam(tmp_path / "again")
    assert sha(again) == sha(tiny_sam_checkpoint)
    state = torch.load(tiny_sam_checkpoint, weights_only=True)  # Meta's format: a bare name -> tensor dict
    assert isinstance(state, dict) and state["image_encoder.pos_embed"].shape == (1, 64, 64, 32)
    assert 4.5e6 < sum(v.numel() for v in state.values()) < 5.2e6
    assert sha(build_tiny_sam(tmp_path / "other", seed=1)) != sha(tiny_sam_checkpoint)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_loads_through_the_user_path_with_the_saved_weights(tmp_path, fmt):
    path = build_tiny_sam(tmp_path, fmt=fmt)
    loaded = load_sam(str(path), device="cpu")
    assert loaded.model_type == "tiny" and loaded.path.suffix == f".{fmt}"
    assert loaded.sha256 == sha(path) and loaded.sha256[:12] in loaded.model_id
    expected = tiny_sam_state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    # pixel statistics are not in checkpoints: they must be SAM's constants, not meta/garbage tensors
    assert torch.allclose(loaded.model.pixel_mean.flatten(), torch.tensor([123.675, 116.28, 103.53]))
    assert load_sam(str(path), device="cpu") is loaded  # MODEL_CACHE: loads once per process


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_architecture_is_read_off_the_shapes(name):
    from segment_anything.build_sam import _build_sam

    with torch.device("meta"):  # full-size shapes without allocating weights
        state = _build_sam(**ARCHITECTURES[name].kwargs()).state_dict()
    assert model_type_of(infer_architecture(state)) == name


def test_official_names_resolve_from_the_model_cache(tmp_path, monkeypatch, tiny_sam_checkpoint):
    monkeypatch.setenv("ECOMFORGE_MODELS", str(tmp_path))
    with pytest.raises(ModelNotFound) as info:
        resolve_checkpoint("vit_b")
    line = info.value.one_line()
    assert f"{DOWNLOAD_URL}{OFFICIAL['vit_b']}" in line and str(tmp_path / "sam") in line
    (tmp_path / "sam").mkdir()
    (tmp_path / "sam" / OFFICIAL["vit_h"]).write_bytes(tiny_sam_checkpoint.read_bytes())
    assert resolve_checkpoint("vit_h") == tmp_path / "sam" / OFFICIAL["vit_h"]
    # The file's shapes say it is not really vit_h: a stated type that disagrees is an input error.
    with pytest.raises(InputError, match="tiny checkpoint but model_type is vit_h"):
        load_sam("vit_h", model_type="vit_h", device="cpu")


def test_missing_path_says_what_to_use(tmp_path):
    with pytest.raises(ModelNotFound, match="not found") as info:
        load_sam(str(tmp_path / "nope.pth"), device="cpu")
    assert "vit_b" in info.value.one_line()


def test_folder_holding_a_checkpoint_is_accepted(tmp_path):
    build_tiny_sam(tmp_path / "weights")
    assert resolve_checkpoint(str(tmp_path / "weights")).name == "sam_vit_tiny.pth"


class Boom:
    """An object whose unpickling would run code: weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("content, needle", [
    (b"not a checkpoint at all", "not a readable SAM checkpoint"),
    (pickle.dumps({"image_encoder.pos_embed": Boom()}, protocol=2), "not a readable SAM checkpoint"),
], ids=["garbage", "code-running-pickle"])
def test_unreadable_or_unsafe_files_are_input_errors(tmp_path, capfd, content, needle):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(InputError, match=needle) as info:
        load_sam(str(path), device="cpu")
    assert str(path) in info.value.one_line()
    assert "pwned" not in capfd.readouterr().out  # the pickle's code never ran


def test_other_state_dicts_are_rejected_by_name(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(2, 3)}, path)
    with pytest.raises(InputError, match="not a SAM checkpoint"):
        load_sam(str(path), device="cpu")
    state = tiny_sam_state_dict()
    state["mask_decoder.iou_token.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(InputError, match="do not fit SAM's architecture"):
        load_sam(str(tmp_path / "broken.pth"), device="cpu")


def test_wrapped_state_dicts_are_unwrapped(tmp_path):
    torch.save({"model": tiny_sam_state_dict()}, tmp_path / "wrapped.pth")
    loaded = load_sam(str(tmp_path / "wrapped.pth"), device="cpu")
    assert loaded.model_type == "tiny"
    assert np.isfinite(loaded.model.mask_decoder.iou_token.weight.detach().numpy()).all()
