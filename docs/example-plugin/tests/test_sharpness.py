"""The example plugin's tests: the shared contract plus what makes this scorer useful."""
from __future__ import annotations

import cv2

from ecomforge.plugins import get_registry
from ecomforge.testing import ScorerContract, make_reference
from ecomforge.types import Candidate, ScoringContext
from ecomforge_sharpness.scorer import SharpnessScorer


class TestSharpnessContract(ScorerContract):
    def make_stage(self):
        return SharpnessScorer({"gamma": 0.5})

    def make_candidates(self, ref, mask):
        """Best first: the reference itself, then the failure this scorer is for (a blurred product)."""
        blurred = cv2.GaussianBlur(ref.image, (0, 0), 2)
        return [Candidate(ref.image.copy(), 0, {}, mask=mask.data), Candidate(blurred, 1, {}, mask=mask.data)]


def test_blur_lowers_the_score():
    ref, mask = make_reference(128, 96)
    blurred = cv2.GaussianBlur(ref.image, (0, 0), 3)
    scores = SharpnessScorer().score([Candidate(ref.image, 0, {}, mask=mask.data), Candidate(blurred, 1, {}, mask=mask.data)],
                                     ScoringContext((ref,), (mask,)))
    assert scores[0] == 1.0 and scores[1] < 0.5 and scores[1].reason == "product is blurred"


def test_registered_through_its_entry_point():
    info = get_registry().get("scorer", "sharpness")
    assert info.cls is SharpnessScorer and info.distribution == "ecomforge-sharpness"
