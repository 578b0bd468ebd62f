"""``ecomforge export``: kept candidates as a Hugging Face ``datasets`` imagefolder for fine-tuning."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..imaging.infotext import scrub_paths
from ..imaging.io import atomic_write_bytes
from ..jsonl import read_rows
from ..run.store import read_manifest


def _existing_metadata(meta_path: Path) -> list[dict[str, Any]]:
    """The rows an earlier export wrote (an export adds to them); a row that is not one is named."""
    if not meta_path.exists():
        return []
    rows = read_rows(meta_path, advice="export into an empty folder")
    for n, row in rows:
        if not isinstance(row.get("file_name"), str):
            raise UsageError(f"{meta_path}: line {n}: a row needs a file_name; export into an empty folder")
    return [row for _, row in rows]


def export_imagefolder(run_dir: Path, out_dir: Path, *, include: str = "kept") -> int:
    """Copy images and write ``metadata.jsonl`` (file_name, text = prompt, scores, parameters); returns the count."""
    records = read_manifest(run_dir)
    chosen = [r for r in records if (r["kept"] if include == "kept" else not r.get("failed"))]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{out_dir}: cannot create the export folder ({exc.strerror or exc})") from exc
    meta_path = out_dir / "metadata.jsonl"
    existing = _existing_metadata(meta_path)
    seen = {m["file_name"] for m in existing}
    lines = list(existing)
    for r in chosen:
        name = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', r['product'])}-{r['id']}.png"
        if name in seen:
            continue
        atomic_write_bytes(out_dir / name, (Path(run_dir) / r["image"]).read_bytes())
        lines.append({"file_name": name, "text": r["prompt"], "negative_prompt": r["negative_prompt"],
                      # an export leaves the machine: model and LoRA names, never local paths
                      "id": r["id"], "product": r["product"], "seed": r["seed"], "params": scrub_paths(r["params"]),
                      "models": scrub_paths(r["models"]), "scores": r["scores"], "total": r.get("total"),
                      "reference_sha256": r["reference_sha256"], "references_sha256": r.get("references_sha256", []),
                      "run": Path(run_dir).name})
    atomic_write_bytes(meta_path, "".join(json.dumps(m, sort_keys=True) + "\n" for m in lines).encode())
    return len(lines) - len(existing)
