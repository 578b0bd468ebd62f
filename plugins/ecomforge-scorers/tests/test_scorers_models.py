"""Tiny CLIP/DINOv2 built in genuine formats load through the user's path; missing models fail clearly."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import skimage.data

from ecomforge.errors import ModelNotFound
from ecomforge.models import MODEL_CACHE


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_clip_is_deterministic_idempotent_and_in_open_clip_layout(tiny_open_clip, tmp_path):
    """Two builds give identical bytes; the folder is what an hf-hub open_clip repo holds."""
    from ecomforge.testing.tiny_clip import build_tiny_open_clip

    other = build_tiny_open_clip(tmp_path / "again")
    weights = "open_clip_model.safetensors"
    assert _sha(other / weights) == _sha(tiny_open_clip / weights)
    before = (other / weights).stat().st_mtime_ns
    assert build_tiny_open_clip(other) == other and (other / weights).stat().st_mtime_ns == before
    config = json.loads((tiny_open_clip / "open_clip_config.json").read_text())
    assert set(config) == {"model_cfg", "preprocess_cfg"} and config["model_cfg"]["embed_dim"] == 32
    assert _sha(build_tiny_open_clip(tmp_path / "seed1", seed=1) / weights) != _sha(other / weights)


def test_load_clip_matches_open_clip_local_dir(tiny_open_clip):
    """Embeddings equal open_clip's own 'local-dir:' load of the folder, normalised; the model is cached."""
    import open_clip
    import torch
    from PIL import Image

    from ecomforge.clip import load_clip

    emb = load_clip(str(tiny_open_clip), "cpu")
    assert load_clip(str(tiny_open_clip), "cpu") is emb
    assert ("open_clip", str(tiny_open_clip.resolve()), "cpu") in MODEL_CACHE.keys()
    images = [skimage.data.coffee(), skimage.data.chelsea()]
    ours = emb.encode_images(images, batch_size=1)
    assert ours.shape == (2, 32) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tiny_open_clip}")
    with torch.no_grad():
        ref = model.encode_image(torch.stack([preprocess(Image.fromarray(i)) for i in images]), normalize=True)
    np.testing.assert_allclose(ours, ref.numpy(), atol=1e-5)
    texts = emb.encode_texts(["a cup of coffee", "a cat", "a rocket"], batch_size=2)
    assert texts.shape == (3, 32) and emb.text_batches >= 2
    assert not np.allclose(texts[0], texts[1])


def test_load_clip_from_weights_file_beside_its_config(tiny_open_clip):
    """A single weights file with open_clip_config.json beside it loads to the same model."""
    from ecomforge.clip import load_clip

    by_file = load_clip(str(tiny_open_clip / "open_clip_model.safetensors"), "cpu")
    by_dir = load_clip(str(tiny_open_clip), "cpu")
    img = [skimage.data.rocket()]
    np.testing.assert_allclose(by_file.encode_images(img), by_dir.encode_images(img), atol=1e-6)


@pytest.mark.parametrize("model, message", [
    ("ViT-B-32/laion2b_s34b_b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
    ("ViT-B-32", "names no pretrained weights"),
    ("ViT-B-32/not_a_tag", "not a pretrained tag"),
    ("no-such-arch/x", "neither a local path nor an open_clip architecture"),
])
def test_missing_clip_says_what_to_download(model, message, monkeypatch, tmp_path):
    """Offline and absent: ModelNotFound (exit code 2) naming what to fetch; no raw library error."""
    from ecomforge.clip import load_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    monkeypatch.setenv("ECOMFORGE_MODELS", str(tmp_path / "models"))
    with pytest.raises(ModelNotFound) as info:
        load_clip(model, "cpu")
    line = info.value.one_line()
    assert message in line and info.value.exit_code == 2 and "\n" not in line


def test_clip_folder_without_weights_is_refused(tiny_open_clip, tmp_path):
    """A config with no weights must not silently become a random model."""
    from ecomforge.clip import load_clip

    (tmp_path / "open_clip_config.json").write_text((tiny_open_clip / "open_clip_config.json").read_text())
    with pytest.raises(ModelNotFound, match="no weights file"):
        load_clip(str(tmp_path), "cpu")


def test_models_dir_folder_is_found_for_a_tag(tiny_open_clip, tmp_path, monkeypatch):
    """ARCH/TAG resolves to <models_dir>/open_clip/ARCH-TAG when a download was put there."""
    import shutil

    from ecomforge.clip import resolve_clip

    monkeypatch.setenv("ECOMFORGE_MODELS", str(tmp_path))
    target = tmp_path / "open_clip" / "ViT-B-32-openai"
    shutil.copytree(tiny_open_clip, target)
    assert resolve_clip("ViT-B-32/openai").create_name == f"local-dir:{target.resolve()}"


def test_tiny_dinov2_loads_through_auto_classes(tiny_dinov2, tmp_path):
    """The DINOv2 folder is deterministic and loads with AutoModel/AutoImageProcessor via load_dino."""
    from ecomforge.testing.tiny_dino import build_tiny_dinov2
    from ecomforge_scorers.dino import load_dino

    again = build_tiny_dinov2(tmp_path / "again")
    assert _sha(again / "model.safetensors") == _sha(tiny_dinov2 / "model.safetensors")
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in tiny_dinov2.iterdir()}
    emb = load_dino(str(tiny_dinov2), "cpu")
    assert type(emb.model).__name__ == "Dinov2Model" and type(emb.processor).__name__ == "BitImageProcessor"
    before = emb.image_batches  # the model is process-wide: other tests may have used it
    out = emb.encode_images([skimage.data.coffee(), skimage.data.astronaut()], batch_size=1)
    assert out.shape == (2, 32) and emb.image_batches - before == 2
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert load_dino(str(tiny_dinov2), "cpu") is emb


def test_missing_dino_says_what_to_download(monkeypatch, tmp_path):
    """An absent hub id offline, or a folder without config.json: ModelNotFound with the fix."""
    from ecomforge_scorers.dino import load_dino

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("ECOMFORGE_MODELS", str(tmp_path / "models"))
    with pytest.raises(ModelNotFound) as info:
        load_dino("facebook/dinov2-small", "cpu")
    assert "huggingface-cli download facebook/dinov2-small" in info.value.one_line()
    with pytest.raises(ModelNotFound, match="no config.json"):
        load_dino(str(tmp_path), "cpu")


def test_lpips_pretrained_offline_without_trunk_is_refused(monkeypatch, tmp_path):
    """backbone: pretrained offline with no AlexNet file names the file and where it goes."""
    import torch

    from ecomforge_scorers.lpips_scorer import load_lpips

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ModelNotFound) as info:
        load_lpips("pretrained", "cpu")
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth there" in info.value.one_line()
    with pytest.warns(UserWarning, match="RANDOM trunk"):
        MODEL_CACHE.clear()
        _, model_id = load_lpips("auto", "cpu")
    assert "random" in model_id


def test_architecture_plus_weights_file(tiny_open_clip, tmp_path):
    """'ARCH//path/file.safetensors' builds the named architecture and loads that file (weights_only)."""
    import open_clip

    from ecomforge.clip import load_clip, resolve_clip

    cfg = json.loads((tiny_open_clip / "open_clip_config.json").read_text())["model_cfg"]
    (tmp_path / "ecomforge-tiny-test.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "ecomforge-tiny-test.json")  # an architecture open_clip now knows by name
    weights = tiny_open_clip / "open_clip_model.safetensors"
    source = resolve_clip(f"ecomforge-tiny-test/{weights}")
    assert (source.create_name, source.checkpoint) == ("ecomforge-tiny-test", str(weights.resolve()))
    img = [skimage.data.coffee()]
    np.testing.assert_allclose(load_clip(f"ecomforge-tiny-test/{weights}", "cpu").encode_images(img),
                               load_clip(str(tiny_open_clip), "cpu").encode_images(img), atol=1e-5)


def test_importing_the_plugin_does_not_import_torch():
    """Registering the scorers and the bench command leaves torch, open_clip and transformers unimported."""
    import subprocess
    import sys

    code = ("import sys, ecomforge_scorers.scorers, ecomforge_scorers.command, ecomforge_scorers.fidelity;"
            "print([m for m in ('torch', 'open_clip', 'transformers', 'lpips') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_lpips_check_refuses_a_missing_pretrained_trunk_before_work(make_scorer, monkeypatch, tmp_path):
    """check() (called before any work) finds what setup() would: the key, the file and where it goes."""
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ModelNotFound) as info:
        make_scorer("lpips", backbone="pretrained").check()
    assert info.value.one_line().startswith("config.backbone: pretrained: offline")
    make_scorer("lpips", backbone="auto").check()  # auto falls back to the seeded random trunk


def test_clip_check_finds_a_cached_tag_and_a_typo_in_a_path(tiny_open_clip, monkeypatch, tmp_path):
    """check_clip: an existing folder passes; a mistyped local path says no such folder (no download advice)."""
    from ecomforge.clip import check_clip

    assert check_clip(str(tiny_open_clip)).model_id == str(tiny_open_clip.resolve())
    with pytest.raises(ModelNotFound) as info:
        check_clip(str(tmp_path / "clipp"), "mask.config.clip_model")
    assert info.value.one_line().startswith(f"mask.config.clip_model: no such folder or file: {tmp_path / 'clipp'}")
    assert "download" not in info.value.one_line()
