"""The benchmark's cases: for one photo of a product, what a scorer sees and what it should say.

The candidates are, benign: the photo itself (a real re-shoot) and clean composites of it into
scenes; failures: identity damage of the photo, integration faults of a composite, and photos of
other products (one of a similar kind, one not). A re-shoot, its damage and the other products
are judged against the product's OTHER photos; composites and their faults against all its
photos, the pasted one included, since a generator pastes one of the user's references.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ecomforge.types import Candidate, ScoringContext

from .data import SCENES, SIMILAR, Photo
from .scenes import INTEGRATION, NEEDS_PHOTO_SCENE, compose
from .transforms import IDENTITY, Variant

PASTED = ("composite", "integration")  # groups whose product is a pasted reference
# Which benign group each failure group is measured against.
BENIGN_OF = {"identity": "reshoot", "integration": "composite", "cross-similar": "reshoot", "cross-other": "reshoot"}


@dataclass
class Case:
    """One candidate image with the group and failure kind it stands for."""

    product: str
    view: str
    group: str  # reshoot, composite, identity, integration, cross-similar, cross-other
    kind: str  # the failure's name (or the benign variant's)
    candidate: Candidate


def _candidate(image: np.ndarray, mask: np.ndarray, kind: str) -> Candidate:
    return Candidate(np.ascontiguousarray(image), 0, {"case": kind}, plugin="fidelity", mask=np.ascontiguousarray(mask))


def _scene_for(failure: str, index: int, needs_photo: frozenset[str] = NEEDS_PHOTO_SCENE) -> str:
    """The scene a failure is made in: the ``index``-th, or the next photo scene where the failure needs one."""
    names = [n for n in SCENES if not n.startswith("studio-")] if failure in needs_photo else list(SCENES)
    return names[index % len(names)]


def context_for(photos: list[Photo], view: str | None, product: str) -> ScoringContext:
    """The product's photos as references (what a user would upload), leaving ``view`` out (None: all)."""
    others = [p for p in photos if p.view != view]
    return ScoringContext(tuple(p.reference for p in others), tuple(p.mask for p in others),
                          f"a photo of a {product.replace('_', ' ')}")


def cases_for(photo: Photo, all_photos: dict[str, list[Photo]], seed: int, *, composites: int = 2,
              integration: tuple[str, ...] | None = None, identity: bool = True, size: int = 256,
              failures: tuple[Variant, ...] = IDENTITY, faults: dict | None = None,
              needs_photo: frozenset[str] = NEEDS_PHOTO_SCENE) -> list[Case]:
    """Every case of one photo, seeded by (seed, product, view) so each runs the same on any machine.

    ``failures`` are the identity failures, ``faults`` the integration ones by kind (default: scenes.py's), made
    on a photo scene where ``needs_photo`` names them; ``integration`` chooses kinds among ``faults``.
    """
    faults = INTEGRATION if faults is None else faults
    rng = np.random.default_rng([seed, zlib.crc32(f"{photo.product}/{photo.view}".encode())])
    image, mask = photo.reference.image, photo.mask.data
    cases = [Case(photo.product, photo.view, "reshoot", "reshoot", _candidate(image, mask, "reshoot"))]
    offset = int(rng.integers(len(SCENES)))
    for k in range(composites):
        name = SCENES[(offset + 3 * k) % len(SCENES)]
        out, m, _ = compose(image, mask, name, rng, size)
        cases.append(Case(photo.product, photo.view, "composite", f"composite:{name}", _candidate(out, m, name)))
    if identity:
        for variant in failures:
            out, m = variant.apply(image, mask, rng)
            cases.append(Case(photo.product, photo.view, "identity", variant.name, _candidate(out, m, variant.name)))
    for j, name in enumerate(integration if integration is not None else tuple(faults)):
        _, _, parts = compose(image, mask, _scene_for(name, offset + j, needs_photo), rng, size)
        out, m = faults[name](parts, rng)
        cases.append(Case(photo.product, photo.view, "integration", name, _candidate(out, m, name)))
    index = int(rng.integers(1 << 16))
    similar = SIMILAR.get(photo.product)
    unlike = [p for p in all_photos if p not in (photo.product, similar)]
    for group, other in (("cross-similar", similar), ("cross-other", unlike[index % len(unlike)] if unlike else None)):
        if other in all_photos:
            pick = all_photos[other][index % len(all_photos[other])]
            cases.append(Case(photo.product, photo.view, group, other,
                              _candidate(pick.reference.image, pick.mask.data, other)))
    return cases
