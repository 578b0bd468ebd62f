"""What the UI shows of a job: its status line, its candidates (scored or not yet), thumbnails, the job list."""
from __future__ import annotations

import html
import secrets
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .jobs import Job
from .manager import JobManager

THUMB_SIDE = 320  # long side of gallery thumbnails: small files, so they show at once


@dataclass
class Results:
    """A job's candidates for the gallery: (thumbnail path, caption) items and the records behind them."""

    items: list[tuple[str, str]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)  # products that failed: product, step, reason


def status_html(job: dict[str, Any], results: Results | None = None) -> str:
    """The progress block: state, stage with done/total, a bar, the ETA and candidates so far.

    With ``results``, a finished job's counts are those of its whole run folder (a resumed job's summary
    counts only what its last session made).
    """
    p = job.get("progress") or {}
    state = job["state"]
    frac = 1.0 if state == "done" else float(p.get("fraction") or 0.0)
    parts = [f"<b class='state-{state}'>{html.escape(state)}</b> · job <code>{job['id']}</code>"]
    if state == "queued":
        parts.append(f"waiting for a worker ({job.get('waiting') or 1} in the queue)")
    if state == "running" and p.get("stage"):
        parts.append(f"{html.escape(str(p['stage']))} {p.get('done', 0)}/{p.get('total', 0)}")
        if p.get("candidates"):
            parts.append(f"{p['candidates']} candidates so far")
        if p.get("eta_s") is not None:
            parts.append(f"ETA {p['eta_s']:.0f} s")
    if state == "done":
        s = job.get("summary") or {}
        made, kept = s.get("total_candidates", 0), s.get("total_kept", 0)
        if results is not None and results.records:
            made, kept = len(results.records), sum(bool(r.get("kept")) for r in results.records)
        parts.append(f"{made} candidates, {kept} kept")
    for f in (results.failures if results is not None else [])[:3]:
        parts.append(f"<span class='state-failed'>product {html.escape(str(f.get('product')))} failed at "
                     f"{html.escape(str(f.get('step')))}: {html.escape(str(f.get('reason', ''))[:300])}</span>")
    error = str(job.get("error") or "").removesuffix("(resumable)").strip()
    if error and error != state:
        parts.append(html.escape(error))
    if job.get("resumable"):
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
    known = {r["id"] for r in records}
    for r in records:
        total = r.get("total")
        # Short, so it fits under a thumbnail four to a row: score, kept or dropped, seed.
        caption = f"{total:.2f}" if total is not None else "failed"
        caption += f" {'kept' if r['kept'] else 'dropped'} · s{r['seed']}"
        out.items.append((thumbnail(root / r["image"], thumbs), caption))
        out.records.append(r)
    pending = [p for p in (root / "candidates").glob("*.png") if not p.name.endswith(".mask.png")
               and p.stem not in known]
    for p in sorted(pending, key=lambda p: (p.stat().st_mtime, p.name)):
        out.items.append((thumbnail(p, thumbs), "not scored yet"))
        out.records.append({"id": p.stem, "image": f"candidates/{p.name}", "kept": False, "scored": False})
    return out


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
    made = (job.summary or {}).get("total_candidates")
    if made is None:
        made = (job.progress or {}).get("candidates")
    extra = f" · {made} candidates" if made else ""
    return f"{when} · {job.recipe} · {job.state}{extra} · {job.id}"


def job_choices(manager: JobManager, limit: int = 50) -> list[tuple[str, str]]:
    """(label, id) of the newest jobs, for the job list."""
    return [(job_label(j), j.id) for j in manager.store.all(limit)]
