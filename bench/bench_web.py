"""The web server under load: 50 jobs submitted at once over loopback, and status latency while one runs.

    .venv/bin/python bench/bench_web.py [--jobs 50] [--queue-size 16] [--polls 400]

A uvicorn server (API only) runs in this process on a free 127.0.0.1 port with the offline quickstart
preset, shrunk to one 128x128 candidate per job. Every submission must end accepted-and-done or refused
with 429; none lost, none run twice. While a job runs, GET /api/jobs/{id} is timed (p50/p95).
Results: printed, and written to bench/results/web.json.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = {"generate.config.size": [128, 128], "generate.sweep": {}, "generate.seeds": [1]}


def _photo() -> bytes:
    from PIL import Image

    with Image.open(ROOT / "samples/dreambench/vase/02.jpg") as im:
        im = im.convert("RGB").resize((192, 192))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    """Run the load test and print its figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--queue-size", type=int, default=16)
    ap.add_argument("--polls", type=int, default=400)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ecomforge-bench-web-"))
    server, thread, base = _start_server(tmp, args.queue_size)
    try:
        seen = _load(base, _photo(), args.jobs, args.polls)
    finally:
        server.should_exit = True
        thread.join(30)
    result = _figures(seen, args.jobs, args.queue_size)
    assert result["other_status"] == 0 and result["lost"] == 0 and result["duplicated_job_ids"] == 0, result
    assert result["accepted"] + result["refused_429"] == args.jobs and result["jobs_listed_after"] == result["accepted"]
    print(json.dumps(result, indent=2))
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "web.json").write_text(json.dumps(result, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


def _start_server(tmp: Path, queue_size: int):
    """A uvicorn server (API only, the quickstart preset) in a thread on a free loopback port."""
    import uvicorn

    from ecomforge.web.app import ServerConfig, create_app

    (tmp / "recipes").mkdir()
    shutil.copy(ROOT / "recipes/quickstart.yaml", tmp / "recipes/quickstart.yaml")
    app = create_app(ServerConfig(runs=tmp / "runs", recipes=tmp / "recipes", queue_size=queue_size, ui=False))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def _load(base: str, photo: bytes, jobs: int, polls: int) -> dict:
    """Submit ``jobs`` at once, time status polls while one runs, then wait for every accepted job."""
    import httpx

    with httpx.Client(base_url=base, timeout=60) as c:
        # Warm-up job: the first job pays the plugins' one-time imports.
        r = c.post("/api/jobs", files=[("references", ("v.png", photo, "image/png"))],
                   data={"recipe": "quickstart", "overrides": json.dumps(TINY)})
        _wait(c, r.json()["id"])

        def submit(i: int) -> tuple[int, str | None, float]:
            t0 = time.perf_counter()
            resp = httpx.post(base + "/api/jobs", files=[("references", (f"v{i}.png", photo, "image/png"))],
                              data={"recipe": "quickstart", "overrides": json.dumps(TINY)}, timeout=60)
            return resp.status_code, resp.json().get("id"), time.perf_counter() - t0

        t0 = time.perf_counter()
        with ThreadPoolExecutor(jobs) as pool:
            answers = list(pool.map(submit, range(jobs)))
        submit_wall = time.perf_counter() - t0
        accepted = [a[1] for a in answers if a[0] == 202]
        lat = _status_latency(c, polls)
        finals = {j: _wait(c, j) for j in accepted}
        listed = c.get("/api/jobs").json()["jobs"]
    return {"answers": answers, "accepted": accepted, "submit_wall": submit_wall, "lat": lat, "finals": finals,
            "listed": listed}


def _status_latency(c, polls: int) -> list[float]:
    """Seconds per GET /api/jobs/{id} of the currently running job (up to ``polls``, or 120 s)."""
    lat: list[float] = []
    running = None
    deadline = time.time() + 120
    while len(lat) < polls and time.time() < deadline:
        if running is None or c.get(f"/api/jobs/{running}").json()["state"] != "running":
            running = next((j["id"] for j in c.get("/api/jobs").json()["jobs"] if j["state"] == "running"), None)
            if running is None:
                break
        t1 = time.perf_counter()
        c.get(f"/api/jobs/{running}")
        lat.append(time.perf_counter() - t1)
    return lat


def _figures(seen: dict, jobs: int, queue_size: int) -> dict:
    """The reported figures from what the load run saw."""
    answers, accepted, finals, lat = seen["answers"], seen["accepted"], seen["finals"], seen["lat"]
    done = [j for j, s in finals.items() if s["state"] == "done"]
    return {
        "jobs_submitted": jobs, "accepted": len(accepted), "refused_429": sum(a[0] == 429 for a in answers),
        "other_status": sum(a[0] not in (202, 429) for a in answers),
        "accepted_done": len(done), "lost": len(accepted) - len(done),
        "duplicated_job_ids": len(accepted) - len(set(accepted)),
        "jobs_listed_after": len(seen["listed"]) - 1,  # minus the warm-up job
        "candidates_per_job": sorted({len(s["results"]) for s in finals.values()}),
        "submit_wall_s": round(seen["submit_wall"], 3),
        "submit_p50_ms": round(1000 * statistics.median(a[2] for a in answers), 1),
        "status_polls": len(lat),
        "status_p50_ms": round(1000 * _pct(lat, 0.5), 2) if lat else None,
        "status_p95_ms": round(1000 * _pct(lat, 0.95), 2) if lat else None,
        "queue_size": queue_size,
        "candidate_ids_unique_per_job": all(len({r["id"] for r in s["results"]}) == len(s["results"])
                                            for s in finals.values()),
    }


def _wait(c, job_id: str, timeout: float = 600) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = c.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled", "interrupted"):
            return job
        time.sleep(0.1)
    raise TimeoutError(job_id)


if __name__ == "__main__":
    main()
