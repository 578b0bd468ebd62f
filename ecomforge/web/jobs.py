"""Jobs persisted in SQLite beside their run folders, so a restarted server still knows every job."""
from __future__ import annotations

import json
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DB_NAME = "jobs.sqlite3"
JOB_ID = re.compile(r"^j[0-9a-f]{16}$")
QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = "queued", "running", "done", "failed", "cancelled", "interrupted"
TERMINAL = {DONE, FAILED, CANCELLED, INTERRUPTED}
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED)


def new_job_id() -> str:
    """``j`` + 16 random hex digits: unguessable, and safe as a folder name."""
    return "j" + secrets.token_hex(8)


def valid_job_id(value: str) -> bool:
    """True only for ids this server could have made (nothing else may name a folder)."""
    return bool(JOB_ID.fullmatch(value or ""))


@dataclass
class Job:
    """One submitted recipe run: what was asked, where it runs, how far it got."""

    id: str
    state: str
    recipe: str  # the preset's name, or "upload:<name>" for an uploaded recipe file
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    run_dir: str | None = None  # relative to the job's folder
    error: str | None = None
    request: dict[str, Any] = field(default_factory=dict)  # prompt, overrides, reference count...
    summary: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)

    @property
    def resumable(self) -> bool:
        """An interrupted or cancelled job can be finished from its run folder (or started again)."""
        return self.state in (INTERRUPTED, CANCELLED, FAILED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {**asdict(self), "resumable": self.resumable}


_COLUMNS = ("id", "state", "recipe", "created", "started", "finished", "run_dir", "error", "request",
            "summary", "progress")
_JSON = {"request", "summary", "progress"}


class JobStore:
    """Thread-safe SQLite table of jobs (stdlib sqlite3, WAL, one connection behind a lock)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / DB_NAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, recipe TEXT NOT NULL, "
            "created REAL NOT NULL, started REAL, finished REAL, run_dir TEXT, error TEXT, "
            "request TEXT NOT NULL, summary TEXT NOT NULL, progress TEXT NOT NULL)")

    def job_dir(self, job_id: str) -> Path:
        """The job's own folder (uploads, its recipe, its run folder)."""
        if not valid_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def add(self, job: Job) -> None:
        """Insert a new job."""
        row = self._row(job)
        with self._lock:
            self._db.execute(f"INSERT INTO jobs ({','.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})", row)

    def update(self, job_id: str, **values: Any) -> None:
        """Set some columns of one job."""
        cols = [c for c in values if c in _COLUMNS and c != "id"]
        args = [json.dumps(values[c]) if c in _JSON else values[c] for c in cols]
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {', '.join(f'{c}=?' for c in cols)} WHERE id=?", (*args, job_id))

    def get(self, job_id: str) -> Job | None:
        """One job, or None."""
        with self._lock:
            row = self._db.execute(f"SELECT {','.join(_COLUMNS)} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def all(self, limit: int = 500) -> list[Job]:
        """Newest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {','.join(_COLUMNS)} FROM jobs ORDER BY created DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [self._job(r) for r in rows]

    def mark_interrupted(self) -> list[str]:
        """At start-up: jobs left queued or running by a server that died are interrupted (resumable)."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM jobs WHERE state IN (?, ?)", (QUEUED, RUNNING)).fetchall()
            self._db.execute("UPDATE jobs SET state=?, error=? WHERE state IN (?, ?)",
                             (INTERRUPTED, "the server stopped before this job finished", QUEUED, RUNNING))
        return [r[0] for r in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @staticmethod
    def _row(job: Job) -> tuple:
        d = asdict(job)
        return tuple(json.dumps(d[c]) if c in _JSON else d[c] for c in _COLUMNS)

    @staticmethod
    def _job(row: tuple) -> Job:
        d = dict(zip(_COLUMNS, row))
        for c in _JSON:
            d[c] = json.loads(d[c]) if d[c] else {}
        return Job(**d)
