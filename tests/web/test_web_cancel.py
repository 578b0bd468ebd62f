"""Cancel of a running web job lands inside the generator's call and keeps the candidates made so far."""
from __future__ import annotations

import time

from ecomforge.web.results import job_results

from webhelpers import submit, wait_for


def test_cancel_lands_inside_a_long_batch_and_keeps_the_partial_results(client, tmp_path):
    """Batches of five images at 0.3 s each (1.5 s per call, the toy generator checks every 0.03 s): cancelled
    once the first batch is written, the job ends inside the second call, with the first five candidates
    on disk and in the gallery (resume after such a cancel: tests/test_cancel.py)."""
    slow = {"generate.config.delay": 0.3, "generate.seeds": list(range(1, 11)), "generate.batch_size": 5}
    job_id = submit(client, overrides=slow).json()["id"]
    while (client.get(f"/api/jobs/{job_id}").json()["progress"] or {}).get("candidates", 0) < 5:
        time.sleep(0.02)
    made = client.get(f"/api/jobs/{job_id}").json()["progress"]["candidates"]
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 200
    job = wait_for(client, job_id, states=("cancelled",), timeout=20)
    assert job["resumable"] and job["run_dir"]
    # a hook-only cancel would have let the running call finish: five more candidates
    assert job["progress"]["candidates"] == made == 5
    run_dir = tmp_path / "runs" / job_id / job["run_dir"]
    assert len(list((run_dir / "candidates").glob("*.json"))) == 5
    manager = client.app.state.manager
    shown = job_results(manager, manager.get(job_id), tmp_path / "thumbs")  # what the UI's gallery shows
    assert len(shown.items) == 5 and all(r["scored"] is False for r in shown.records)
