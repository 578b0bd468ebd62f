"""What a new user's trial of the UI and the API found: each test fails with its fix reverted."""
from __future__ import annotations

import html
import io
import json
import re
import threading
import time
import zipfile
from types import SimpleNamespace
from urllib.parse import urljoin

import pytest
from PIL import Image

from webhelpers import png_bytes, submit, ui_actions, wait_for

SLOW = {"generate.config.delay": 0.2, "generate.seeds": {"count": 6, "base": 1}, "generate.sweep": {},
        "generate.batch_size": 1}


class Gate:
    """The toy scorer, held inside its call until the test releases it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def blocked(self) -> bool:
        return self.entered.is_set() and not self.released.is_set()


@pytest.fixture
def gate(monkeypatch):
    import toyplugins

    g = Gate()
    real = toyplugins.ToyScorer.score

    def score(self, candidates, context):
        g.entered.set()
        g.released.wait(120)  # a bound only, so a broken fix fails its assertion instead of hanging the suite
        return real(self, candidates, context)

    monkeypatch.setattr(toyplugins.ToyScorer, "score", score)
    yield g
    g.released.set()


def _until(check, what: str, timeout: float = 30.0):
    """Poll ``check`` until it returns something truthy (a bound on waiting, not a timed assertion)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"never: {what}")


def _pngs(run_dir) -> set[str]:
    return {p.stem for p in (run_dir / "candidates").glob("*.png") if not p.name.endswith(".mask.png")}


def _cancel_after(client, job_id: str, made: int, tmp_path) -> dict:
    """Cancel a running job once it has written ``made`` candidates; the cancelled job."""
    _until(lambda: (client.get(f"/api/jobs/{job_id}").json()["progress"] or {}).get("candidates", 0) >= made,
           f"{made} candidates")
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 200
    return wait_for(client, job_id, states=("cancelled",), timeout=30)


# --- 1. report.html shows its images -------------------------------------------------------------------------

def _directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


def _browser_site(csp: str) -> str:
    """The Sec-Fetch-Site a browser sends for a page's own images: a sandboxed page (no allow-same-origin) has
    an opaque origin, so they are cross-site."""
    sandbox = _directives(csp).get("sandbox")
    return "cross-site" if sandbox is not None and "allow-same-origin" not in sandbox else "same-origin"


def test_report_images_load_with_a_browsers_headers_and_the_report_runs_no_script(client):
    job = wait_for(client, submit(client).json()["id"])
    report_url = f"http://testserver/api/jobs/{job['id']}/files/report.html"
    page = client.get(report_url, headers={"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate",
                                           "Sec-Fetch-Dest": "document"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    rules = _directives(csp)
    # no script of any kind: default-src 'none' and no script-src to widen it (or script-src 'none')
    assert rules.get("script-src", rules["default-src"]) == ["'none'"] and "script-src-elem" not in rules
    assert rules["img-src"] == ["'self'"] and rules["form-action"] == ["'none'"]
    sources = re.findall(r"<img[^>]*\ssrc='([^']+)'", page.text)
    assert len(sources) >= len(job["results"]) + 1  # every candidate, and the reference
    site = _browser_site(csp)
    for src in sources:
        url = urljoin(report_url, html.unescape(src))
        r = client.get(url, headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", (src, r.status_code, r.text[:80])
        # the same request from another site's page is still refused
        other = client.get(url, headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors",
                                         "Sec-Fetch-Dest": "image"})
        assert other.status_code == 403 and "cross-site" in other.json()["error"]
    # other files keep the sandboxing policy
    assert "sandbox" in client.get(job["results"][0]["image"]).headers["content-security-policy"]
    assert "sandbox" in client.get(f"/api/jobs/{job['id']}/files/manifest.jsonl").headers["content-security-policy"]


def test_report_images_load_in_chromium(make_app, tmp_path):
    """The real thing: Chromium opens report.html on a live server, and every image in it has loaded."""
    import httpx
    from test_web_browser import ARGS, ARTIFACTS, CHROMIUM, VIEW, _browser_or_fail, _serve

    _browser_or_fail()
    from playwright.sync_api import sync_playwright

    with _serve(make_app()) as base, httpx.Client(base_url=base) as http:
        files = [("references", ("vase.png", png_bytes(1), "image/png"))]
        job_id = http.post("/api/jobs", files=files, data={"recipe": "webtoy"}).json()["id"]
        _until(lambda: http.get(f"/api/jobs/{job_id}").json()["state"] == "done", "the job done")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport=VIEW)
                refused = []
                page.on("response", lambda r: refused.append(r.url) if r.status >= 400 else None)
                page.goto(f"{base}/api/jobs/{job_id}/files/report.html", wait_until="load")
                page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=10_000)
                loaded = page.evaluate("() => [...document.images].map(i => i.naturalWidth > 0)")
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "web-report.png"), full_page=True)
            finally:
                browser.close()
    assert loaded and all(loaded) and refused == [], (loaded, refused)


# --- 2. one Content-Disposition per download -------------------------------------------------------------------

def test_every_download_has_exactly_one_content_disposition(client):
    job = wait_for(client, submit(client).json()["id"])
    base = f"/api/jobs/{job['id']}"
    ids = ",".join(r["id"] for r in job["results"][:2])
    for path, count in ((f"{base}/results.zip", 1), (f"{base}/results.zip?ids={ids}", 1),
                        (f"{base}/files/manifest.jsonl", 1), (f"{base}/files/recipe.yaml", 1),
                        (f"{base}/files/report.html", 0), (job["results"][0]["image"], 0)):
        r = client.get(path)
        assert r.status_code == 200, path
        assert len(r.headers.get_list("content-disposition")) == count, (path, r.headers.get_list("content-disposition"))
    r = client.get(f"{base}/results.zip")
    assert r.headers["content-disposition"] == f'attachment; filename="{job["id"]}-results.zip"'


def test_gradio_file_answers_keep_one_content_disposition():
    """Gradio names a download in its own Content-Disposition; the file guard adds no second one."""
    import asyncio

    from ecomforge.web.files import _with_file_headers

    for given, expect in (([(b"content-disposition", b'attachment; filename="j1-all.zip"')],
                           [b'attachment; filename="j1-all.zip"']),
                          ([(b"content-disposition", b"inline")], [b"attachment"]), ([], [b"attachment"])):
        sent = []

        async def send(message, sent=sent):
            sent.append(message)

        start = {"type": "http.response.start", "status": 200,
                 "headers": [(b"content-type", b"application/zip"), *given]}
        asyncio.run(_with_file_headers(send, {"headers": []})(start))
        assert [v for k, v in sent[0]["headers"] if k.lower() == b"content-disposition"] == expect


# --- 3. scoring shows as it happens ----------------------------------------------------------------------------

def test_progress_says_scoring_while_the_scorer_works(client, gate):
    from ecomforge.web.results import status_html

    job_id = submit(client).json()["id"]
    assert gate.entered.wait(60), "the scorer was never called"
    scoring = _until(lambda: (j := client.get(f"/api/jobs/{job_id}").json())["progress"].get("stage") == "score"
                     and j, "progress at the score step")
    assert gate.blocked()  # seen while the scorer is still inside its call
    p = scoring["progress"]
    assert p["total"] == 4 and p["done"] == 0 and p["fraction"] < 1 and p["eta_s"] is not None and p["eta_s"] > 0
    assert "score 0/4" in status_html(scoring) and "ETA 0 s" not in status_html(scoring)
    # the events stream says it too, while the scorer is still held
    seen = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as resp:
        for line in resp.iter_lines():
            if line.startswith("data: ") and "progress" in (data := json.loads(line[6:])):
                seen.append((data["progress"].get("stage"), gate.blocked()))
                gate.released.set()
            if line.startswith("event: end"):
                break
    assert seen[0] == ("score", True)
    assert wait_for(client, job_id)["state"] == "done"


def test_the_overall_fraction_counts_an_ended_step_once():
    """At the end of generation the job is not done: scoring and filtering are still to come (no 100 %, no ETA 0)."""
    from ecomforge.web.progress import JobObserver

    seen = []
    obs = JobObserver(__import__("pathlib").Path("/tmp/x"), threading.Event(), lambda p, persist: seen.append(p))
    run = SimpleNamespace(dir="/tmp/x/run", products=["p"], resumed=False)
    obs.on_run_start(run)
    for step, total in (("acquire", 1), ("mask", 1), ("generate", 4)):
        obs.on_step_start(run, step, "p", total)
        obs.on_step_advance(run, step, "p", total)
        obs.on_step_end(run, step, "p", 0.1)
    assert seen[-1]["stage"] == "generate" and seen[-1]["fraction"] < 0.9 and seen[-1]["eta_s"] > 0


# --- 4. and 6. a stopped job's images, and the counts -----------------------------------------------------------

def test_a_cancelled_jobs_images_can_be_fetched_and_downloaded(client, tmp_path):
    from ecomforge.web.results import job_label

    job_id = submit(client, overrides=SLOW).json()["id"]
    job = _cancel_after(client, job_id, 2, tmp_path)
    run_dir = tmp_path / "runs" / job_id / job["run_dir"]
    on_disk = _pngs(run_dir)
    assert 2 <= len(on_disk) < 6
    results = job["results"] if "results" in job else client.get(f"/api/jobs/{job_id}").json()["results"]
    assert {r["id"] for r in results} == on_disk and all(r["scored"] is False for r in results)
    assert all(r["seed"] is not None for r in results)
    for r in results:
        got = client.get(r["image"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    z = zipfile.ZipFile(io.BytesIO(client.get(f"/api/jobs/{job_id}/results.zip").content))
    assert {n.rsplit("/", 1)[-1][:-4] for n in z.namelist() if n.endswith(".png")} == on_disk
    lines = [json.loads(x) for x in z.read("manifest.jsonl").decode().splitlines()]
    assert {x["id"] for x in lines} == on_disk and all(x["scored"] is False for x in lines)
    # the UI's Download all: the same images
    act = ui_actions(client, tmp_path)
    ui_zip = zipfile.ZipFile(act.make_zip(job_id, None))
    assert {n.rsplit("/", 1)[-1][:-4] for n in ui_zip.namelist() if n.endswith(".png")} == on_disk
    # 6: the counts are what is on disk
    assert job["progress"]["candidates"] == len(on_disk)
    assert f"{len(on_disk)} candidates" in job_label(client.app.state.manager.get(job_id))


def test_a_cancel_at_a_candidate_counts_what_was_written():
    """The job's observer counts a candidate after the run store has written it: a cancel raised at that
    candidate stops the hook chain, and the count must still be what the folder holds."""
    from ecomforge.hookspecs import hookimpl
    from ecomforge.run.hooks import RunHooks
    from ecomforge.web.progress import JobCancelled, JobObserver

    class Store:
        hook_errors = "raise"

        def __init__(self) -> None:
            self.written: list[str] = []

        @hookimpl
        def on_candidate(self, run, record, image) -> None:
            self.written.append(record["id"])

    stop = threading.Event()
    store, obs = Store(), JobObserver(__import__("pathlib").Path("/tmp/x"), stop, lambda p, persist: None)
    run = SimpleNamespace(dir="/tmp/x/run", products=["p"], resumed=False)
    hooks = RunHooks(None, [store, obs])  # the runner's order: the store first, observers after
    hooks.on_candidate(run=run, record={"id": "a" * 16}, image=None)
    stop.set()
    with pytest.raises(JobCancelled):
        hooks.on_candidate(run=run, record={"id": "b" * 16}, image=None)
    assert store.written == ["a" * 16, "b" * 16] and obs.state["candidates"] == 2


def test_after_a_resume_the_counts_cover_the_whole_run_folder(client, tmp_path, gate):
    from ecomforge.web.results import job_label, status_html

    gate.released.set()  # the first session scores freely (it is cancelled before it gets there)
    job_id = submit(client, overrides=SLOW).json()["id"]
    job = _cancel_after(client, job_id, 2, tmp_path)
    before = _pngs(tmp_path / "runs" / job_id / job["run_dir"])
    assert 2 <= len(before) < 6
    gate.released.clear()
    gate.entered.clear()
    assert client.post(f"/api/jobs/{job_id}/resume").status_code == 202
    assert gate.entered.wait(60), "the scorer was never called"
    p = _until(lambda: (j := client.get(f"/api/jobs/{job_id}").json()["progress"]).get("stage") == "score" and j,
               "the resumed job scoring")
    assert p["candidates"] == 6  # the run folder's: those from before the cancel and those made now
    gate.released.set()
    done = wait_for(client, job_id, timeout=60)
    assert done["state"] == "done" and len(done["results"]) == 6
    assert done["progress"]["candidates"] == done["summary"]["total_candidates"] == 6
    assert "6 candidates" in job_label(client.app.state.manager.get(job_id))
    assert "6 candidates, " in status_html(done)


# --- 5. messages in toasts are escaped; user errors log one line ----------------------------------------------

def test_a_toast_shows_a_message_with_angle_brackets_whole_and_logs_one_line(client, tmp_path, caplog):
    import logging

    act = ui_actions(client, tmp_path)
    err = act.error("SAM vit_b weights not found at <models>/sam_vit_b.pth: pull them first")
    assert err.message == "SAM vit_b weights not found at &lt;models&gt;/sam_vit_b.pth: pull them first"
    assert html.unescape(err.message).endswith("<models>/sam_vit_b.pth: pull them first")
    assert err.print_exception is False  # an input error, not the server's: no traceback in the log
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ecomforge.web"):
        with pytest.raises(Exception) as raised:
            act.submit(None, "", "", "webtoy", "webtoy", None, "", [], None, "toy", "{}", 1, 0, 0)
    assert "Upload at least one reference photo." in raised.value.message
    assert [r.getMessage() for r in caplog.records] == ["ui: Upload at least one reference photo."]
    assert all(r.exc_info is None for r in caplog.records)


# --- 7. a failure names the user's photo and offers Resume only where it helps ----------------------------------

def test_a_failed_job_names_the_uploaded_photo_and_does_not_offer_resume(client):
    from ecomforge.web.results import status_html

    flat = io.BytesIO()
    Image.new("RGB", (96, 72), (128, 128, 128)).save(flat, "PNG")  # no product to find
    r = client.post("/api/jobs", files=[("references", ("../../my <vase>.png", flat.getvalue(), "image/png"))],
                    data={"recipe": "webtoy"})
    job = wait_for(client, r.json()["id"])
    assert job["state"] == "failed"
    assert "photo 1 (my <vase>.png)" in job["error"] and "ref-01" not in job["error"] and "/" not in job["error"]
    shown = status_html(job)
    assert "photo 1 (my &lt;vase&gt;.png)" in shown and "Resume" not in shown
    cancelled = {**job, "state": "cancelled", "error": "cancelled (resumable)"}
    assert "Resume finishes it" in status_html(cancelled)


# --- 8. refused uploads are named at once ------------------------------------------------------------------------

def test_refused_uploads_are_named_when_they_are_uploaded(client, tmp_path):
    good, gif, huge, junk = (tmp_path / n for n in ("02.png", "vase.gif", "huge.png", "notes.png"))
    good.write_bytes(png_bytes(1))
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    Image.new("L", (2100, 4)).save(huge, "PNG")  # over the test server's 2000 px a side
    junk.write_bytes(b"not an image at all")
    thumbs, note = ui_actions(client, tmp_path).upload_view([str(p) for p in (good, gif, huge, junk)])
    assert [name for _, name in thumbs] == ["02.png"]
    assert "vase.gif: GIF images are not accepted" in note and "huge.png: 2100x4 pixels is over the limit" in note
    assert "notes.png: not an image" in note and str(tmp_path) not in note
    assert ui_actions(client, tmp_path).upload_view([str(good)])[1] == ""


# --- 9. /docs works offline --------------------------------------------------------------------------------------

def test_api_docs_need_no_cdn(client):
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<script" not in r.text and "cdn." not in r.text and "http" not in r.text.replace("/openapi.json", "")
    assert "/api/jobs/{job_id}/results.zip" in r.text and "references" in r.text and "/openapi.json" in r.text
    assert _directives(r.headers["content-security-policy"])["default-src"] == ["'none'"]
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200


# --- 10. the small things ----------------------------------------------------------------------------------------

def test_counts_are_plural_only_when_more_than_one():
    from ecomforge.web.results import status_html

    job = {"id": "j0123456789abcdef", "state": "done", "summary": {"total_candidates": 1, "total_kept": 1}}
    assert "1 candidate, 1 kept" in status_html(job)
    running = {"id": "j0123456789abcdef", "state": "running",
               "progress": {"stage": "generate", "done": 1, "total": 4, "candidates": 1}}
    assert "1 candidate so far" in status_html(running)


def test_job_list_says_how_many_jobs_there_are(client, tmp_path):
    act = ui_actions(client, tmp_path)
    assert act.job_list(None)["info"] == "No jobs yet: Run starts one."
    wait_for(client, submit(client).json()["id"])
    update = act.job_list(None)
    assert update["info"] == "1 job on this server: open the list to pick one" and len(update["choices"]) == 1


def test_preset_descriptions_show_code_not_backticks():
    from ecomforge.web.ui import inline_markdown

    assert inline_markdown("Weights: `ecomforge models pull <id>` (2 GB)") == \
        "Weights: <code>ecomforge models pull &lt;id&gt;</code> (2 GB)"
    assert inline_markdown("an odd ` one") == "an odd ` one"


def test_run_this_job_again_keeps_the_jobs_preset_name_and_photo_names(client, tmp_path):
    from ecomforge.web.ui_actions import rerun_job

    first = wait_for(client, client.post("/api/jobs", files=[("references", ("vase.png", png_bytes(1), "image/png"))],
                                         data={"recipe": "webtoy"}).json()["id"])
    config = client.app.state.config
    again = rerun_job(client.app.state.manager, config.recipes, config.limits, first["id"])
    assert again.recipe == "webtoy" and again.request["names"] == ["vase.png"]
    one = client.post(f"/api/jobs/{first['id']}/candidates/{first['results'][0]['id']}/rerun").json()
    assert one["recipe"] == "webtoy"
    wait_for(client, again.id)
    wait_for(client, one["id"])
