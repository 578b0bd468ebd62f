"""What the UI shows of a job: its status line, its candidates (scored or not yet), thumbnails, the job list."""
from __future__ import annotations

import html
import re
import secrets
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .jobs import TERMINAL, Job
from .manager import JobManager

THUMB_SIDE = 320  # long side of gallery thumbnails: small files, so they show at once


@dataclass
class Results:
    """A job's candidates for the gallery: (thumbnail path, caption) items and the records behind them."""

    items: list[tuple[str, str]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)  # products that failed: product, step, reason


def plural(n: int, word: str) -> str:
    """'1 candidate', '2 candidates'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


# States that Resume finishes: the run stopped, not because of what it was asked to do. A failed job's cause
# (a mask not found, missing weights) comes back on a resume, so it is not offered there.
RESUME_HELPS = ("cancelled", "interrupted")


def status_html(job: dict[str, Any], results: Results | None = None) -> str:
    """The progress block: state, stage with done/total, a bar, the ETA and candidates so far.

    With ``results``, the counts are those of its whole run folder (a resumed job's summary counts
    only what its last session made; a stopped job's candidates are on disk, not yet scored).
    """
    p = job.get("progress") or {}
    state = job["state"]
    frac = 1.0 if state == "done" else float(p.get("fraction") or 0.0)
    parts = [f"<b class='state-{html.escape(state)}'>{html.escape(state)}</b> · job <code>{html.escape(job['id'])}</code>"]
    if state == "queued":
        parts.append(f"waiting for a worker ({job.get('waiting') or 1} in the queue)")
    if state == "running" and p.get("stage"):
        parts.append(f"{html.escape(str(p['stage']))} {p.get('done', 0)}/{p.get('total', 0)}")
        if p.get("candidates"):
            parts.append(f"{plural(int(p['candidates']), 'candidate')} so far")
        if p.get("eta_s") is not None:
            eta = float(p["eta_s"])
            parts.append(f"ETA {eta:.0f} s" if eta >= 1 else "ETA under 1 s")
    if state == "done":
        s = job.get("summary") or {}
        made, kept = s.get("total_candidates", 0), s.get("total_kept", 0)
        if results is not None and results.records:
            made, kept = len(results.records), sum(bool(r.get("kept")) for r in results.records)
        parts.append(f"{plural(made, 'candidate')}, {kept} kept")
    elif state in TERMINAL and results is not None and results.records:
        scored = sum(bool(r.get("scored", True)) for r in results.records)
        parts.append(f"{plural(len(results.records), 'candidate')} made, {scored} scored")
    for f in (results.failures if results is not None else [])[:3]:
        parts.append(f"<span class='state-failed'>product {html.escape(str(f.get('product')))} failed at "
                     f"{html.escape(str(f.get('step')))}: {html.escape(str(f.get('reason', ''))[:300])}</span>")
    error = str(job.get("error") or "").removesuffix("(resumable)").strip()
    if error and error != state:
        parts.append(html.escape(error))
    if job.get("resumable") and state in RESUME_HELPS:
        parts.append("<i>Resume finishes it and keeps what was made.</i>")
    return f"<div>{' · '.join(parts)}</div><div class='bar'><div style='width:{frac * 100:.0f}%'></div></div>"


def run_root(manager: JobManager, job: Job) -> Path | None:
    """The job's run folder once it exists."""
    if not job.run_dir:
        return None
    root = manager.store.job_dir(job.id) / job.run_dir
    return root if root.is_dir() else None


def job_results(manager: JobManager, job: Job, thumbs: Path) -> Results:
    """Scored candidates (kept first, best first), then those generated but not scored yet, in the order made.

    A running or cancelled job has candidate PNGs that are not in the manifest yet: they are shown too.
    """
    from ..run.store import MANIFEST, read_manifest

    root = run_root(manager, job)
    out = Results()
    if root is None:
        return out
    records = read_manifest(root) if (root / MANIFEST).is_file() else []
    out.failures = [{**f, "reason": manager.scrub_message(str(f.get("reason", "")), job.id)}
                    for f in _failures(root / MANIFEST)]  # a plugin's reason may name any server file
    records.sort(key=lambda r: (not r["kept"], -(r.get("total") or 0.0), r["id"]))
    for r in records:
        total = r.get("total")
        # Short, so it fits under a thumbnail four to a row: score, kept or dropped, seed.
        caption = f"{total:.2f}" if total is not None else "failed"
        caption += f" {'kept' if r['kept'] else 'dropped'} · s{r['seed']}"
        out.items.append((thumbnail(root / r["image"], thumbs), caption))
        out.records.append(r)
    for r in unscored_records(root, {r["id"] for r in records}):
        out.items.append((thumbnail(root / r["image"], thumbs), "not scored yet"))
        out.records.append(r)
    return out


CANDIDATE_ID = re.compile(r"[0-9a-f]{16}")
UNSCORED = "not scored: the job stopped before its scoring step (Resume scores it)"
MAX_SIDECAR = 1024 * 1024  # bytes of a candidate's sidecar read back (the run store writes a few hundred)


def unscored_records(root: Path, known: set[str]) -> list[dict[str, Any]]:
    """Candidates on disk that the manifest does not hold yet (a running, cancelled or interrupted job), in the
    order made, as records marked ``scored: False``: what a job made stays fetchable however it stopped.

    Their seed and parameters come from each one's sidecar (the run store writes it with the PNG); a web job
    has one product, named after its references' folder.
    """
    folder = root / "candidates"
    if not folder.is_dir():
        return []
    refs = root / "references"
    products = [p.name for p in refs.iterdir() if p.is_dir()] if refs.is_dir() else []
    product = products[0] if len(products) == 1 else None
    pngs = [p for p in folder.glob("*.png") if CANDIDATE_ID.fullmatch(p.stem) and p.stem not in known]
    out = []
    for p in sorted(pngs, key=lambda p: (p.stat().st_mtime, p.name)):
        meta = _sidecar(p.with_suffix(".json"))
        out.append({"id": p.stem, "product": product, "image": f"candidates/{p.name}", "selected": None,
                    "kept": False, "scored": False, "reason": UNSCORED, "scores": {}, "total": None,
                    "seed": meta.get("seed"), "params": meta.get("params") or {}, "plugin": meta.get("plugin"),
                    "models": meta.get("models") or {}, "failed": meta.get("failed")})
    return out


def _sidecar(path: Path) -> dict[str, Any]:
    """A candidate's sidecar JSON, or {} when it is missing, too large or unreadable (the image still counts)."""
    import json

    try:
        if path.stat().st_size > MAX_SIDECAR:
            return {}
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _failures(manifest: Path) -> list[dict[str, Any]]:
    """The manifest's product-failure lines (the runner records a product that failed instead of stopping)."""
    import json

    from ..run.store import PRODUCT_FAILED

    out = []
    if manifest.is_file():
        for line in manifest.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break
            if isinstance(rec, dict) and rec.get("record") == PRODUCT_FAILED:
                out.append(rec)
    return out


def thumbnail(path: Path, thumbs: Path, max_pixels: int | None = None,
              formats: Iterable[str] | None = None) -> str:
    """A small JPEG of ``path`` (made once per file version) for the gallery; the full PNG stays for downloads.

    With ``max_pixels`` (uploads), a larger image is refused from its header, before any decoding; with
    ``formats``, only those decoders are tried (an upload's type is its bytes', and few are allowed).
    """
    from PIL import Image

    stat = path.stat()
    out = thumbs / f"{path.parent.parent.name}-{path.parent.name}-{path.stem}-{stat.st_mtime_ns}.jpg"
    if not out.is_file():
        thumbs.mkdir(parents=True, exist_ok=True)
        with Image.open(path, formats=sorted(formats) if formats is not None else None) as src:
            if max_pixels is not None and src.size[0] * src.size[1] > max_pixels:
                raise ValueError(f"{path.name}: {src.size[0]}x{src.size[1]} is over the limit of {max_pixels} pixels")
            src.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEG: decode at reduced size directly
            im = src.convert("RGB")
        im.thumbnail((THUMB_SIDE, THUMB_SIDE))
        tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")  # two viewers may make it at once
        im.save(tmp, format="JPEG", quality=85)
        tmp.replace(out)  # atomic: a viewer never reads half a file
    return str(out)


def thumbs_dir() -> Path:
    """A folder for this server's thumbnails (outside the job store, so nothing of a job is served from it)."""
    return Path(tempfile.mkdtemp(prefix="ecomforge-thumbs-"))


def job_label(job: Job) -> str:
    """One line of the job list: when, preset, state, results."""
    when = time.strftime("%m-%d %H:%M", time.localtime(job.created))
    made = (job.summary or {}).get("total_candidates") if job.state == "done" else None
    if made is None:
        made = (job.progress or {}).get("candidates")
    extra = f" · {plural(int(made), 'candidate')}" if made else ""
    return f"{when} · {job.recipe} · {job.state}{extra} · {job.id}"


def job_choices(manager: JobManager, limit: int = 50) -> list[tuple[str, str]]:
    """(label, id) of the newest jobs, for the job list."""
    return [(job_label(j), j.id) for j in manager.store.all(limit)]
