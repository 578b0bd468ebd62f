"""What one line of ``manifest.jsonl`` holds: a candidate record, or a product that failed.

Each candidate line is a ``ManifestRecord``; the runner writes a product's lines in one append after
its filter step, so a product is either complete in the manifest or absent. A product that failed
in any step is one ``ProductFailedRecord`` line instead (``"record": "product_failed"``), also listed
in ``failed.csv``; ``read_manifest`` returns candidate records only, ``read_failures`` the failures.
"""
from __future__ import annotations

from typing import Any, Literal, TypedDict


class ManifestRecord(TypedDict):
    """One candidate: where it came from, how it was made, how it was judged."""

    id: str
    product: str
    reference: str
    reference_sha256: str
    references_sha256: list[str]
    mask: str
    plugin: str
    models: dict[str, Any]
    params: dict[str, Any]
    seed: int
    prompt: str
    negative_prompt: str
    image: str
    failed: str | None
    info: dict[str, Any]
    scores: dict[str, float]
    score_reasons: dict[str, str]
    total: float | None
    kept: bool
    reason: str
    selected: str | None
    product_candidates: int
    stage_models: dict[str, dict[str, str]]
    timings: dict[str, float]


class ProductFailedRecord(TypedDict):
    """A product that failed; the others of the run went on."""

    record: Literal["product_failed"]
    product: str
    step: str
    plugin: str
    reason: str


FIELD_DOCS: dict[str, str] = {
    "id": "The candidate id: 16 hex digits of sha256 over product, reference and mask sha256s, plugin, the "
          "generator's `describe(config)` for this sweep point, seed and prompts (not over `params`).",
    "product": "The product's name (the recipe's, the catalogue's `product`/`Handle`, or the folder's).",
    "reference": "Name of the reference this candidate was generated from (`references/<product>/<name>.png`).",
    "reference_sha256": "sha256 of that reference's file bytes.",
    "references_sha256": "sha256 of every reference of the product, sorted (what scorers compared against).",
    "mask": "The reference's mask in the run folder.",
    "plugin": "The generator plugin.",
    "models": "Model ids (and weight hashes where known) the generator reported for this candidate.",
    "params": "What the generator put in `Candidate.params` (its config as it used it, derived values included): "
              "what `ecomforge recreate` rebuilds the config from.",
    "seed": "The seed.",
    "prompt": "The product's prompt after templates (`{title}`) and catalogue overrides.",
    "negative_prompt": "The product's negative prompt, likewise.",
    "image": "The candidate PNG (`candidates/<id>.png`), with the A1111 `parameters` text chunk.",
    "failed": "Why the generator could not make this one candidate, or null.",
    "info": "Free-form facts the generator reported (e.g. a resize factor).",
    "scores": "Scorer name -> value in [0, 1], higher is better.",
    "score_reasons": "Scorer name -> a few words on why its value is low (only where a scorer said).",
    "total": "The weighted mean of the scores (null for a failed candidate).",
    "kept": "Whether the filters kept it.",
    "reason": "The filters' reason, kept or dropped (each filter's, in order, when there are several).",
    "selected": "Its copy in `selected/` when kept, else null.",
    "product_candidates": "How many candidates the product has: a resumed run checks its block is complete.",
    "stage_models": "Step -> `Stage.identity()` of the masker, generator and scorers that made and judged it.",
    "timings": "Seconds per step for this candidate: generate; io (writing its own files); acquire, mask, score and "
               "filter, its product's time shared across the product's candidates.",
}
