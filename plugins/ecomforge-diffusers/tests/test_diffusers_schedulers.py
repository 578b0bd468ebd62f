"""Samplers by the names users know: every one builds and denoises; spellings are forgiving; pulls explain."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecomforge.errors import ModelNotFound
from ecomforge_diffusers.config import InpaintConfig
from ecomforge_diffusers.generators import SdInpaintGenerator
from ecomforge_diffusers.schedulers import SCHEDULERS, a1111_sampler, canonical_scheduler, from_a1111, make_scheduler

from diffusers_testutil import FAST, request_for

SPELLINGS = {
    "euler": "Euler", "k_euler": "Euler", "k_euler_a": "Euler a", "Euler Ancestral": "Euler a",
    "heun": "Heun", "DPM++ SDE Karras": "DPM++ SDE Karras", "dpmpp_sde_karras": "DPM++ SDE Karras",
    "DDPM": "DDPM", "deis": "DEIS", "KDPM2": "KDPM2", "DPM2": "KDPM2", "k_dpm_2": "KDPM2",
    "DPM2 a Karras": "KDPM2 a Karras", "dpmpp_2m_karras": "DPM++ 2M Karras", "DPM++ 2M, Karras": "DPM++ 2M Karras",
    "PLMS": "PNDM", "EulerDiscreteScheduler": "Euler", "DEISMultistepScheduler": "DEIS",
}


@pytest.mark.parametrize("spelling,name", sorted(SPELLINGS.items()))
def test_known_spellings_map_to_one_name(spelling, name):
    """A1111, k-diffusion and diffusers spellings are stored under one canonical name."""
    assert InpaintConfig(scheduler=spelling).scheduler == name


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(SCHEDULERS), st.lists(st.booleans(), min_size=30, max_size=30))
def test_case_does_not_matter(name, upper):
    """Any mix of upper and lower case gives the same scheduler."""
    mixed = "".join(c.upper() if u else c.lower() for c, u in zip(name, upper + [False] * len(name)))
    assert canonical_scheduler(mixed) == name


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SCHEDULERS))
def test_a1111_sampler_and_schedule_round_trip(name):
    """The (Sampler, Schedule type) pair written to the infotext reads back as the same scheduler."""
    sampler, schedule = a1111_sampler(name)
    assert "Karras" not in sampler and schedule in {"Karras", "Uniform", "Automatic"}
    assert from_a1111(sampler, schedule) == name


def test_unknown_scheduler_hints_the_closest():
    """A typo is rejected with the closest name."""
    with pytest.raises(ValueError, match="did you mean 'Heun'"):
        InpaintConfig(scheduler="heunn")


def test_every_scheduler_builds_from_the_model_config(tiny_sd_inpaint):
    """Each name builds its diffusers class from the model's own beta schedule."""
    import diffusers

    base = diffusers.DDIMScheduler.from_pretrained(str(tiny_sd_inpaint / "scheduler")).config
    for name in SCHEDULERS:
        sched = make_scheduler(name, base)
        assert sched.config.beta_schedule == "scaled_linear", name
        assert getattr(sched.config, "use_karras_sigmas", False) == name.endswith("Karras"), name


def test_new_schedulers_denoise(tiny_sd_inpaint):
    """The added samplers run a real 2-step call each: usable images, recorded names, different results."""
    gen = SdInpaintGenerator({"model": str(tiny_sd_inpaint), **FAST}, device="cpu")
    images = {}
    for name in ("Euler", "Heun", "DPM++ SDE Karras", "DDPM", "DEIS", "KDPM2"):
        cand = gen.generate(request_for(gen, seeds=(1,), scheduler=name))[0]
        assert cand.failed is None and cand.params["scheduler"] == name
        images[name] = cand.image
    assert len({img.tobytes() for img in images.values()}) >= 5  # the sampler really changes the denoising


def _hub_error(cls, status):
    import httpx2

    response = httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/models/x"))
    return cls("hub said no", response=response)


@pytest.mark.parametrize("error,status,message", [
    ("RepositoryNotFoundError", 404, r"'acme/gone' was not found on the hub"),
    ("GatedRepoError", 403, r"'acme/gone' is gated on the hub: accept its licence"),
])
def test_pull_says_not_found_or_gated(monkeypatch, tmp_path, error, status, message):
    """A missing repo says 'not found on the hub'; only a gated one asks to log in."""
    import huggingface_hub
    from huggingface_hub import errors

    from ecomforge_diffusers import commands

    def fake_download(*args, **kwargs):
        raise _hub_error(getattr(errors, error), status)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("ECOMFORGE_MODELS", str(tmp_path))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    with pytest.raises(ModelNotFound, match=message) as info:
        commands.pull.callback("acme/gone", None, None, ())
    if error == "RepositoryNotFoundError":
        assert "log in" not in str(info.value).split("(")[0]


def test_deleted_runwayml_id_points_to_its_new_home(monkeypatch):
    """The deleted runwayml repo is named as such, with the id to use instead."""
    from ecomforge_diffusers.loading import resolve_model

    monkeypatch.setattr("ecomforge_diffusers.loading._in_hf_cache", lambda repo: False)
    with pytest.raises(ModelNotFound, match="deleted from the hub") as info:
        resolve_model("runwayml/stable-diffusion-inpainting")
    assert "stable-diffusion-v1-5/stable-diffusion-inpainting" in (info.value.hint or "")
