"""Settings for the whole suite (tests/, every plugin's tests, the example plugin)."""
from __future__ import annotations

import os

from hypothesis import settings

# Under CI the property tests draw the same examples every run, so a submission passes or fails on its
# code, not on the draw; local runs keep exploring new examples (and a failure prints its example).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
