"""What the runner checks of a plugin's output before anything of it is stored or passed on.

A plugin that breaks its stage's contract fails as itself (a ``PluginContractError`` naming it),
not later as another plugin's error (the run store's, the next stage's) or as a silently wrong
record. The ``*_problem`` functions say in a few words what is wrong (None when nothing is), so the
contract mixins of ``ecomforge.testing`` can assert the very checks a run makes.
"""
from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import PluginContractError
from ..types import Candidate, Decision, Score

IMAGE_RULE = "images must be uint8 HxWx3"
MASK_RULE = "masks must be uint8 HxW, the image's size"
SCORE_RULE = "scores are real numbers in [0, 1]"


def check_candidates(plugin: str, seeds: Sequence[int], out: Any) -> list[Candidate]:
    """The generator's output for ``seeds``, once it is one storable Candidate per seed, in order."""
    problem = candidates_problem(seeds, out)
    if problem:
        raise PluginContractError(plugin, problem, kind="generator")
    return list(out)


def candidates_problem(seeds: Sequence[int], out: Any) -> str | None:
    """What is wrong with a generator's output for ``seeds``, or None."""
    if not isinstance(out, list):
        return f"returned {_a(out)}; generate() returns a list of Candidate"
    if len(out) != len(seeds):
        return f"returned {len(out)} candidates for {len(seeds)} seeds"
    for i, (seed, cand) in enumerate(zip(seeds, out)):
        if not isinstance(cand, Candidate):
            return f"returned {_a(cand)} for seed {seed}; generate() returns a list of Candidate"
        if isinstance(cand.seed, bool) or not isinstance(cand.seed, int):
            return f"returned seed {cand.seed} as {_a(cand.seed)} for seed {seed}; seeds are int"
        if cand.seed != seed:
            return (f"returned seed {cand.seed} where seed {seed} was asked for (candidate {i + 1} of "
                    f"{len(seeds)}); one candidate per seed, in the order asked")
    for seed, cand in zip(seeds, out):
        problem = _candidate_problem(cand)
        if problem:
            return f"{problem[0]} for seed {seed}; {problem[1]}"
    return None


def _candidate_problem(cand: Candidate) -> tuple[str, str] | None:
    """What is wrong with one candidate, and the rule it breaks; or None."""
    image, mask = cand.image, cand.mask
    if not isinstance(image, np.ndarray):
        return f"returned {_a(image)} image", f"{IMAGE_RULE} numpy arrays"
    if image.dtype != np.uint8:
        return f"returned a {image.dtype} image", IMAGE_RULE
    if image.ndim != 3 or image.shape[2] != 3 or not image.size:
        return f"returned an image of shape {image.shape}", IMAGE_RULE
    if mask is not None:
        if not isinstance(mask, np.ndarray):
            return f"returned {_a(mask)} mask", f"{MASK_RULE} (or None)"
        if mask.dtype != np.uint8 or mask.shape != image.shape[:2]:
            return f"returned a {mask.dtype} {mask.shape} mask with a {image.shape} image", MASK_RULE
    if not isinstance(cand.params, dict):
        return f"returned params as {_a(cand.params)}", "params are a dict"
    for field in ("params", "models", "info"):
        where = _not_json(getattr(cand, field), field)
        if where:
            return f"returned {where}", f"{field} must be JSON-serialisable (they go into the manifest)"
    if cand.failed is not None and not isinstance(cand.failed, str):
        return f"returned failed={_short(cand.failed)}", "failed is None or a str saying why"
    return None


def _not_json(value: Any, path: str) -> str | None:
    """Where in ``value`` JSON cannot go, and what is there (``params['scale'] as a numpy float32``), or None."""
    try:
        json.dumps(value)
        return None
    except (TypeError, ValueError) as exc:
        return _find_not_json(value, path, 0) or f"{path} that JSON cannot hold ({exc})"


def _find_not_json(value: Any, path: str, depth: int) -> str | None:
    if value is None or isinstance(value, (str, int, float)) or depth > 32:  # bool is an int
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if k is not None and not isinstance(k, (str, int, float)):
                return f"a key {k!r} of {path} as {_a(k)}"
            if found := _find_not_json(v, f"{path}[{k!r}]", depth + 1):
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if found := _find_not_json(v, f"{path}[{i}]", depth + 1):
                return found
        return None
    return f"{path} as {_a(value)}"


def check_scores(plugin: str, values: Any, n: int, *, key: str | None = None) -> list[tuple[float, str]]:
    """A scorer's (value, reason) per candidate, once it returned one real number in [0, 1] each."""
    problem = scores_problem(values, n)
    if problem:
        raise PluginContractError(plugin, problem + (f" (score '{key}')" if key and key != plugin else ""),
                                  kind="scorer")
    return [(float(v), v.reason if isinstance(v, Score) else "") for v in values]


def scores_problem(values: Any, n: int) -> str | None:
    """What is wrong with a scorer's output for ``n`` candidates, or None."""
    if (isinstance(values, (str, bytes, dict)) or not isinstance(values, (Sequence, np.ndarray))
            or getattr(values, "ndim", 1) != 1):
        return f"returned {_a(values)}; score() returns one score per candidate"
    if len(values) != n:
        return f"returned {len(values)} scores for {n} candidates"
    for i, raw in enumerate(values):
        at = f"for candidate {i + 1} of {n}"
        if not isinstance(raw, numbers.Real):
            return f"returned {_what(raw)} {at}; {SCORE_RULE}"
        value = float(raw)
        if math.isnan(value):
            return f"returned NaN {at}; {SCORE_RULE}"
        if not 0.0 <= value <= 1.0:
            return f"returned {value:g} {at}, outside [0, 1]"
        if isinstance(raw, Score) and not isinstance(raw.reason, str):
            return f"returned the reason {_what(raw.reason)} {at}; a Score's reason is a str"
    return None


def check_decisions(plugin: str, values: Any, n: int) -> list[Decision]:
    """A filter's decisions, once it returned one ``Decision`` (kept, reason) per candidate, in order."""
    problem = decisions_problem(values, n)
    if problem:
        raise PluginContractError(plugin, problem, kind="filter")
    return list(values)


def decisions_problem(values: Any, n: int) -> str | None:
    """What is wrong with a filter's output for ``n`` candidates, or None."""
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Sequence):
        return f"returned {_a(values)}; select() returns one Decision per candidate, in order"
    if len(values) != n:
        return f"returned {len(values)} decisions for {n} candidates"
    for i, d in enumerate(values):
        at = f"for candidate {i + 1} of {n}"
        if not isinstance(d, Decision):
            return f"returned {_what(d)} {at}; select() returns Decision(kept, reason) objects"
        if not isinstance(d.kept, (bool, np.bool_)):
            return f"returned a Decision whose kept is {_what(d.kept)} {at}; kept is True or False"
        if not isinstance(d.reason, str):
            return f"returned a Decision whose reason is {_what(d.reason)} {at}; a reason is a str"
    return None


def _a(value: Any) -> str:
    """'a str', 'a numpy float32', 'None': what a value is, for a message."""
    if value is None:
        return "None"
    cls = type(value)
    name = f"numpy {cls.__name__}" if cls.__module__ == "numpy" else cls.__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _what(value: Any) -> str:
    """``'0.5' (a str)``: a value and what it is, for a message."""
    return "None" if value is None else f"{_short(value)} ({_a(value)})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
