"""Samplers by their AUTOMATIC1111 names, built from the model's own scheduler config."""
from __future__ import annotations

from typing import Any

# name -> (diffusers class, overrides of the model's scheduler config)
_TABLE: dict[str, tuple[str, dict[str, Any]]] = {
    "DDIM": ("DDIMScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                 "use_karras_sigmas": False}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                        "use_karras_sigmas": True}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
}


def make_scheduler(name: str, base_config: Any) -> Any:
    """A fresh scheduler named ``name`` (validated in Config) with the model's beta schedule."""
    import diffusers

    cls_name, overrides = _TABLE[name]
    return getattr(diffusers, cls_name).from_config(base_config, **overrides)
