"""The HTTP API end to end on the toy preset: submit, progress, results, files, zips, cancel, SSE, plugins."""
from __future__ import annotations

import io
import json
import zipfile

from PIL import Image

from webhelpers import jpeg_bytes, png_bytes, submit, wait_for


def test_job_runs_to_results_with_scores_and_parameters(client):
    r = submit(client, refs=[png_bytes(1), jpeg_bytes(2)], prompt="a red toy", overrides={"generate.seeds": [5, 6]})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.headers["location"] == f"/api/jobs/{job_id}"
    job = wait_for(client, job_id)
    assert job["state"] == "done", job
    results = job["results"]
    assert len(results) == 2 * 2 * 2  # references x sweep points x seeds
    assert {r["seed"] for r in results} == {5, 6}
    assert {r["params"]["level"] for r in results} == {60, 180}
    assert all(0 <= r["scores"]["toy"] <= 1 for r in results)
    assert sum(r["kept"] for r in results) == 4
    assert job["progress"]["fraction"] == 1.0 and job["summary"]["total_candidates"] == 8
    # the prompt from the form reached the images' parameters
    img = client.get(results[0]["image"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(img.content)) as im:
        assert im.text["parameters"].splitlines()[0] == "a red toy"
    # uploaded references were stored under generated names, re-encoded as PNG
    listing = client.get("/api/jobs").json()["jobs"]
    assert [j["id"] for j in listing] == [job_id]


def test_zip_all_and_selected(client):
    job_id = submit(client).json()["id"]
    job = wait_for(client, job_id)
    ids = [r["id"] for r in job["results"]]
    z = zipfile.ZipFile(io.BytesIO(client.get(f"/api/jobs/{job_id}/results.zip").content))
    pngs = [n for n in z.namelist() if n.endswith(".png")]
    assert len(pngs) == len(ids) and "manifest.jsonl" in z.namelist()
    pick = ids[:2]
    z = zipfile.ZipFile(io.BytesIO(client.get(f"/api/jobs/{job_id}/results.zip", params={"ids": ",".join(pick)}).content))
    assert sorted(n.rsplit("/", 1)[-1][:-4] for n in z.namelist() if n.endswith(".png")) == sorted(pick)
    lines = z.read("manifest.jsonl").decode().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(pick)


def test_events_stream_progress_until_the_end(client):
    job_id = submit(client, overrides={"generate.config.delay": 0.02}).json()["id"]
    with client.stream("GET", f"/api/jobs/{job_id}/events") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = []
        for line in resp.iter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
            if line.startswith("data: ") and events[-1] == "progress":
                last = json.loads(line[6:])
    assert events[-1] == "end" and events.count("progress") >= 2
    assert last["state"] == "done"


def test_cancel_running_job_keeps_it_resumable(client):
    job_id = submit(client, overrides={"generate.config.delay": 0.2, "generate.seeds": [1, 2, 3, 4]}).json()["id"]
    wait_for(client, job_id, states=("running",))
    r = client.post(f"/api/jobs/{job_id}/cancel")
    assert r.status_code == 200
    job = wait_for(client, job_id, states=("cancelled",))
    assert job["resumable"] and job["run_dir"]
    assert job["summary"] == {}
    again = client.post(f"/api/jobs/{job_id}/resume")
    assert again.status_code == 202
    job = wait_for(client, job_id, states=("done",), timeout=60)
    assert len(job["results"]) == 1 * 2 * 4
    assert len({r["id"] for r in job["results"]}) == 8
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 409  # already done


def test_rerun_one_candidate(client):
    job_id = submit(client, refs=[png_bytes(1), png_bytes(3)]).json()["id"]
    job = wait_for(client, job_id)
    cand = next(r for r in job["results"] if r["params"]["level"] == 180 and r["seed"] == 2)
    r = client.post(f"/api/jobs/{job_id}/candidates/{cand['id']}/rerun")
    assert r.status_code == 202, r.text
    new = wait_for(client, r.json()["id"])
    assert new["state"] == "done", new
    assert [x["id"] for x in new["results"]] == [cand["id"]]  # same reference, seed and sweep point: same id


def test_plugins_and_recipes(client):
    plugins = client.get("/api/plugins").json()["plugins"]
    toy = next(p for p in plugins if p["kind"] == "generator" and p["name"] == "toy")
    assert "level" in toy["config_schema"]["properties"]
    recipes = client.get("/api/recipes").json()["recipes"]
    assert [r["name"] for r in recipes] == ["webtoy"] and recipes[0]["generate"] == "toy"
    spec = client.get("/openapi.json").json()
    assert "/api/jobs" in spec["paths"] and "/api/jobs/{job_id}/events" in spec["paths"]


def test_uploaded_masks_use_the_upload_masker(client, tmp_path):
    import numpy as np

    from ecomforge.testing import sample_image

    img, mask = sample_image(96, 72, 4)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    mbuf = io.BytesIO()
    Image.fromarray(mask).save(mbuf, format="PNG")
    files = [("references", ("a.png", buf.getvalue(), "image/png")), ("masks", ("m.png", mbuf.getvalue(), "image/png"))]
    r = client.post("/api/jobs", files=files, data={"recipe": "webtoy"})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"])
    assert job["state"] == "done", job
    run = tmp_path / "runs" / job["id"] / job["run_dir"]
    saved = np.asarray(Image.open(next((run / "masks").rglob("00.png"))))
    assert np.array_equal(saved > 0, mask > 0)  # the user's mask, not a detected one
    files.append(("masks", ("m2.png", mbuf.getvalue(), "image/png")))
    r = client.post("/api/jobs", files=files, data={"recipe": "webtoy"})
    assert r.status_code == 400 and "one each" in r.json()["error"]


def test_plugin_load_errors_reach_web_clients_without_tracebacks(client, monkeypatch):
    """A load error's traceback holds server file paths: the API lists the error, never the traceback."""
    from ecomforge.cli import info

    table = {"plugins": [], "errors": [{"plugin": "broken", "distribution": "ecomforge-broken", "kind": "",
                                         "error": "ImportError: no module", "traceback": "File \"/srv/secret/x.py\""}]}
    monkeypatch.setattr(info, "plugin_table", lambda: table)
    errors = client.get("/api/plugins").json()["errors"]
    assert errors == [{"plugin": "broken", "distribution": "ecomforge-broken", "kind": "", "error": "ImportError: no module"}]
