"""Which candidates of two runs show the same image: the pairing behind ``ecomforge compare``.

A candidate is defined by its product (the set of its references' sha256s, so the recipe's or
catalogue's product name does not matter), the reference it was made from, its seed and the
sweep point. Two runs are paired on those; the parameters swept by either run and recorded by
both are the sweep point, so runs whose sweeps only overlap are compared where they overlap and
never crosswise. Everything else (a config value, the prompt, the scorers) is what the A/B tests.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from ..recipe.safeyaml import safe_load

Record = dict[str, Any]
Pair = tuple[Record, Record]


_FIELDS: dict[str, tuple[type, ...]] = {"id": (str,), "product": (str,), "image": (str,), "kept": (bool,),
                                        "seed": (int,), "params": (dict,), "scores": (dict,)}


def check_records(run_dir: Path, records: list[Record]) -> None:
    """Every candidate record compare reads has its fields, of the right kind (a hand-edited manifest is input)."""
    where = Path(run_dir) / "manifest.jsonl"
    for n, rec in enumerate(records, 1):
        if not isinstance(rec, dict):
            raise InputError(f"{where}: candidate record {n} is not a JSON object")
        for key, kinds in _FIELDS.items():
            if not isinstance(rec.get(key), kinds) or (key == "seed" and isinstance(rec[key], bool)):
                raise InputError(f"{where}: candidate record {n} has no valid '{key}' (got {rec.get(key)!r:.40}); "
                                 "is this an ecomforge run folder?")
        numbers = [rec.get("total"), *rec["scores"].values()]
        if any(v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))) for v in numbers):
            raise InputError(f"{where}: candidate record {n} has a score or total that is not a number")
        shas = rec.get("references_sha256")
        if shas is not None and not (isinstance(shas, list) and all(isinstance(x, str) for x in shas)):
            raise InputError(f"{where}: candidate record {n} has no valid 'references_sha256'")
        if not isinstance(rec.get("reference_sha256"), (str, type(None))):
            raise InputError(f"{where}: candidate record {n} has no valid 'reference_sha256'")


def product_identity(rec: Record) -> tuple[str, ...]:
    """The product as its reference photos' sha256s (sorted); the name only when a manifest lacks them."""
    shas = rec.get("references_sha256")
    return tuple(sorted(shas)) if shas else (f"name:{rec.get('product')}",)


def _canon(value: Any) -> str:
    """A parameter value as canonical JSON, so [768, 768] and (768, 768) or 7 and 7.0 compare equal."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, default=str)


def swept_keys(run_dir: Path, records: list[Record], recipe: dict[str, Any] | None = None) -> set[str]:
    """The generator keys a run swept: from its recipe.yaml (``recipe``, where the caller has read it), else those
    that vary within one image slot."""
    try:
        if recipe is None:
            recipe = safe_load((Path(run_dir) / "recipe.yaml").read_text(encoding="utf-8"), yaml11=True) or {}
        sweep = (recipe.get("generate") or {}).get("sweep")
        if isinstance(sweep, dict):
            return {str(k) for k in sweep}
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    values: dict[tuple, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in records:
        slot = (product_identity(r), r.get("reference_sha256"), r.get("seed"))
        for k, v in (r.get("params") or {}).items():
            values[slot][k].add(_canon(v))
    return {k for slot in values.values() for k, vs in slot.items() if len(vs) > 1}


def shared_keys(a: list[Record], b: list[Record], swept: set[str]) -> list[str]:
    """Swept keys that every candidate of both runs records: the coordinates of a sweep point."""
    present = [set(r.get("params") or {}) for r in (*a, *b)]
    common = set.intersection(*present) if present else set()
    return sorted(swept & common)


def point_of(rec: Record, keys: list[str]) -> dict[str, Any]:
    """The sweep point a candidate was made at, on ``keys``."""
    return {k: rec["params"][k] for k in keys}


def image_key(rec: Record, keys: list[str]) -> tuple:
    """What defines a candidate's image across runs."""
    return (product_identity(rec), rec.get("reference_sha256"), rec.get("seed"),
            tuple(_canon(rec["params"][k]) for k in keys))


def pair_records(a: list[Record], b: list[Record], keys: list[str]) -> list[Pair]:
    """Candidates of A and B with the same product, reference, seed and sweep point, in A's order.

    Two candidates of one run can share a key only when a catalogue lists the same photos
    twice (say, with two prompts); those are paired in product-name order.
    """
    def grouped(records: list[Record]) -> dict[tuple, list[Record]]:
        groups: dict[tuple, list[Record]] = defaultdict(list)
        for r in sorted(records, key=lambda r: str(r.get("product"))):
            groups[image_key(r, keys)].append(r)
        return groups

    ga, gb = grouped(a), grouped(b)
    pairs = [(ra, rb) for k, rs in ga.items() if k in gb for ra, rb in zip(rs, gb[k])]
    order = {id(r): i for i, r in enumerate(a)}
    return sorted(pairs, key=lambda p: order[id(p[0])])


def why_unpaired(a: list[Record], b: list[Record], keys: list[str]) -> str:
    """One line on why no candidate of A has a twin in B."""
    if not a or not b:
        return f"run {'A' if not a else 'B'} has no candidate that did not fail"
    prods = {product_identity(r) for r in a} & {product_identity(r) for r in b}
    if not prods:
        return "they share no product (no product has the same reference photos in both runs)"
    slot = lambda r: (product_identity(r), r.get("reference_sha256"), r.get("seed"))
    if not {slot(r) for r in a} & {slot(r) for r in b}:
        seeds = lambda rs: sorted({r.get("seed") for r in rs}, key=str)
        return f"no seed in common for the same reference photos (A: {seeds(a)}, B: {seeds(b)})"

    def points(rs: list[Record]) -> str:
        return "; ".join(sorted({", ".join(f"{k}={_canon(r['params'][k])}" for k in keys) for r in rs}))

    return f"no sweep point in common (A: {points(a)} | B: {points(b)})"
