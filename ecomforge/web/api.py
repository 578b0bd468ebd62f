"""The HTTP API: submit, list, watch, cancel and resume jobs; fetch their files and zips; list plugins and recipes."""
from __future__ import annotations

import asyncio
import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyio import from_thread
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.datastructures import FormData, UploadFile

from ..errors import InputError
from .files import REPORT_CSP, file_headers
from .jobs import TERMINAL, Job, valid_job_id
from .manager import JobManager, JobNotFound
from .recipes import list_presets
from .results import CANDIDATE_ID, unscored_records
from .submit import rerun_candidate, submit_job
from .uploads import Limits, TooLarge


def _file_headers(media: str, **kw: Any) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in file_headers(media.encode(), **kw)}


MEDIA = {".png": "image/png", ".html": "text/html; charset=utf-8", ".jsonl": "application/x-ndjson",
         ".yaml": "text/plain; charset=utf-8", ".json": "application/json"}
TEXT_SUFFIXES = (".html", ".jsonl", ".yaml", ".json")

JOB_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["references"],
    "properties": {
        "references": {"type": "array", "items": {"type": "string", "format": "binary"},
                       "description": "One or more product photos (PNG, JPEG or WebP; not TIFF, GIF or BMP)."},
        "recipe": {"description": "A preset name from GET /api/recipes, or a recipe YAML file.",
                   "oneOf": [{"type": "string"}, {"type": "string", "format": "binary"}]},
        "prompt": {"type": "string", "description": "What the new images should show (default: the recipe's)."},
        "negative_prompt": {"type": "string", "description": "What they should not show."},
        "overrides": {"type": "string", "description": 'JSON object of dotted recipe keys -> values, e.g. '
                                                       '{"generate.config.steps": 20, "generate.seeds": [3]}'},
        "masks": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "Optional: one mask per reference (light = product); uses the 'upload' masker."},
    }}}}}}


def error(status: int, message: str) -> JSONResponse:
    """The API's error shape: ``{"error": message, "status": code}``."""
    return JSONResponse({"error": message, "status": status}, status_code=status)


class _Jobs:
    """What the routes share: the job manager, the presets folder and the upload limits."""

    def __init__(self, manager: JobManager, recipes_dir: Path, limits: Limits) -> None:
        self.manager, self.recipes_dir, self.limits = manager, recipes_dir, limits

    def job_or_404(self, job_id: str) -> Job:
        """The job, or JobNotFound (404) for an unknown or malformed id."""
        job = self.manager.get(job_id) if valid_job_id(job_id) else None
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        return job

    def run_root(self, job: Job) -> Path | None:
        """The job's run folder once it holds a recipe, else None."""
        if not job.run_dir:
            return None
        root = (self.manager.store.job_dir(job.id) / job.run_dir).resolve()
        return root if (root / "recipe.yaml").is_file() else None

    def view(self, job: Job, results: bool = True) -> dict[str, Any]:
        """The job as the API shows it: server folders scrubbed, results when asked for."""
        d = self.manager.view(job)
        if results:
            d["results"] = self.manager.scrub(job.id, _results(job, self.run_root(job)))
            for rec in d["results"]:  # a plugin's reason may name any server file: no path of the server at all
                for key in ("reason", "failed"):
                    if isinstance(rec.get(key), str):
                        rec[key] = self.manager.scrub_message(rec[key], job.id)
        return d


def make_router(manager: JobManager, recipes_dir: Path, limits: Limits) -> APIRouter:
    """Routes under /api, bound to one job manager."""
    r = APIRouter(prefix="/api")
    jobs = _Jobs(manager, recipes_dir, limits)
    _submit_route(r, jobs)
    _job_routes(r, jobs)
    _file_routes(r, jobs)
    _info_routes(r, recipes_dir)
    return r


@dataclass
class _JobForm:
    """A submit form's fields, checked as far as they can be without reading a file (the files are still unread)."""

    references: list[UploadFile]
    masks: list[UploadFile]
    preset: str | None
    recipe_file: UploadFile | None
    text: dict[str, str | None]

    def read(self, limits: Limits) -> dict[str, Any]:
        """The files' bytes (each read up to one byte over its limit), for submit_job; in a worker thread.

        Called only inside the request's intake slot, which it took before its form was parsed.
        """
        def read(f: UploadFile, limit: int) -> bytes:
            return from_thread.run(f.read, limit + 1)

        return {"references": [read(f, limits.max_file_bytes) for f in self.references],
                "names": [f.filename or "" for f in self.references],
                "masks": [read(f, limits.max_file_bytes) for f in self.masks], "preset": self.preset,
                "recipe_file": read(self.recipe_file, limits.max_recipe_bytes) if self.recipe_file else None}


MAX_FORM_FIELDS = 16  # the job form has 4 text fields (recipe, prompt, negative_prompt, overrides)
FORM_WAIT_S = 120.0  # seconds a request that holds a body slot may take to send its body


def _max_text_part(limits: Limits) -> int:
    """Bytes a text field of the form may hold: the overrides' limit and a prompt's (4 bytes a character),
    with headroom, so a field over its own limit still gets that limit's 413; at least 256 KiB."""
    return max(256 * 1024, 2 * limits.max_overrides_bytes, 8 * limits.max_text)


async def _parse_form(request: Request, limits: Limits) -> FormData | JSONResponse:
    """The multipart form of POST /jobs (files spooled, not read), or the 400 (408) answer that refuses it."""
    try:
        return await asyncio.wait_for(request.form(max_files=2 * limits.max_files + 2, max_fields=MAX_FORM_FIELDS,
                                                   max_part_size=_max_text_part(limits)), FORM_WAIT_S)
    except asyncio.TimeoutError:
        return error(408, f"the request body did not arrive within {FORM_WAIT_S:.0f} s")
    except Exception as exc:  # the multipart parser's messages are already plain
        return error(400, f"bad multipart form: {' '.join(str(exc).split())[:200]}")


def _job_form(form: FormData, limits: Limits) -> _JobForm | JSONResponse:
    """The form's checks that need no file's bytes (counts, the recipe field, the text fields), or the answer."""
    refs = [v for v in form.getlist("references") if isinstance(v, UploadFile)]
    masks = [v for v in form.getlist("masks") if isinstance(v, UploadFile)]
    refused = _refuse_file_counts(len(refs), len(masks), limits)
    if refused is not None:
        return refused
    recipe = form.get("recipe")
    if recipe is None or recipe == "":
        return error(400, "field 'recipe': give a preset name (GET /api/recipes) or a recipe file")
    text = _text_fields(form, limits)
    if isinstance(text, JSONResponse):
        return text
    return _JobForm(refs, masks, recipe if isinstance(recipe, str) else None,
                    recipe if isinstance(recipe, UploadFile) else None, text)


def _refuse_file_counts(refs: int, masks: int, limits: Limits) -> JSONResponse | None:
    """A 400 for no references or a mask count that does not match; TooLarge (413) over the file limit."""
    if not refs:
        return error(400, "field 'references': upload at least one product photo")
    if refs > limits.max_files or masks > limits.max_files:
        raise TooLarge(f"references: {refs} files is over the limit of {limits.max_files}")
    if masks and masks != refs:
        return error(400, f"field 'masks': {masks} masks for {refs} references (one each)")
    return None


def _text_fields(form: FormData, limits: Limits) -> dict[str, str | None] | JSONResponse:
    """The prompt, negative prompt and overrides fields: text, not files; the prompts within max_text."""
    fields: dict[str, str | None] = {}
    for k in ("prompt", "negative_prompt", "overrides"):
        v = form.get(k)
        if v is not None and not isinstance(v, str):
            return error(400, f"field '{k}': expected text, got a file")
        if k != "overrides" and v is not None and len(v) > limits.max_text:
            raise TooLarge(f"field '{k}': over {limits.max_text} characters")
        fields[k] = v
    return fields


def _submit_route(r: APIRouter, jobs: _Jobs) -> None:
    """POST /jobs."""
    manager, limits = jobs.manager, jobs.limits

    @r.post("/jobs", status_code=202, openapi_extra=JOB_FORM, summary="Submit a job (multipart form)")
    async def create_job(request: Request) -> JSONResponse:
        """Validate the uploads and the recipe, then queue the job (429 when the queue is full)."""
        manager.check_room()  # 429 before the body is parsed, let alone decoded
        # The body is parsed only inside a body slot: a request that waits for one has read none of it (the
        # multipart parser keeps text fields and small files in memory), and is refused with 429 unread.
        async with manager.body_slot_async():
            parsed = await _parse_form(request, limits)
            if isinstance(parsed, JSONResponse):
                return parsed
            try:
                form = _job_form(parsed, limits)
                if isinstance(form, JSONResponse):
                    return form

                def checked() -> Job:
                    # Files are read into memory, then decoded, only inside an intake slot (submit_job's own
                    # intake_slot, nested, takes no second one).
                    with manager.intake_slot():
                        return submit_job(manager, jobs.recipes_dir, limits, **form.read(limits),
                                          prompt=form.text["prompt"], negative_prompt=form.text["negative_prompt"],
                                          overrides=form.text["overrides"])

                job = await run_in_threadpool(checked)
            finally:
                await parsed.close()
        return JSONResponse(jobs.view(job, results=False), status_code=202,
                            headers={"Location": f"/api/jobs/{job.id}"})


def _job_routes(r: APIRouter, jobs: _Jobs) -> None:
    """Listing, watching, cancelling, resuming and rerunning jobs."""
    manager, view, job_or_404 = jobs.manager, jobs.view, jobs.job_or_404

    @r.get("/jobs", summary="List jobs, newest first")
    def list_jobs() -> dict[str, Any]:
        """Every job the server knows, without results."""
        return {"jobs": [view(j, results=False) for j in manager.store.all()], "waiting": manager.waiting(),
                "queue_size": manager.queue_size}

    @r.get("/jobs/{job_id}", summary="A job: state, stage, progress, ETA and results")
    def get_job(job_id: str) -> dict[str, Any]:
        """State, current stage with done/total, overall fraction and ETA, and each result's scores and parameters."""
        return view(job_or_404(job_id))

    @r.get("/jobs/{job_id}/events", summary="Server-sent events of a job's progress")
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        """``event: progress`` with the job (no results) on every change; ``event: end`` when it stops."""
        job_or_404(job_id)

        async def stream():
            last = -1
            while not await request.is_disconnected():
                version = manager.version(job_id)
                if version != last:
                    last = version
                    job = job_or_404(job_id)  # jobs are never deleted: found above, found now
                    yield f"event: progress\ndata: {json.dumps(view(job, results=False))}\n\n"
                    if job.state in TERMINAL:
                        yield f"event: end\ndata: {json.dumps({'state': job.state})}\n\n"
                        return
                await asyncio.sleep(0.2)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @r.post("/jobs/{job_id}/cancel", summary="Cancel a job (a running one stops at its next step or candidate)")
    def cancel_job(job_id: str) -> dict[str, Any]:
        """Cancel; the run folder stays resumable."""
        job_or_404(job_id)
        return view(manager.cancel(job_id), results=False)

    @r.post("/jobs/{job_id}/resume", status_code=202, summary="Finish an interrupted, cancelled or failed job")
    def resume_job(job_id: str) -> dict[str, Any]:
        """Queue the job again; work already in its run folder is not redone."""
        job_or_404(job_id)
        return view(manager.resume(job_id), results=False)

    @r.post("/jobs/{job_id}/candidates/{candidate_id}/rerun", status_code=202,
            summary="Make one candidate again (its reference, seed and sweep point) as a new job")
    def rerun(job_id: str, candidate_id: str) -> JSONResponse:
        """A new job; its id is in the answer."""
        job_or_404(job_id)
        if not CANDIDATE_ID.fullmatch(candidate_id):
            raise JobNotFound(f"no candidate {candidate_id!r}")
        job = rerun_candidate(manager, jobs.recipes_dir, jobs.limits, job_id, candidate_id)
        return JSONResponse(view(job, results=False), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})


def _file_routes(r: APIRouter, jobs: _Jobs) -> None:
    """A job's results as a zip, and single files of its run folder."""

    @r.get("/jobs/{job_id}/results.zip", summary="Result images as a zip (all, or ?ids=a,b)")
    def results_zip(job_id: str, ids: str | None = None) -> Response:
        """Candidate PNGs and their manifest lines; ``ids`` picks some."""
        job = jobs.job_or_404(job_id)
        root = jobs.run_root(job)
        if root is None:
            return error(409, f"job {job_id} has no results yet")
        records = zip_records(root, job, ids)  # a bad id is a 400/404 before the first byte
        # One Content-Disposition, naming the file: with two, Chromium refuses the download.
        return StreamingResponse(iter_zip(root, records, jobs.manager, job.id), media_type="application/zip",
                                 headers=_file_headers("application/zip", filename=f"{job.id}-results.zip"))

    @r.get("/jobs/{job_id}/files/{path:path}", summary="A file of the job's run folder")
    def job_file(job_id: str, path: str) -> Response:
        """Only files inside the job's run folder; nothing hidden, nothing through links out of it."""
        job = jobs.job_or_404(job_id)
        root = jobs.run_root(job)
        if root is None:
            return error(404, f"job {job_id} has no run folder yet")
        parts = path.split("/")
        if not path or "\\" in path or "\x00" in path or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            return error(404, f"no file {path!r} in this job")
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return error(404, f"no file {path!r} in this job")
        media = MEDIA.get(target.suffix.lower(), "application/octet-stream")
        # The run's own report shows the job's images: not sandboxed (see REPORT_CSP), and still no script.
        headers = _file_headers(media, csp=REPORT_CSP) if path == "report.html" else _file_headers(media)
        if target.suffix.lower() in TEXT_SUFFIXES:  # the run's recipe names its uploads by their server paths
            text = jobs.manager.scrub(job.id, target.read_text(encoding="utf-8", errors="replace"))
            return Response(text, media_type=media, headers=headers)
        return FileResponse(target, media_type=media, headers=_file_headers(media))


def _info_routes(r: APIRouter, recipes_dir: Path) -> None:
    """Installed plugins and recipe presets."""

    @r.get("/plugins", summary="Installed plugins with their config JSON schemas")
    def plugins() -> dict[str, Any]:
        """The table of ``ecomforge plugins --json``, less load-error tracebacks (they hold server paths)."""
        from ..cli.info import plugin_table

        table = plugin_table()
        table["errors"] = [{k: v for k, v in e.items() if k != "traceback"} for e in table["errors"]]
        return table

    @r.get("/recipes", summary="Recipe presets")
    def recipes() -> dict[str, Any]:
        """The YAML presets in the server's recipes folder, with their plugins and key parameters."""
        return {"recipes": list_presets(recipes_dir)}


def _results(job: Job, root: Path | None) -> list[dict[str, Any]]:
    """Scored candidates (the manifest), then those made but not scored yet (``scored: false``): a cancelled
    job's images are its results too."""
    if root is None or not (root / "manifest.jsonl").is_file():
        return []
    base = f"/api/jobs/{job.id}/files/"
    out = []
    for rec in all_records(root):
        out.append({"id": rec["id"], "product": rec["product"], "reference": rec.get("reference"),
                    "image": base + rec["image"], "selected": base + rec["selected"] if rec.get("selected") else None,
                    "kept": rec["kept"], "scored": rec.get("scored", True), "reason": rec.get("reason"),
                    "scores": rec.get("scores", {}), "total": rec.get("total"), "seed": rec.get("seed"),
                    "params": rec.get("params", {}), "plugin": rec.get("plugin"), "failed": rec.get("failed")})
    return out


def all_records(root: Path) -> list[dict[str, Any]]:
    """The manifest's records, then the candidates on disk it does not hold yet (``scored: False``)."""
    from ..run.store import read_manifest

    records = read_manifest(root)
    return records + unscored_records(root, {r["id"] for r in records})


def zip_records(root: Path, job: Job, ids: str | None) -> list[dict[str, Any]]:
    """The records a zip holds: all, or the comma-separated ``ids`` (checked before anything is sent); candidates
    not scored yet are included, so a stopped job's images can be downloaded."""
    records = all_records(root)
    if ids:
        wanted = [i.strip() for i in ids.split(",") if i.strip()]
        bad = [i for i in wanted if not CANDIDATE_ID.fullmatch(i)]
        if bad or len(wanted) > 10_000:
            raise InputError(f"ids: {bad[0]!r} is not a candidate id" if bad else "ids: too many")
        by_id = {r["id"]: r for r in records}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise JobNotFound(f"ids: no candidate {missing[0]!r} in job {job.id}")
        records = [by_id[i] for i in dict.fromkeys(wanted)]
    return records


class _Chunks(io.RawIOBase):
    """An unseekable sink the zip writer writes into; what it wrote is taken away chunk by chunk."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


ZIP_CHUNK = 1024 * 1024


def iter_zip(root: Path, records: list[dict[str, Any]], manager: JobManager, job_id: str) -> Iterator[bytes]:
    """A zip of the records' candidate PNGs and their manifest lines, made as it is sent.

    A whole zip in memory is every PNG of the job at once, per download: here each file is copied
    a chunk at a time, so a download holds about one chunk however large the job. The manifest lines
    name no server path (``zip_manifest``); the PNGs' own text names files by their names only.
    """
    sink = _Chunks()
    newest = ZIP_EPOCH
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
        for rec in records:
            path = root / "candidates" / f"{rec['id']}.png"  # rebuilt from the checked id, not from the file
            if not path.is_file():
                continue
            product = rec.get("product")
            name = f"{product}/{rec['id']}.png" if isinstance(product, str) and _safe_part(product) else f"{rec['id']}.png"
            info = zipfile.ZipInfo(name, _zip_time(path.stat().st_mtime))
            info.external_attr = 0o644 << 16
            newest = max(newest, info.date_time)
            with open(path, "rb") as src, zf.open(info, "w") as dst:
                while chunk := src.read(ZIP_CHUNK):
                    dst.write(chunk)
                    yield sink.take()
        # Dated like the newest PNG, not now: the same records make the same bytes (the UI's copies of a
        # download are kept by content, so each click on the same selection is one copy, not a new one).
        manifest = zipfile.ZipInfo("manifest.jsonl", newest)
        manifest.external_attr = 0o644 << 16
        zf.writestr(manifest, zip_manifest(manager, job_id, records))
        yield sink.take()
    yield sink.take()  # the central directory, written on close


ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry holds


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    """A file's modification time as a zip entry's (UTC, so the bytes do not depend on the server's zone)."""
    t = time.gmtime(mtime)
    return min(max(ZIP_EPOCH, (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)),
               (2107, 12, 31, 23, 59, 58))


def zip_manifest(manager: JobManager, job_id: str, records: list[dict[str, Any]]) -> str:
    """The records as JSON lines for a download: the job's files relative to it, the server's folders by name,
    and any other absolute path (a background photo, a local model folder, a plugin's reason) hidden."""
    return "".join(json.dumps(manager.scrub(job_id, r, every_path=True), sort_keys=True) + "\n" for r in records)


def _safe_part(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}", name)) and ".." not in name  # a product name
