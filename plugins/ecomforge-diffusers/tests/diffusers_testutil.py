"""Helpers shared by the ecomforge-diffusers tests."""
from __future__ import annotations

import numpy as np

from ecomforge.testing import make_reference
from ecomforge.types import GenerationRequest, Mask

FAST = {"steps": 2, "max_side": 96, "scheduler": "DDIM"}


def request_for(gen, *, seeds=(1,), prompt="a product photo", negative="", mask_dilate=0, mask_feather=0,
                size=(96, 64), mask_data=None, **overrides):
    """A GenerationRequest on the synthetic packshot, with ``overrides`` applied to the generator's config."""
    ref, mask = make_reference(*size)
    data = mask.data if mask_data is None else mask_data
    cfg = gen.parse_config({**gen.config.model_dump(), **overrides})
    return GenerationRequest(ref, Mask(data, dilate=mask_dilate, feather=mask_feather), prompt, negative, cfg,
                             tuple(seeds))


def changed_fraction(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """Fraction of pixels in ``where`` that differ between two images."""
    return float((a[where] != b[where]).any(axis=-1).mean())


class KeepAllFilterPlugin:
    """A test-only filter plugin (keeps everything) so CLI runs need no other filter distribution."""

    from ecomforge import hookimpl

    @staticmethod
    @hookimpl
    def register_filters(register):
        from ecomforge.stages import Filter, StageConfig
        from ecomforge.types import Decision

        class KeepAll(Filter):
            """Keeps every candidate that did not fail."""

            name = "keep-all-sd-test"
            Config = StageConfig

            def select(self, scored):
                """Keep all non-failed candidates."""
                return [Decision(s.candidate.failed is None, "kept" if s.candidate.failed is None else "failed")
                        for s in scored]

        register(KeepAll)
