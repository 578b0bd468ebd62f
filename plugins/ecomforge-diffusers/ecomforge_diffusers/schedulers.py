"""Samplers by their AUTOMATIC1111 names, built from the model's own scheduler config.

Names are matched case-insensitively and in the spellings users bring from AUTOMATIC1111
(`DPM++ 2M Karras`, or its newer split form), ComfyUI/k-diffusion (`dpmpp_2m_karras`,
`k_euler_a`) and diffusers (`EulerDiscreteScheduler`); the config stores the canonical name.
"""
from __future__ import annotations

import difflib
import re
from typing import Any

_KARRAS = {"use_karras_sigmas": True}
# canonical name -> (diffusers class, overrides of the model's scheduler config)
_TABLE: dict[str, tuple[str, dict[str, Any]]] = {
    "DDIM": ("DDIMScheduler", {}),
    "DDPM": ("DDPMScheduler", {}),
    "DEIS": ("DEISMultistepScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                 "use_karras_sigmas": False}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                        **_KARRAS}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2,
                                                     "use_karras_sigmas": False}),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++",
                                                            "solver_order": 2, **_KARRAS}),
    "DPM++ SDE": ("DPMSolverSDEScheduler", {"use_karras_sigmas": False}),
    "DPM++ SDE Karras": ("DPMSolverSDEScheduler", _KARRAS),
    "Euler": ("EulerDiscreteScheduler", {"use_karras_sigmas": False}),
    "Euler Karras": ("EulerDiscreteScheduler", _KARRAS),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {"use_karras_sigmas": False}),
    "Heun Karras": ("HeunDiscreteScheduler", _KARRAS),
    "KDPM2": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": False}),
    "KDPM2 Karras": ("KDPM2DiscreteScheduler", _KARRAS),
    "KDPM2 a": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": False}),
    "KDPM2 a Karras": ("KDPM2AncestralDiscreteScheduler", _KARRAS),
    "LMS": ("LMSDiscreteScheduler", {"use_karras_sigmas": False}),
    "LMS Karras": ("LMSDiscreteScheduler", _KARRAS),
    "PNDM": ("PNDMScheduler", {"skip_prk_steps": True}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
}
SCHEDULERS = tuple(_TABLE)
# the samplers AUTOMATIC1111 calls by another name (its k-diffusion ones), after normalising
_ALIASES = {"dpm2": "KDPM2", "dpm2 karras": "KDPM2 Karras", "dpm2 a": "KDPM2 a", "dpm2 a karras": "KDPM2 a Karras",
            "plms": "PNDM", "euler ancestral": "Euler a", "unipc multistep": "UniPC",
            "dpm++ 2m sde heun": "DPM++ 2M SDE"}
_DIFFUSERS_CLASS = {cls.lower(): name for name, (cls, over) in reversed(list(_TABLE.items()))
                    if not over.get("use_karras_sigmas")}
# samplers whose schedule AUTOMATIC1111 lets the user choose; the others are 'Automatic' there
_K_SAMPLERS = {"DPM++ 2M", "DPM++ 2M SDE", "DPM++ SDE", "Euler", "Heun", "KDPM2", "KDPM2 a", "LMS"}
_A1111_NAMES = {"KDPM2": "DPM2", "KDPM2 a": "DPM2 a", "PNDM": "PLMS"}


def _normalise(name: str) -> str:
    text = name.strip().lower().replace("_", " ").replace("-", " ")
    text = re.sub(r"\bdpmpp\b", "dpm++", text)
    text = re.sub(r"^k ", "", text)  # k_euler, k_dpm_2 (k-diffusion's prefix)
    text = re.sub(r"\bdpm (\d)", r"dpm\1", text)  # k_dpm_2 -> dpm2
    text = re.sub(r"\bdpm\+\+ ?(\d)(m|s)\b", r"dpm++ \1\2", text)  # dpm++2m -> dpm++ 2m
    text = re.sub(r"\b(ancestral|anc)\b", "a", text)
    text = text.replace(",", " ").replace("schedule type:", " ")
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r" (automatic|uniform)$", "", text)  # A1111's split form: 'DPM++ 2M, Automatic'


def canonical_scheduler(name: str) -> str:
    """The canonical sampler name for ``name`` in any accepted spelling; ValueError with a hint if unknown."""
    if not isinstance(name, str):
        raise ValueError(f"scheduler must be a name, got {type(name).__name__}")
    norm = _normalise(name)
    lowered = {s.lower(): s for s in SCHEDULERS}
    for table in (lowered, _ALIASES, _DIFFUSERS_CLASS):
        if norm in table:
            return table[norm]
    close = difflib.get_close_matches(norm, list(lowered), n=1, cutoff=0.5)
    hint = f"did you mean '{lowered[close[0]]}'?" if close else f"known: {', '.join(SCHEDULERS)}"
    raise ValueError(f"unknown scheduler '{name[:80]}' ({hint})")


def a1111_sampler(name: str) -> tuple[str, str]:
    """(Sampler, Schedule type) as AUTOMATIC1111 (1.9+) writes them in its infotext."""
    karras = name.endswith(" Karras")
    base = name[: -len(" Karras")] if karras else name
    schedule = "Karras" if karras else ("Uniform" if base in _K_SAMPLERS else "Automatic")
    return _A1111_NAMES.get(base, base), schedule


def from_a1111(sampler: str, schedule: str | None = None) -> str:
    """The canonical name for an AUTOMATIC1111 (Sampler, Schedule type) pair."""
    if schedule and schedule.strip().lower() == "karras" and not sampler.lower().endswith("karras"):
        sampler = f"{sampler} Karras"
    return canonical_scheduler(sampler)


def make_scheduler(name: str, base_config: Any) -> Any:
    """A fresh scheduler named ``name`` (any accepted spelling) with the model's beta schedule."""
    import diffusers

    cls_name, overrides = _TABLE[canonical_scheduler(name)]
    if cls_name == "DPMSolverSDEScheduler":
        try:
            import torchsde  # noqa: F401  (diffusers imports it lazily and fails mid-call without it)
        except ImportError as exc:
            from ecomforge.errors import InputError

            raise InputError(f"scheduler '{name}' needs the torchsde package: pip install torchsde") from exc
    return getattr(diffusers, cls_name).from_config(base_config, **overrides)
