"""A trained LoRA loads by path into the sd-inpaint / sd-img2img generators (ecomforge-diffusers) and changes them."""
from __future__ import annotations

import numpy as np
import pytest

from ecomforge.errors import InputError
from ecomforge.plugins import get_registry
from ecomforge.testing import make_reference
from ecomforge.types import GenerationRequest, Mask
from ecomforge_train.config import TrainConfig
from ecomforge_train.data import Example
from ecomforge_train.engine import LoraEngine, run_training

FAST = {"steps": 2, "max_side": 96, "scheduler": "DDIM"}


@pytest.fixture(scope="module")
def trained(tiny_sd_inpaint, tiny_sd_img2img, tmp_path_factory):
    """An inpainting and a text-to-image LoRA, 6 steps each at a high learning rate."""
    import skimage.data

    out = {}
    for kind, base in (("inpaint", tiny_sd_inpaint), ("txt2img", tiny_sd_img2img)):
        cfg = TrainConfig(base_model=str(base), instance_prompt="a photo of sks cup", steps=6, resolution=64,
                          rank=4, learning_rate=1e-2, checkpoint_every=6, validation={"num_images": 0})
        folder = tmp_path_factory.mktemp(f"lora-{kind}")
        out[kind] = run_training(LoraEngine(cfg, device="cpu"), [Example(skimage.data.coffee()[::4, ::4], "a photo of sks cup")], folder)
    return out


def _generator(name, model):
    return get_registry().create("generator", name, {"model": str(model), **FAST}, device="cpu")


def _request(gen, **overrides):
    ref, mask = make_reference(96, 64)
    cfg = gen.parse_config({**gen.config.model_dump(), **overrides})
    return GenerationRequest(ref, Mask(mask.data), "a photo of sks cup", "", cfg, (3,))


@pytest.mark.parametrize("name,kind", [("sd-inpaint", "inpaint"), ("sd-img2img", "txt2img")])
def test_trained_lora_loads_into_the_generator_and_changes_its_output(name, kind, trained, tiny_sd_inpaint, tiny_sd_img2img):
    """The generator applies the LoRA named by path in its config: output differs, and is restored after."""
    gen = _generator(name, tiny_sd_inpaint if kind == "inpaint" else tiny_sd_img2img)
    plain = gen.generate(_request(gen))[0]
    with_lora = gen.generate(_request(gen, loras=[{"path": str(trained[kind]), "scale": 1.0}]))[0]
    again = gen.generate(_request(gen))[0]
    assert with_lora.failed is None
    assert not np.array_equal(plain.image, with_lora.image)
    assert np.array_equal(plain.image, again.image)
    assert any(k.startswith("lora:pytorch_lora_weights") for k in with_lora.models)


def test_inpainting_lora_in_a_text_to_image_generator_is_a_clear_input_error(trained, tiny_sd_img2img):
    """The inpainting LoRA adapts the 9-channel conv_in, so sd-img2img rejects it with one line naming the file."""
    gen = _generator("sd-img2img", tiny_sd_img2img)
    with pytest.raises(InputError) as info:
        gen.generate(_request(gen, loras=[{"path": str(trained["inpaint"]), "scale": 1.0}]))
    line = info.value.one_line()
    assert "\n" not in line and "pytorch_lora_weights.safetensors" in line and info.value.exit_code == 2


def test_every_saved_tensor_is_loaded_by_diffusers(tmp_path, tiny_sd_inpaint):
    """load_lora_weights picks up every UNet and text-encoder tensor of the file with its value, and alpha.

    (A file mixing PEFT 'lora_A' and diffusers 'lora.down' keys loads only the PEFT ones, silently.)
    """
    import skimage.data
    import torch
    from diffusers import StableDiffusionInpaintPipeline
    from safetensors.torch import load_file

    cfg = TrainConfig(base_model=str(tiny_sd_inpaint), instance_prompt="a photo of sks cup", steps=2, resolution=64,
                      rank=4, alpha=8, train_text_encoder=True, validation={"num_images": 0})
    path = run_training(LoraEngine(cfg, device="cpu"), [Example(skimage.data.coffee()[::4, ::4], "x")], tmp_path)
    saved = load_file(str(path))
    pipe = StableDiffusionInpaintPipeline.from_pretrained(str(tiny_sd_inpaint))
    pipe.load_lora_weights(str(path), adapter_name="sks")
    loaded = {f"unet.{k}": v for k, v in pipe.unet.named_parameters() if ".sks." in k}
    loaded.update({f"text_encoder.{k}": v for k, v in pipe.text_encoder.named_parameters() if ".sks." in k})
    assert len(loaded) == len(saved) and len(saved) > 0
    loaded_values = sorted(float(v.detach().double().sum()) for v in loaded.values())
    saved_values = sorted(float(v.double().sum()) for v in saved.values())
    assert np.allclose(loaded_values, saved_values)
    up = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    assert torch.equal(loaded[f"unet.{up}.lora_B.sks.weight"], saved[f"unet.{up}.lora.up.weight"])
    assert pipe.unet.peft_config["sks"].lora_alpha == 8 and pipe.unet.peft_config["sks"].r == 4


RUN_RECIPE = """
name: lora-check
inputs: {references: [ref.png], prompt: "a photo of sks cup"}
mask: {plugin: classic}
generate:
  plugin: sd-img2img
  config: {model: MODEL, steps: 2, max_side: 96, scheduler: DDIM, loras: [{path: LORA}]}
  seeds: [1]
filter: {plugin: threshold}
"""


def test_ecomforge_run_with_an_inpainting_lora_in_sd_img2img_exits_2(tmp_path, trained, tiny_sd_img2img, capsys):
    """Through `ecomforge run`: the wrong LoRA for the model is one 'error:' line and exit code 2."""
    from ecomforge.cli import main
    from ecomforge.imaging.io import save_png
    from ecomforge.testing import sample_image

    save_png(tmp_path / "ref.png", sample_image(96, 64)[0])
    (tmp_path / "r.yaml").write_text(RUN_RECIPE.replace("MODEL", str(tiny_sd_img2img)).replace("LORA", str(trained["inpaint"])))
    with pytest.raises(SystemExit) as info:
        main(["run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "runs"), "--progress", "none", "--device", "cpu"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert info.value.code == 2, lines
    # found by the generator's check() from the file's header, before the pipeline loads or any folder is made
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert "is a LoRA for an inpainting model (9 input channels); sd-img2img runs a 4-channel model" in lines[0]
    assert not (tmp_path / "runs").exists()
