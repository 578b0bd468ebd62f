"""``ecomforge export``: kept candidates as a Hugging Face ``datasets`` imagefolder for fine-tuning."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError
from ..imaging.infotext import scrub_paths
from ..imaging.io import atomic_write_bytes
from ..jsonl import read_rows
from ..run.store import candidate_image, manifest_records

MARKER = ".ecomforge-export.json"  # which run and selection an export folder holds
# What each metadata row is made of; their types are checked by check_record.
_EXPORT_KEYS = ("prompt", "negative_prompt", "seed", "params", "models", "scores", "reference_sha256")


def _score_reasons(rec: dict[str, Any]) -> dict[str, str]:
    """Score name -> why it is low, where a scorer said (strings only: a hand-edited manifest is input)."""
    reasons = rec.get("score_reasons")
    if not isinstance(reasons, dict):
        return {}
    return {str(k): scrub_paths(v) for k, v in reasons.items() if isinstance(v, str)}


def _existing_metadata(meta_path: Path) -> list[dict[str, Any]]:
    """The rows an earlier export wrote (an export adds to them); a row that is not one is named."""
    if not meta_path.exists():
        return []
    rows = read_rows(meta_path, advice="export into an empty folder")
    for n, row in rows:
        if not isinstance(row.get("file_name"), str):
            raise UsageError(f"{meta_path}: line {n}: a row needs a file_name; export into an empty folder")
    return [row for _, row in rows]


def check_destination(out_dir: Path, run_name: str, include: str) -> None:
    """Refuse a destination that is not a folder, or holds anything but this run's export of the same selection.

    Exporting again into a run's own export adds what is new (a resumed run's products); anything else in
    the folder (another run, another ``--include``, files of the user's) would mix into the dataset.
    """
    if out_dir.is_symlink():  # written through, it would put the dataset beside whatever it points to
        raise UsageError(f"{out_dir}: is a symlink; give the path of a folder (not a link to one) for the export")
    if os.path.lexists(out_dir) and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder; give a new or empty folder for the export")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    meta = out_dir / "metadata.jsonl"
    if os.path.lexists(meta) and (meta.is_symlink() or not meta.is_file()):
        raise UsageError(f"{meta}: is not a regular file; export into an empty folder")
    _existing_metadata(meta)  # a broken row is named first
    marker = out_dir / MARKER
    try:
        held = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() and not marker.is_symlink() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        held = None
    mine = {"run": run_name, "include": include}
    if held != mine:
        what = (f"the export of run {held.get('run')} (--include {held.get('include')})" if isinstance(held, dict)
                else "files that are not an ecomforge export")
        raise UsageError(f"{out_dir}: holds {what}; export run {run_name} (--include {include}) into an empty folder")


def export_imagefolder(run_dir: Path, out_dir: Path, *, include: str = "kept") -> int:
    """Copy images and write ``metadata.jsonl`` (file_name, text = prompt, scores, parameters, kept and the filter's
    reason); returns the count."""
    records = manifest_records(run_dir)
    chosen = [(n, r) for n, r in records if (r["kept"] if include == "kept" else not r.get("failed"))]
    run_name = Path(run_dir).resolve().name
    check_destination(out_dir, run_name, include)
    for n, r in chosen:  # every record and image checked before anything is written
        missing = [k for k in _EXPORT_KEYS if k not in r]
        if missing:
            raise InputError(f"{Path(run_dir) / 'manifest.jsonl'}: line {n}: candidate record without "
                             f"{', '.join(missing)} (an export needs it)")
        candidate_image(run_dir, r, n)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{out_dir}: cannot create the export folder ({exc.strerror or exc})") from exc
    atomic_write_bytes(out_dir / MARKER, json.dumps({"run": run_name, "include": include}).encode())
    meta_path = out_dir / "metadata.jsonl"
    existing = _existing_metadata(meta_path)
    seen = {m["file_name"] for m in existing}
    lines = list(existing)
    for n, r in chosen:
        name = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', r['product'])}-{r['id']}.png"  # both checked: a plain file name
        if name in seen:
            continue
        atomic_write_bytes(out_dir / name, candidate_image(run_dir, r, n).read_bytes())
        lines.append({"file_name": name, "text": r["prompt"], "negative_prompt": r["negative_prompt"],
                      # an export leaves the machine: model and LoRA names, never local paths
                      "id": r["id"], "product": r["product"], "seed": r["seed"], "params": scrub_paths(r["params"]),
                      "models": scrub_paths(r["models"]), "scores": r["scores"], "total": r.get("total"),
                      "reference_sha256": r["reference_sha256"], "references_sha256": r.get("references_sha256", []),
                      # with --include all, what tells kept and dropped images apart, and why
                      "kept": r["kept"], "reason": r.get("reason"), "score_reasons": _score_reasons(r),
                      "run": run_name})
    atomic_write_bytes(meta_path, "".join(json.dumps(m, sort_keys=True) + "\n" for m in lines).encode())
    return len(lines) - len(existing)
