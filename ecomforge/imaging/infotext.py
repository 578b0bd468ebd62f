"""AUTOMATIC1111's infotext (the ``parameters`` text of its PNG Info), and keeping local paths out of it.

The format, as A1111 reads it back: the prompt (any number of lines), then an optional line
starting ``Negative prompt:``, then one line of ``Key: value`` pairs separated by ``, ``. A
key is letters, digits, ``_`` and spaces; a value holding a comma, colon or newline is written
as a JSON string (quoted); LoRAs ride in the prompt as ``<lora:name:weight>``, with their hashes
in ``Lora hashes: "name: hash, ..."``.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

_KEY_OK = re.compile(r"[\w ]+")
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:[\\/]|^\\\\")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def quote(value: Any) -> str:
    """A value as A1111 writes it: bare unless it holds ``,``, ``:`` or a newline, then a JSON string."""
    text = format_value(value)
    if "," not in text and ":" not in text and "\n" not in text and not text.startswith('"'):
        return text
    return json.dumps(text, ensure_ascii=False)


def format_value(value: Any) -> str:
    """Numbers without float noise (7.0 -> 7, 0.35 -> 0.35); lists and dicts as compact JSON."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _key(name: str) -> str:
    """A key A1111's parser accepts (letters, digits, ``_``, spaces)."""
    key = re.sub(r"[^\w ]+", " ", str(name)).strip()
    key = re.sub(r"\s+", " ", key)
    return key or "Value"


def infotext(prompt: str, negative_prompt: str, fields: dict[str, Any],
             loras: Sequence[tuple[str, float]] = ()) -> str:
    """The ``parameters`` text: prompt (+ ``<lora:name:weight>`` tags), negative prompt, the fields line.

    Each prompt is written on one line (line breaks and other control characters as spaces): a prompt
    holding ``\nNegative prompt: ...`` or ``\nSteps: 999`` would otherwise read back as fields it never set.
    """
    text, negative_prompt = _one_line(prompt), _one_line(negative_prompt)
    tags = " ".join(f"<lora:{_lora_name(name)}:{format_value(float(w))}>" for name, w in loras)
    if tags:
        text = f"{text} {tags}".strip()
    lines = [text]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    pairs = []
    seen: set[str] = set()
    for name, value in fields.items():
        key = _key(name)
        if value is None or key in seen:
            continue
        seen.add(key)
        pairs.append(f"{key}: {quote(value)}")
    lines.append(", ".join(pairs))
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def _lora_name(name: str) -> str:
    # the tag's own separators cannot appear inside it
    return re.sub(r"[<>:\s]+", "_", public_name(name)) or "lora"


# --- local paths --------------------------------------------------------------------------------

def is_local_path(text: str) -> bool:
    """True for an absolute or home-relative filesystem path (POSIX, ``~`` or Windows), not a URL or hub id."""
    if not isinstance(text, str) or "://" in text:
        return False
    return text.startswith(("/", "~")) or bool(_WINDOWS_ABS.match(text))


def public_name(model: str) -> str:
    """A model or LoRA as others may see it: a hub id as is; a file or folder by its name, extension dropped."""
    text = str(model).strip().rstrip("/\\")
    if "://" in text:
        return text
    if is_local_path(text) or text.startswith(".") or "\\" in text or text.count("/") > 1 \
            or text.endswith((".safetensors", ".ckpt", ".pt", ".bin")):
        name = PureWindowsPath(text).name if "\\" in text else PurePosixPath(text).name
        for ext in (".safetensors", ".ckpt", ".pt", ".bin"):
            if name.endswith(ext):
                return name[: -len(ext)]
        return name
    return text


def scrub_paths(value: Any) -> Any:
    """``value`` with every absolute local path (in strings, lists, dict values) replaced by its base name."""
    if isinstance(value, str):
        return public_name(value) if is_local_path(value) else value
    if isinstance(value, dict):
        return {k: scrub_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_paths(v) for v in value]
    return value


def generic_fields(params: dict[str, Any], *, seed: int, size: tuple[int, int]) -> dict[str, Any]:
    """Infotext fields for a generator that gives none of its own: its params, known ones under A1111's
    names and in A1111's order, then the rest; ``Seed`` and ``Size`` (the generation size) always."""
    names = {"steps": "Steps", "scheduler": "Sampler", "guidance_scale": "CFG scale",
             "strength": "Denoising strength", "model": "Model"}
    mapped: dict[str, Any] = {}
    for key, value in params.items():
        if value is not None:
            mapped[names.get(key, key.replace("_", " ").capitalize())] = scrub_paths(value)
    if "Model" in mapped:
        mapped["Model"] = public_name(str(mapped["Model"]))
    mapped.update(Seed=seed, Size=f"{size[0]}x{size[1]}")
    first = [k for k in A1111_KEYS if k in mapped]
    return {k: mapped[k] for k in first + [k for k in mapped if k not in first]}


# --- what a candidate's image file says about it -----------------------------------------------

METADATA_LEVELS = ("full", "minimal", "none")
A1111_KEYS = ("Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Model",
              "Denoising strength", "Mask blur", "Lora hashes")


def candidate_text(record: dict[str, Any], cand: Any, level: str = "full") -> dict[str, str]:
    """Text chunks for a candidate's image: ``full`` (infotext, id, scrubbed ecomforge JSON), ``minimal``
    (A1111's own fields only) or ``none``; never an absolute local path."""
    if level == "none":
        return {}
    info = cand.info or {}
    given = info.get("a1111")
    if given:
        fields, loras = dict(given.get("fields", {})), [tuple(x) for x in given.get("loras", [])]
    else:
        h, w = cand.image.shape[:2]
        size = info.get("size") or (w, h)
        fields, loras = generic_fields(cand.params, seed=cand.seed, size=(int(size[0]), int(size[1]))), []
    if level == "minimal":
        fields = {k: v for k, v in fields.items() if k in A1111_KEYS}
    else:
        fields.update({"Generator": cand.plugin, "Candidate id": record["id"]})
    text = {"parameters": infotext(record["prompt"], record["negative_prompt"], fields, loras)}
    if level == "full":
        meta = {"id": record["id"], "seed": cand.seed, "params": cand.params, "plugin": cand.plugin,
                "models": cand.models, "failed": cand.failed, "info": info, "has_mask": cand.mask is not None}
        text["candidate_id"] = record["id"]
        text["ecomforge"] = json.dumps(scrub_paths(meta), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text
