"""The job queue: a bounded queue, a pool of worker threads (one per device by default), cancel and resume."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from ..errors import Cancelled, EcomforgeError, UsageError
from ..recipe.safeyaml import safe_dump
from ..run.cancel import CancelToken, scope
from .jobs import (
    CANCELLED,
    DONE,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    TERMINAL,
    Job,
    JobStore,
    new_job_id,
    valid_job_id,
)
from .progress import JobCancelled, JobObserver
from .scrub import known_folders, scrub_text
from .trust import PathPolicy

log = logging.getLogger("ecomforge.web")
JOB_RECIPE = "job.yaml"
MASK_ROOTS = "mask-roots.json"  # folders besides the uploads and presets that the job's preset names mask files in


_UPLOAD = re.compile(r"\buploads/(masks/)?ref-(\d{2})\.png\b")


def name_uploads(text: str, names: list[str]) -> str:
    """``uploads/ref-01.png`` (the name the server gave an upload) as the user knows it: ``photo 1 (vase.jpg)``."""
    def one(m: re.Match[str]) -> str:
        n = int(m.group(2))
        name = f" ({names[n - 1]})" if 0 < n <= len(names) and names[n - 1] else ""
        return f"the mask of photo {n}{name}" if m.group(1) else f"photo {n}{name}"

    return _UPLOAD.sub(one, text)


def upload_name(name: str | None) -> str:
    """A file name a browser sent with an upload, safe to keep and show: its last part, printable, 80 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    return " ".join("".join(c for c in base if c.isprintable()).split())[:80]


class QueueFull(UsageError):
    """Too many jobs are waiting (HTTP 429)."""


class JobNotFound(UsageError):
    """No job with that id (HTTP 404)."""


class JobConflict(UsageError):
    """The job is not in a state that allows this (HTTP 409)."""


class JobManager:
    """Owns the job table, the queue and the workers; runs each job's recipe through ``run_recipe``."""

    def __init__(self, root: Path, *, workers: int = 1, queue_size: int = 8, device: str = "auto",
                 policy: PathPolicy | None = None, intake: int = 2, intake_wait: float = 60.0,
                 presets: Path | None = None, bodies: int = 8) -> None:
        self.root = Path(root).resolve()
        self.presets = Path(presets).resolve() if presets is not None else None  # the presets folder
        self._folders = known_folders(self.root, self.presets)  # what scrub() shows by name
        self.policy = policy or PathPolicy()  # what requests may name besides their uploads and presets
        self.store = JobStore(self.root)
        self.interrupted_at_start = self.store.mark_interrupted()
        self.workers = max(1, workers)
        self.queue_size = queue_size
        self.device = device
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._waiting: set[str] = set()
        self._stops: dict[str, threading.Event] = {}
        # a running job's cancel token: checked inside long plugin calls and while jobs are planned
        self._tokens: dict[str, CancelToken] = {}
        self._observers: dict[str, JobObserver] = {}
        self._live: dict[str, dict[str, Any]] = {}
        self._versions: dict[str, int] = {}
        self._names: dict[str, list[str]] = {}  # job id -> its uploads' own file names (a job's request never changes)
        self._threads: list[threading.Thread] = []
        # Requests whose uploads are decoded and recipes resolved at once: each may hold GBs of pixels.
        self.intake = threading.BoundedSemaphore(intake)
        self.intake_wait = intake_wait
        # Requests whose bodies are read at once: a parsed form holds its text fields and small files in
        # memory, so waiting requests read nothing; more of these than intake slots, so that a few slow
        # clients sending their bodies do not hold up the decoding of everyone else's.
        self.bodies = threading.BoundedSemaphore(bodies)
        self._holding = threading.local()  # the slot this thread holds: a nested intake_slot() takes no second one

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads."""
        if self._threads:
            return
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"ecomforge-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        """Interrupt running jobs (they stay resumable), stop the workers, close the database."""
        with self._lock:
            for job_id, ev in self._stops.items():
                obs = self._observers.get(job_id)
                if obs is not None:
                    obs.stop_reason = "interrupted"
                ev.set()
                self._tokens[job_id].cancel("interrupted")
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        self.store.mark_interrupted()
        self.store.close()

    # --- requests --------------------------------------------------------------------------------
    def new_job(self, recipe: str, request: dict[str, Any]) -> Job:
        """A fresh job id and folder (nothing queued yet)."""
        job = Job(id=new_job_id(), state=QUEUED, recipe=recipe, request=request)
        self.store.job_dir(job.id).mkdir(parents=True)
        return job

    def check_room(self) -> None:
        """Raise QueueFull now, before a request's uploads are read or decoded, when no job could be queued."""
        if len(self._waiting) >= self.queue_size:
            raise QueueFull(f"the queue is full ({self.queue_size} jobs waiting); try again later")

    @contextmanager
    def intake_slot(self, *, for_job: bool = True):
        """One of the few slots for decoding and checking a request; QueueFull (429) when none frees in time.

        ``for_job=False`` (a mask preview) does not add a job, so a full job queue does not refuse it.
        A thread that holds a slot already (the API reads a request's files inside its slot, then submits)
        keeps using it: nested, this takes no second slot.
        """
        if getattr(self._holding, "slot", False):
            if for_job:
                self.check_room()
            yield
            return
        if not self.intake.acquire(timeout=self.intake_wait):
            raise QueueFull("the server is busy checking other uploads; try again later")
        self._holding.slot = True
        try:
            if for_job:
                self.check_room()  # the queue may have filled while this request waited
            yield
        finally:
            self._holding.slot = False
            self.intake.release()

    @asynccontextmanager
    async def body_slot_async(self, *, poll: float = 0.02):
        """One of the slots for reading a request's body, for a handler on the event loop: waits without
        holding a thread (a thread blocked on the semaphore would take the slot after its request was gone);
        QueueFull when none frees within ``intake_wait`` or when the queue is full."""
        deadline = time.monotonic() + self.intake_wait
        while not self.bodies.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise QueueFull("the server is busy receiving other uploads; try again later")
            await asyncio.sleep(poll)
        try:
            self.check_room()  # the queue may have filled while this request waited
            yield
        finally:
            self.bodies.release()

    def submit(self, job: Job, recipe_data: dict[str, Any], mask_roots: list[str] | None = None) -> Job:
        """Queue a validated job; raises QueueFull when the queue is at its bound.

        ``mask_roots`` are more folders its mask files may be read from at run time (those its preset names).
        """
        path = self.store.job_dir(job.id) / JOB_RECIPE
        with self._lock:
            if len(self._waiting) >= self.queue_size:
                raise QueueFull(f"the queue is full ({self.queue_size} jobs waiting); try again later")
            if mask_roots:
                (path.parent / MASK_ROOTS).write_text(json.dumps(mask_roots), encoding="utf-8")
            path.write_text(safe_dump(recipe_data, sort_keys=False, allow_unicode=True), encoding="utf-8")
            self.store.add(job)
            self._waiting.add(job.id)
            self._bump(job.id)
        self._queue.put(job.id)
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a waiting job at once, or stop a running one within a step (its candidates so far are kept)."""
        job = self.require(job_id)
        with self._lock:
            if job_id in self._waiting:
                self._waiting.discard(job_id)
                self.store.update(job_id, state=CANCELLED, finished=time.time(), error="cancelled before it started")
            elif job_id in self._stops:
                self._stops[job_id].set()
                self._tokens[job_id].cancel()
            elif job.state in TERMINAL:
                raise JobConflict(f"job {job_id} is already {job.state}")
            self._bump(job_id)
        return self.require(job_id)

    def resume(self, job_id: str) -> Job:
        """Queue an interrupted, cancelled or failed job again; its run folder is finished, not restarted."""
        with self._lock:  # checked and changed at once: two resumes at once queue the run folder once
            job = self.require(job_id)
            if not job.resumable or job_id in self._waiting:
                raise JobConflict(f"job {job_id} is {job.state}: only interrupted, cancelled or failed jobs resume")
            if not (self.store.job_dir(job_id) / JOB_RECIPE).is_file():
                raise JobConflict(f"job {job_id} has no saved recipe to resume from")
            if len(self._waiting) >= self.queue_size:
                raise QueueFull(f"the queue is full ({self.queue_size} jobs waiting); try again later")
            self.store.update(job_id, state=QUEUED, error=None, finished=None)
            self._waiting.add(job_id)
            self._bump(job_id)
        self._queue.put(job_id)
        return self.require(job_id)

    def get(self, job_id: str) -> Job | None:
        """The job with its live progress when it is running."""
        job = self.store.get(job_id)
        if job is not None and job_id in self._live:
            job.progress = dict(self._live[job_id])
        return job

    def version(self, job_id: str) -> int:
        """Changes whenever the job's state or progress changes (for server-sent events)."""
        return self._versions.get(job_id, 0)

    def waiting(self) -> int:
        """Jobs in the queue."""
        return len(self._waiting)

    def require(self, job_id: str) -> Job:
        """The job (as ``get``), or JobNotFound when there is none."""
        job = self.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        return job

    def _bump(self, job_id: str) -> None:
        self._versions[job_id] = self._versions.get(job_id, 0) + 1

    def scrub(self, job_id: str | None, value: Any, *, every_path: bool = False) -> Any:
        """Text for a web user: the job's folder as relative names, the server's folders by name.

        ``every_path`` (messages: errors, failure reasons) also hides any other absolute path; served
        files and the job's own view keep theirs (their URLs and HTML are paths too).
        """
        jdir = str(self.store.job_dir(job_id)) if job_id is not None else None
        folders = self._folders
        names = self.upload_names(job_id) if every_path and job_id is not None else []

        def one(v: Any) -> Any:
            if isinstance(v, str):
                if jdir is not None:
                    v = v.replace(jdir + "/", "").replace(jdir, ".")
                v = scrub_text(v, folders, every_path=every_path)
                return name_uploads(v, names) if every_path and job_id is not None else v
            if isinstance(v, dict):
                return {k: one(x) for k, x in v.items()}
            if isinstance(v, list):
                return [one(x) for x in v]
            return v

        return one(value)

    def upload_names(self, job_id: str) -> list[str]:
        """The file names the job's photos had when they were uploaded (kept with its request), in order."""
        if job_id not in self._names:
            job = self.store.get(job_id) if valid_job_id(job_id) else None
            names = (job.request or {}).get("names") if job is not None else None
            if job is None:
                return []
            self._names[job_id] = [str(n) for n in names] if isinstance(names, list) else []
        return self._names[job_id]

    def scrub_message(self, message: str, job_id: str | None = None) -> str:
        """An error or a failure reason for a web user: no server path at all."""
        return self.scrub(job_id, message, every_path=True)

    def view(self, job: Job) -> dict[str, Any]:
        """The job as a web user sees it: the queue length, and its error and summary with no server path.

        They are stored scrubbed since the job finished; a job from an older server may still name server files.
        """
        d = job.to_dict()
        d["waiting"] = self.waiting() if job.state == "queued" else 0
        d["error"] = self.scrub_message(d["error"], job.id) if d.get("error") else d.get("error")
        d["summary"] = self.scrub(job.id, d.get("summary") or {}, every_path=True)
        return self.scrub(job.id, d)

    def mask_roots(self, job_id: str) -> list[Path]:
        """The folders a job's mask files may be read from: its uploads, the presets, and what its preset names."""
        jdir = self.store.job_dir(job_id)
        roots = [jdir / "uploads", *([self.presets] if self.presets is not None else [])]
        try:
            extra = json.loads((jdir / MASK_ROOTS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            extra = []
        return roots + [Path(p) for p in extra if isinstance(p, str) and os.path.isabs(p)]

    # --- the workers -----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                if job_id not in self._waiting:  # cancelled while it waited
                    continue
                self._waiting.discard(job_id)
                stop = self._stops[job_id] = threading.Event()
                token = self._tokens[job_id] = CancelToken()
            try:
                with scope(token):  # the run's helper threads inherit it
                    self._run(job_id, stop)
            except BaseException as exc:  # a worker must survive any job
                log.exception("job %s crashed the worker: %s", job_id, exc)
            finally:
                with self._lock:
                    # Resumed as soon as it stopped, the job may run on another worker already: keep its state.
                    if self._stops.get(job_id) is stop:
                        self._stops.pop(job_id, None)
                        self._tokens.pop(job_id, None)
                        self._observers.pop(job_id, None)
                        self._live.pop(job_id, None)
                    self._bump(job_id)

    def _run(self, job_id: str, stop: threading.Event) -> None:
        from ..imaging.maskfile import confine
        from ..recipe.load import read_yaml, resolve_recipe
        from ..run.runner import run_recipe

        jdir = self.store.job_dir(job_id)
        job = self.require(job_id)  # queued by submit() or resume(), which saved it first
        self.store.update(job_id, state=RUNNING, started=time.time())

        def changed(progress: dict[str, Any], persist: bool) -> None:
            self._live[job_id] = progress
            self._bump(job_id)
            if persist:  # the run folder is recorded as soon as it exists, so a crash leaves it resumable
                run_dir = obs.run_dir.relative_to(jdir).as_posix() if obs.run_dir else None
                self.store.update(job_id, progress=progress, run_dir=run_dir)

        obs = JobObserver(jdir, stop, changed)
        self._observers[job_id] = obs
        resume = None
        if job.run_dir and (jdir / job.run_dir / "recipe.yaml").is_file():
            resume = jdir / job.run_dir
        try:
            path = jdir / JOB_RECIPE
            # Every mask file a pattern fills in is checked again here: the check at submit saw only the pattern.
            with confine(self.mask_roots(job_id)):
                resolved = resolve_recipe(read_yaml(path), path=path)
                result = run_recipe(resolved, out=jdir, resume=resume, device=self.device, observers=[obs])
        except (JobCancelled, Cancelled) as exc:  # at a hook, or inside a step (cancel.check())
            state = INTERRUPTED if exc.reason == "interrupted" else CANCELLED
            self._finish(job_id, obs, state, f"{exc.reason} (resumable)")
        except EcomforgeError as exc:
            self._finish(job_id, obs, FAILED, exc.one_line())
        except Exception as exc:  # reported on the job, not raised into the worker
            log.exception("job %s failed", job_id)
            self._finish(job_id, obs, FAILED, f"{type(exc).__name__}: {exc}")
        else:
            self._finish(job_id, obs, DONE, None, summary=result.summary)

    def _finish(self, job_id: str, obs: JobObserver, state: str, error: str | None,
                summary: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {"state": state, "finished": time.time(),
                                  "error": self.scrub(job_id, error, every_path=True), "progress": obs.state}
        if obs.run_dir is not None:
            values["run_dir"] = obs.run_dir.relative_to(self.store.job_dir(job_id)).as_posix()
        if summary is not None:
            values["summary"] = self.scrub(job_id, summary, every_path=True)  # failure reasons name files
        self.store.update(job_id, **values)
