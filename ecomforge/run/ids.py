"""Deterministic ids: the same recipe and seeds give the same candidate ids."""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: stable across runs and machines."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def array_sha256(arr: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes."""
    h = hashlib.sha256(f"{arr.shape}|{arr.dtype}|".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def mask_sha256(data: np.ndarray, dilate: int, feather: int) -> str:
    """Identity of a mask, its paste-back settings included."""
    return hashlib.sha256(f"{array_sha256(data)}|{dilate}|{feather}".encode()).hexdigest()


def candidate_id(*, product: str, reference_sha256: str, mask_sha256: str, plugin: str,
                 params: dict[str, Any], seed: int, prompt: str, negative_prompt: str) -> str:
    """A 16-hex-digit hash of everything that defines a candidate's pixels."""
    payload = canonical_json({
        "product": product, "reference": reference_sha256, "mask": mask_sha256, "plugin": plugin,
        "params": params, "seed": seed, "prompt": prompt, "negative_prompt": negative_prompt,
    })
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
