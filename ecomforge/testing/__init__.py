"""Test helpers for ecomforge and its plugins: contract mixins, fixtures, tiny real-format models.

Plugin authors: subclass the contract for your stage kind in a pytest class and fill in
``make_stage`` (and the inputs), and the shared checks run against your plugin::

    from ecomforge.testing import MaskerContract

    class TestMyMasker(MaskerContract):
        def make_stage(self):
            return MyMasker({"threshold": 0.3})
"""
from ..run.store import read_failures, read_manifest
from . import toy
from .contracts import (
    AcquirerContract,
    FilterContract,
    GeneratorContract,
    MaskerContract,
    ScorerContract,
    make_reference,
    sample_image,
)
from .fixtures import temporary_plugins
from .harness import run_test_recipe
from .toy import toy_recipe

__all__ = [
    "AcquirerContract", "FilterContract", "GeneratorContract", "MaskerContract", "ScorerContract",
    "make_reference", "read_failures", "read_manifest", "run_test_recipe", "sample_image", "temporary_plugins", "toy",
    "toy_recipe",
]
