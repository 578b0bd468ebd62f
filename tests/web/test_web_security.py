"""Untrusted input: bad uploads, limits, missing fields, tokens, and path traversal in every named thing."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from webhelpers import png_bytes, submit, wait_for


def _png(w, h) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _jobs(client):
    return client.get("/api/jobs").json()["jobs"]


@pytest.mark.parametrize("data, status, words", [
    (b"hello, I am text pretending to be a photo", 400, "not an image"),
    (png_bytes(1)[:300], 400, "truncated or corrupt"),
    (b"", 400, "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 300_000, 413, "over the limit"),  # over max_file_bytes (200 kB)
    (_png(1000, 1000), 413, "pixels"),  # 1 MP > max_pixels 400k, though the file is tiny
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", 400, "not an image"),
])
def test_bad_reference_uploads_are_refused_with_one_clear_message(client, tmp_path, data, status, words):
    r = submit(client, refs=[data])
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and words in body["error"] and "\n" not in body["error"]
    assert _jobs(client) == []
    assert [p.name for p in (tmp_path / "runs").iterdir() if p.is_dir()] == []  # nothing left behind


def test_type_comes_from_content_not_name(client, tmp_path):
    files = [("references", ("photo.txt", png_bytes(1), "text/plain"))]
    assert client.post("/api/jobs", files=files, data={"recipe": "webtoy"}).status_code == 202
    files = [("references", ("photo.png", b"GIF89a but not really", "image/png"))]
    assert client.post("/api/jobs", files=files, data={"recipe": "webtoy"}).status_code == 400


def test_too_many_files_and_oversize_body(client):
    r = submit(client, refs=[png_bytes(i) for i in range(4)])  # limit 3
    assert r.status_code == 413 and "limit of 3" in r.json()["error"]
    big = [("references", (f"r{i}.png", b"x" * 190_000, "image/png")) for i in range(16)]
    r = client.post("/api/jobs", files=big, data={"recipe": "webtoy"})  # 3 MB > max_request_bytes (2.7 MB)
    assert r.status_code == 413 and "request body" in r.json()["error"]
    r = client.post("/api/jobs", content=b"x", headers={"content-length": "999999999",
                                                         "content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413


@pytest.mark.parametrize("kwargs, status, words", [
    ({"refs": []}, 400, "references"),
    ({"recipe": ""}, 400, "recipe"),
    ({"recipe": "nope"}, 404, "no preset named 'nope'"),
    ({"overrides": {"generate.config.levle": 3}}, 400, "levle"),
    ({"overrides": {"generate.config.level": 999}}, 400, "level"),
    ({"overrides": {"output.dir": "/tmp/evil"}}, 400, "cannot be set"),
    ({"overrides": {"inputs.references": ["/etc/passwd"]}}, 400, "cannot be set"),
    ({"overrides": {"acquire.plugin": "local"}}, 400, "cannot be set"),
    ({"overrides": {"mask.plugin": "nosuch"}}, 400, "unknown masker plugin"),
])
def test_missing_fields_and_bad_recipes(client, kwargs, status, words):
    r = submit(client, **kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert _jobs(client) == []


def test_overrides_must_be_a_json_object(client):
    files = [("references", ("a.png", png_bytes(1), "image/png"))]
    for bad in ("{not json", "[1, 2]", '{"": 1}', '{"a..b": 1}'):
        r = client.post("/api/jobs", files=files, data={"recipe": "webtoy", "overrides": bad})
        assert r.status_code == 400 and "overrides" in r.json()["error"], bad


def test_uploaded_recipe_file(client):
    from webhelpers import WEB_RECIPE

    files = [("references", ("a.png", png_bytes(1), "image/png")),
             ("recipe", ("r.yaml", WEB_RECIPE.replace("seeds: [1, 2]", "seeds: [7]").encode(), "text/yaml"))]
    r = client.post("/api/jobs", files=files)
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"])
    assert job["recipe"] == "upload:webtoy" and {x["seed"] for x in job["results"]} == {7}
    files[1] = ("recipe", ("r.yaml", b"- just\n- a list\n", "text/yaml"))
    r = client.post("/api/jobs", files=files)
    assert r.status_code == 400 and "mapping" in r.json()["error"]


@pytest.mark.parametrize("name", ["../recipes/webtoy", "/etc/passwd", "webtoy.yaml", "..", "web toy",
                                  "webtoy/../webtoy", "%2e%2e%2fwebtoy", "webtoy\x00"])
def test_recipe_name_traversal(client, name):
    r = submit(client, recipe=name)
    assert r.status_code in (400, 404) and "preset" in r.json()["error"]


def test_upload_filename_never_reaches_the_disk(client, tmp_path):
    files = [("references", ("../../../../evil.png", png_bytes(1), "image/png"))]
    job_id = client.post("/api/jobs", files=files, data={"recipe": "webtoy"}).json()["id"]
    wait_for(client, job_id)
    names = {p.name for p in tmp_path.rglob("*")}
    assert "evil.png" not in names and "evil" not in str(sorted(names))
    assert sorted(p.name for p in (tmp_path / "runs" / job_id / "uploads").iterdir()) == ["ref-01.png"]


def test_path_traversal_in_job_ids_files_and_zip_ids(client, tmp_path):
    job_id = submit(client).json()["id"]
    job = wait_for(client, job_id)
    run_dir = tmp_path / "runs" / job_id / job["run_dir"]
    (tmp_path / "secret.txt").write_text("top secret")
    os.symlink(tmp_path / "secret.txt", run_dir / "candidates" / "link.png")
    for bad in ("..", "..%2F..%2Fsecret.txt", "%2e%2e", "jobs.sqlite3", job_id.upper(), job_id + "x",
                "j0000000000000000", job_id + "%2F..%2F..", "%00"):
        for suffix in ("", "/results.zip", "/events", "/files/manifest.jsonl"):
            r = client.get(f"/api/jobs/{bad}{suffix}")
            assert r.status_code == 404, (bad, suffix, r.status_code)
        assert client.post(f"/api/jobs/{bad}/cancel").status_code == 404
        assert client.post(f"/api/jobs/{bad}/resume").status_code == 404
    for path in ("../job.yaml", "..%2Fjob.yaml", "%2e%2e/job.yaml", "candidates/../../job.yaml",
                 "..%2F..%2Fjobs.sqlite3", "/etc/passwd", "%2Fetc%2Fpasswd", "candidates/link.png",
                 ".write-test", "candidates/%00.png", "candidates\\..\\..\\job.yaml", "candidates", ""):
        r = client.get(f"/api/jobs/{job_id}/files/{path}")
        assert r.status_code == 404, (path, r.status_code)
        assert b"secret" not in r.content and b"generate" not in r.content
    ok = client.get(f"/api/jobs/{job_id}/files/manifest.jsonl")
    assert ok.status_code == 200 and "sandbox" in ok.headers["content-security-policy"]
    for ids in ("../../secret", "a,b", "x" * 16, "/etc/passwd"):
        r = client.get(f"/api/jobs/{job_id}/results.zip", params={"ids": ids})
        assert r.status_code == 400 and "candidate id" in r.json()["error"], ids
    r = client.get(f"/api/jobs/{job_id}/results.zip", params={"ids": "0123456789abcdef"})
    assert r.status_code == 404
    assert client.post(f"/api/jobs/{job_id}/candidates/..%2F..%2Fx/rerun").status_code == 404


def test_token_required_when_set(make_app):
    from fastapi.testclient import TestClient

    token = "s3cret-token-123"
    with TestClient(make_app(token=token)) as c:
        assert c.get("/api/jobs").status_code == 401
        assert c.get("/api/jobs").json()["error"].startswith("access token required")
        assert c.get("/api/jobs", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
        assert c.get("/openapi.json").status_code == 401
        assert c.get("/api/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        r = submit(c)
        assert r.status_code == 401  # uploads are refused before anything is read
        r = submit(c, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 202
        r = c.get("/api/plugins", params={"token": token})
        assert r.status_code == 200 and "HttpOnly" in r.headers["set-cookie"]
        assert c.get("/api/recipes").status_code == 200  # the cookie that ?token= set
        c.cookies.clear()
        assert c.get("/api/recipes").status_code == 401


def test_token_guards_the_ui_too(make_app):
    from fastapi.testclient import TestClient

    token = "s3cret-token-123"
    with TestClient(make_app(token=token, ui=True)) as c:
        assert c.get("/").status_code == 401
        assert c.get("/gradio_api/info").status_code == 401
        page = c.get("/", params={"token": token})
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert c.get("/config").status_code == 200  # the cookie carries the token for the page's own requests


def test_no_token_on_loopback(client):
    assert client.get("/api/jobs").status_code == 200


def test_serve_refuses_public_host_without_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ECOMFORGE_TOKEN"}
    r = subprocess.run([sys.executable, "-c", "from ecomforge.cli import main; main()", "serve", "--host", "0.0.0.0",
                        "--runs", str(tmp_path / "r")], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "--token" in r.stderr
    assert not (tmp_path / "r").exists()
    from ecomforge.errors import UsageError
    from ecomforge.web.security import check_bind

    with pytest.raises(UsageError, match="access token"):
        check_bind("192.168.1.5", None)
    with pytest.raises(UsageError, match="at least 8"):
        check_bind("0.0.0.0", "short")
    check_bind("0.0.0.0", "long-enough-token")
    check_bind("127.0.0.1", None)
