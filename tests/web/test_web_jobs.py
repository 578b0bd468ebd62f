"""The job queue: one job at a time, a bounded queue (429), and jobs that survive a server restart."""
from __future__ import annotations

import time

from fastapi.testclient import TestClient

from webhelpers import submit, wait_for

SLOW = {"generate.config.delay": 0.15, "generate.seeds": [1, 2, 3, 4]}


def test_queue_full_is_429_and_nothing_is_lost(make_app):
    with TestClient(make_app(queue_size=2)) as c:
        first = submit(c, overrides=SLOW).json()["id"]
        wait_for(c, first, states=("running",))
        waiting = [submit(c).json()["id"] for _ in range(2)]
        r = submit(c)
        assert r.status_code == 429
        assert r.json() == {"error": "the queue is full (2 jobs waiting); try again later", "status": 429}
        listed = c.get("/api/jobs").json()
        assert listed["waiting"] == 2 and len(listed["jobs"]) == 3
        # only one job runs at a time
        states = [c.get(f"/api/jobs/{j}").json()["state"] for j in (first, *waiting)]
        assert states == ["running", "queued", "queued"]
        c.post(f"/api/jobs/{waiting[1]}/cancel")
        assert c.get(f"/api/jobs/{waiting[1]}").json()["state"] == "cancelled"
        for j in (first, waiting[0]):
            assert wait_for(c, j, timeout=60)["state"] == "done"
        assert c.get(f"/api/jobs/{waiting[1]}").json()["state"] == "cancelled"  # skipped, never run
        assert submit(c).status_code == 202  # room again


def test_progress_reports_stage_counts_and_eta(make_app):
    with TestClient(make_app()) as c:
        job_id = submit(c, overrides=SLOW).json()["id"]
        seen = None
        deadline = time.time() + 30
        while time.time() < deadline:
            p = c.get(f"/api/jobs/{job_id}").json()["progress"]
            if p.get("stage") == "generate" and p["done"] >= 2:
                seen = p
                break
            time.sleep(0.05)
        assert seen is not None
        assert seen["total"] == 8 and 0 < seen["fraction"] < 1 and seen["eta_s"] is not None and seen["eta_s"] > 0
        c.post(f"/api/jobs/{job_id}/cancel")
        wait_for(c, job_id)


def test_restart_keeps_finished_jobs_and_resumes_interrupted_ones(make_app, tmp_path):
    from ecomforge.web.jobs import JobStore

    with TestClient(make_app()) as c:
        done_id = submit(c).json()["id"]
        wait_for(c, done_id)
        slow_id = submit(c, overrides=SLOW).json()["id"]
        deadline = time.time() + 30
        while c.get(f"/api/jobs/{slow_id}").json()["progress"].get("candidates", 0) < 2:
            assert time.time() < deadline
            time.sleep(0.05)
    # the server stopped mid-job: the job is interrupted, and resumable
    with TestClient(make_app()) as c:
        jobs = {j["id"]: j for j in c.get("/api/jobs").json()["jobs"]}
        assert jobs[done_id]["state"] == "done" and len(c.get(f"/api/jobs/{done_id}").json()["results"]) == 4
        assert jobs[slow_id]["state"] == "interrupted" and jobs[slow_id]["resumable"]
        assert c.post(f"/api/jobs/{done_id}/resume").status_code == 409
        assert c.post(f"/api/jobs/{slow_id}/resume").status_code == 202
        job = wait_for(c, slow_id, timeout=60)
        assert job["state"] == "done" and len({r["id"] for r in job["results"]}) == len(job["results"]) == 8
    # a server killed outright leaves 'running' in the database: the next one marks it interrupted
    store = JobStore(tmp_path / "runs")
    store.update(done_id, state="running")
    store.close()
    with TestClient(make_app()) as c:
        job = c.get(f"/api/jobs/{done_id}").json()
        assert job["state"] == "interrupted" and job["resumable"] and "server stopped" in job["error"]
        assert wait_for(c, c.post(f"/api/jobs/{done_id}/resume").json()["id"])["state"] == "done"
