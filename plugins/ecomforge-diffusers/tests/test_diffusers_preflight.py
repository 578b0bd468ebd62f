"""What a run can know before work is checked before work: device, base_config, LoRA files; and a candidate
whose paste-back hides everything it generated is failed, not scored as a perfect copy."""
from __future__ import annotations

import numpy as np
import pytest

from ecomforge.errors import InputError
from ecomforge.imaging.io import save_png
from ecomforge.models import MODEL_CACHE, resolve_device
from ecomforge.testing import sample_image
from ecomforge_diffusers.generators import SdImg2ImgGenerator, SdInpaintGenerator

from diffusers_testutil import FAST, KeepAllFilterPlugin, request_for

RECIPE = """
name: preflight
inputs: {references: [ref.png], prompt: "a product on a table"}
mask: {plugin: classic}
generate:
  plugin: sd-inpaint
  config: {model: MODEL, steps: 2, max_side: 64, scheduler: DDIM}
  seeds: [1]
filter: {plugin: keep-all-sd-test}
"""


def _main(args):
    from ecomforge.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


@pytest.fixture
def project(tmp_path, tiny_sd_inpaint, ecomforge_plugins):
    ecomforge_plugins(KeepAllFilterPlugin)
    save_png(tmp_path / "ref.png", sample_image(64, 48)[0])
    (tmp_path / "r.yaml").write_text(RECIPE.replace("MODEL", str(tiny_sd_inpaint)))
    return tmp_path


def _run(project, capsys, *sets, device="cpu"):
    args = ["run", str(project / "r.yaml"), "--out", str(project / "runs"), "--progress", "none", "--device", device]
    for item in sets:
        args += ["--set", item]
    code = _main(args)
    return code, capsys.readouterr().err


def _no_run_folder(project):
    return not (project / "runs").exists() or not list((project / "runs").iterdir())


def _lora(path, tensors):
    import torch
    from safetensors.torch import save_file

    save_file({k: torch.zeros(shape) for k, shape in tensors.items()}, str(path), metadata={"format": "pt"})
    return path


def test_cuda_without_cuda_is_refused_where_the_device_is_resolved(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError) as info:
        resolve_device("cuda")
    assert info.value.message == ("--device cuda: CUDA is not available on this machine "
                                  "(torch.cuda.is_available() is false)") and info.value.exit_code == 2
    with pytest.raises(InputError, match="^--device cuda:1: CUDA is not available"):
        resolve_device("cuda:1")
    assert resolve_device("cpu") == "cpu" and resolve_device("auto") in ("cpu", "mps")


def test_run_on_cuda_without_cuda_stops_before_the_model_loads(project, capsys, monkeypatch):
    """Exit 2 and one line from the generator's pre-flight check: no run folder, no pipeline loaded
    (recreate resolves the device before it loads the pipeline, so it gets the same line)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = _run(project, capsys, device="cuda")
    assert code == 2 and "--device cuda: CUDA is not available on this machine" in err, err
    assert len(err.strip().splitlines()) == 1 and _no_run_folder(project)
    assert not [k for k in MODEL_CACHE.keys() if "cuda" in k]
    gen = SdInpaintGenerator({"model": str(project / "x"), **FAST}, device="cuda")
    with pytest.raises(InputError, match="--device cuda"):
        gen.ensure_setup()  # what recreate calls first


def test_base_config_of_another_model_names_the_key(tmp_path, tiny_sd_img2img, project, capsys):
    """An inpainting single file with a text-to-image base_config: one line naming base_config, before work."""
    from ecomforge.testing.tiny_diffusers import build_tiny_single_file

    single = build_tiny_single_file(tmp_path / "inpaint.safetensors", kind="inpaint")
    code, err = _run(project, capsys, f"generate.config.model={single}",
                     f"generate.config.base_config={tiny_sd_img2img}")
    assert code == 2 and _no_run_folder(project), err
    assert (f"generate.config.base_config: {tiny_sd_img2img} is a config for another model (conv_in has 4 input "
            "channels, the checkpoint 9)") in err
    assert "ignore_mismatched_sizes" not in err


def test_base_config_mismatch_at_load_is_an_input_error(tmp_path, tiny_sd_img2img):
    """Where only the load finds it (a base_config on the hub), diffusers' error and its advice about loader
    flags become the key and the shapes."""
    from diffusers import StableDiffusionInpaintPipeline

    from ecomforge.testing.tiny_diffusers import build_tiny_single_file
    from ecomforge_diffusers.loading import _mismatch

    single = build_tiny_single_file(tmp_path / "inpaint.safetensors", kind="inpaint")
    with pytest.raises(ValueError) as raw:
        StableDiffusionInpaintPipeline.from_single_file(str(single), config=str(tiny_sd_img2img),
                                                        local_files_only=True, safety_checker=None)
    line = _mismatch(raw.value, "acme/sd-base", single).one_line()
    assert line.startswith("generate.config.base_config: acme/sd-base is a config for another model (conv_in")
    assert "in inpaint.safetensors" in line and "low_cpu_mem_usage" not in line


@pytest.mark.parametrize("make, needle", [
    (lambda d: d / "nope.safetensors", "loras[0].path: {d}/nope.safetensors does not exist"),
    (lambda d: (d / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all") and
     d / "bad.safetensors", "loras[0].path: {d}/bad.safetensors is not a readable safetensors file"),
    (lambda d: (d / "lora.bin").write_bytes(b"pickle") and d / "lora.bin",
     "loras[0].path: {d}/lora.bin is not a .safetensors file; pickle checkpoints are not loaded"),
])
def test_bad_lora_files_stop_the_run_before_the_model_loads(project, capsys, make, needle):
    path = make(project)
    code, err = _run(project, capsys, f"generate.config.loras=[{{path: {path}}}]")
    assert code == 2 and needle.format(d=project) in err and _no_run_folder(project), err
    assert len(err.strip().splitlines()) == 1


def test_inpainting_lora_in_img2img_is_refused_by_check(tmp_path, tiny_sd_img2img):
    lora = _lora(tmp_path / "inp.safetensors", {"unet.conv_in.lora.down.weight": (4, 9, 3, 3),
                                                 "unet.conv_in.lora.up.weight": (32, 4, 1, 1)})
    gen = SdImg2ImgGenerator({"model": str(tiny_sd_img2img), "loras": [{"path": str(lora)}], **FAST}, device="cpu")
    with pytest.raises(InputError) as info:
        gen.check()
    assert info.value.one_line() == (f"generate.config.loras[0].path: {lora} is a LoRA for an inpainting model "
                                     "(9 input channels); sd-img2img runs a 4-channel model")


def test_pickle_lora_is_not_loaded_at_generate_time_either(gen_inpaint, tmp_path):
    """Even past check() (a sweep point's LoRA), a .bin LoRA is refused, never unpickled."""
    import torch

    torch.save({"unet.x": torch.zeros(1)}, tmp_path / "lora.bin")
    with pytest.raises(InputError, match="not a .safetensors file; pickle checkpoints are not loaded"):
        gen_inpaint.generate(request_for(gen_inpaint, loras=[{"path": str(tmp_path / "lora.bin")}]))


@pytest.fixture
def gen_inpaint(tiny_sd_inpaint):
    return SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST}, device="cpu")


def test_lora_without_text_encoder_keys_loads_without_the_notice(gen_inpaint, tiny_sd_inpaint, tmp_path):
    """diffusers' "No LoRA keys associated to CLIPTextModel" is not logged for a UNet-only LoRA."""
    import logging

    from ecomforge.testing.tiny_diffusers import build_tiny_lora

    class Seen(logging.Handler):
        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    seen = Seen()
    log = logging.getLogger("diffusers.loaders.lora_base")  # diffusers' loggers do not propagate to the root
    log.addHandler(seen)
    try:
        lora = build_tiny_lora(tiny_sd_inpaint, tmp_path / "l.safetensors")
        out = gen_inpaint.generate(request_for(gen_inpaint, loras=[{"path": str(lora)}]))
    finally:
        log.removeHandler(seen)
    assert out[0].failed is None and "lora:l.safetensors" in out[0].models
    assert not [line for line in seen.lines if "No LoRA keys associated" in line]


def test_paste_back_over_the_whole_image_fails_the_candidates(gen_inpaint):
    """A striped (fragmented) mask, dilated and feathered: the paste-back hides every generated pixel."""
    stripes = np.zeros((64, 96), np.uint8)
    stripes[:, ::4] = stripes[:, 1::4] = 255  # half the image, in 2 px stripes
    out = gen_inpaint.generate(request_for(gen_inpaint, seeds=(1, 2), mask_data=stripes, mask_dilate=4,
                                           mask_feather=8))
    assert all(c.failed and c.failed.startswith("paste-back covers 100 % of the image: nothing was regenerated; "
                                                "the mask is fragmented or dilate/feather too large")
               for c in out)
    ordinary = gen_inpaint.generate(request_for(gen_inpaint, seeds=(1,), mask_dilate=4, mask_feather=8))
    assert ordinary[0].failed is None


def test_float16_on_cpu_is_refused_before_work(project, capsys):
    code, err = _run(project, capsys, "generate.config.dtype=float16")
    assert code == 2 and _no_run_folder(project), err
    assert "generate.config.dtype: float16 does not run on CPU" in err and len(err.strip().splitlines()) == 1


def test_long_prompts_are_chunked_without_the_tokenizer_warning(gen_inpaint):
    """A prompt over 77 tokens is encoded in chunks; transformers' "longer than the maximum" warning is not logged."""
    import logging

    from ecomforge_diffusers.prompts import encode_for

    pipe = gen_inpaint._pipeline(gen_inpaint.config).pipe
    pipe.tokenizer.deprecation_warnings.clear()  # the warning is logged once per tokenizer
    seen = []

    class Seen(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Seen()
    log = logging.getLogger("transformers.tokenization_utils_base")
    log.addHandler(handler)
    try:
        _, _, info = encode_for(pipe, " ".join(["a red ceramic vase"] * 30), "", weighting=True, device=pipe.device)
    finally:
        log.removeHandler(handler)
    assert info["prompt_chunks"] >= 2
    assert not [line for line in seen if "longer than the specified maximum" in line]


def test_a_trained_lora_is_named_after_its_folder_in_the_infotext(gen_inpaint, tiny_sd_inpaint, tmp_path):
    from ecomforge.testing.tiny_diffusers import build_tiny_lora

    lora = build_tiny_lora(tiny_sd_inpaint, tmp_path / "backpack-lora" / "pytorch_lora_weights.safetensors")
    out = gen_inpaint.generate(request_for(gen_inpaint, loras=[{"path": str(lora)}]))[0]
    assert out.info["a1111"]["loras"] == [["backpack-lora", 1.0]]
    assert out.info["a1111"]["fields"]["Lora hashes"].startswith("backpack-lora: ")


def test_fingerprints_match_the_record_until_a_file_changes(gen_inpaint, tiny_sd_inpaint, tmp_path):
    """fingerprints(config) gives what a candidate records in models; a retrained LoRA shows as a change."""
    import shutil

    from ecomforge.models import fingerprint_changes
    from ecomforge.testing.tiny_diffusers import build_tiny_lora

    lora = tmp_path / "lora.safetensors"
    shutil.copy(build_tiny_lora(tiny_sd_inpaint, tmp_path / "a" / "l.safetensors", seed=1), lora)
    req = request_for(gen_inpaint, loras=[{"path": str(lora)}])
    cand = gen_inpaint.generate(req)[0]
    assert gen_inpaint.fingerprints(req.config) == cand.models
    assert fingerprint_changes(cand.models, gen_inpaint.fingerprints(req.config)) == []
    shutil.copy(build_tiny_lora(tiny_sd_inpaint, tmp_path / "b" / "l.safetensors", seed=2), lora)  # retrained
    changes = fingerprint_changes(cand.models, gen_inpaint.fingerprints(req.config))
    assert len(changes) == 1 and changes[0].startswith("lora:lora.safetensors: recorded a1111-hash:")
