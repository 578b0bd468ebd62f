"""One regression test per attack of issue 13, through HTTP and, where it applies, the Gradio API."""
from __future__ import annotations

import io
import json
import os
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from webhelpers import COMPOSITE, png_bytes, submit, wait_for


def _photo(value: int = 200, size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def secret(tmp_path):
    """A server image no request may read (pure red, so a leak shows in the candidates' pixels)."""
    d = tmp_path / "secret"
    d.mkdir()
    Image.fromarray(np.full((48, 64, 3), (255, 0, 0), np.uint8)).save(d / "secret.png")
    (d / "notes.txt").write_text("not an image")
    return d / "secret.png"


def _refused(r, status=403, where=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and "\n" not in body["error"]
    if where:
        assert body["error"].startswith(where), body["error"]
    return body["error"]


def _no_jobs(client, tmp_path):
    assert client.get("/api/jobs").json()["jobs"] == []
    assert [p for p in (tmp_path / "runs").iterdir() if p.is_dir()] == []


# --- path-valued settings named by a request ----------------------------------------------------------

@pytest.mark.parametrize("overrides, where", [
    (lambda s: {"generate.config.background": str(s)}, "generate.config.background"),
    (lambda s: {"generate.sweep": {"background": ["#ffffff", str(s)]}}, "generate.sweep.background.1"),
    (lambda s: {"mask": {"plugin": "upload", "config": {"path": str(s)}}}, "mask.config.path"),
    (lambda s: {"mask": {"plugin": "upload", "config": {"path": str(s.parent / "{stem}.png")}}}, "mask.config.path"),
    (lambda s: {"mask": {"plugin": "upload", "config": {"path": "secret.png", "base_dir": str(s.parent)}}},
     "mask.config"),
    (lambda s: {"generate.config.background": "../../secret/secret.png"}, "generate.config.background"),
    # The upload masker's default path is relative: it would be looked up in the server's working folder.
    (lambda s: {"mask": {"plugin": "upload", "config": {}}}, "mask.config.path"),
    (lambda s: {"generate.config.background": f"file://{s}"}, "generate.config.background"),
    (lambda s: {"generate.config.background": "http://169.254.169.254/latest/x.png"}, "generate.config.background"),
])
def test_overrides_may_not_name_a_server_file(app_client, tmp_path, secret, overrides, where):
    c = app_client()
    error = _refused(submit(c, recipe="webcomposite", overrides=overrides(secret)), where=where)
    assert "may" in error or "URL" in error
    _no_jobs(c, tmp_path)


def test_an_uploaded_recipe_may_not_name_a_server_file(app_client, tmp_path, secret):
    c = app_client()
    recipe = COMPOSITE.replace('background: "#ffffff"', f'background: "{secret}"').encode()
    files = [("references", ("a.png", png_bytes(1), "image/png")), ("recipe", ("r.yaml", recipe, "text/yaml"))]
    _refused(c.post("/api/jobs", files=files), where="generate.config.background")
    _no_jobs(c, tmp_path)


def test_a_refusal_does_not_tell_a_missing_file_from_a_non_image(app_client, secret):
    c = app_client()
    messages = set()
    folder = secret.parent / "album.png"  # a folder (named like a file: the config's own check wants an extension)
    folder.mkdir()
    for target in (secret, secret.parent / "notes.txt", secret.parent / "missing.png", folder):
        error = _refused(submit(c, recipe="webcomposite", overrides={"generate.config.background": str(target)}))
        messages.add(error.replace(repr(str(target)), "<value>"))
    assert len(messages) == 1, messages
    assert "not an image" not in messages.pop()


def test_the_ui_sweep_box_goes_through_the_same_check(app_client, secret):
    """The UI builds overrides from its sweep box and calls submit_job, the API's own function."""
    from ecomforge.web.submit import submit_job
    from ecomforge.web.trust import PathRefused

    c = app_client()
    manager = c.app.state.manager
    config = c.app.state.config
    with pytest.raises(PathRefused, match="generate.sweep.background"):
        submit_job(manager, config.recipes, config.limits, references=[png_bytes(1)], preset="webcomposite",
                   overrides={"generate.sweep": json.loads(json.dumps({"background": [str(secret)]}))})


def test_models_come_only_from_presets_and_the_allow_list(app_client, tmp_path):
    from ecomforge.web.trust import PathPolicy

    model = tmp_path / "models" / "tiny-sd"
    model.mkdir(parents=True)
    c = app_client()
    for over in ({"generate.plugin": "sd-inpaint", "generate.config": {"model": str(model)}},
                 {"generate.plugin": "sd-inpaint", "generate.config": {"model": "someone/else"}},
                 {"generate.plugin": "sd-inpaint", "generate.config": {},
                  "generate.sweep": {"loras": [[{"path": str(tmp_path / "secret.safetensors")}]]}},
                 {"score.0.plugin": "clip-image", "score.0.config": {"model": str(model)}}):
        error = _refused(submit(c, recipe="webcomposite", overrides=over))
        assert "model" in error
    # The operator's allow-list opens exactly that folder; the plugins' own defaults need no listing.
    c = app_client(policy=PathPolicy(models=(str(model.parent),)))
    r = submit(c, recipe="webcomposite",
               overrides={"generate.plugin": "sd-inpaint", "generate.config": {"model": str(model / "unet")}})
    assert r.status_code == 202, r.text
    c.post(f"/api/jobs/{r.json()['id']}/cancel")
    r = submit(c, recipe="webcomposite", overrides={"generate.plugin": "sd-inpaint", "generate.config": {}})
    assert r.status_code == 202, r.text


def test_presets_folder_files_and_preset_values_are_allowed(app_client, recipes_dir, tmp_path):
    Image.fromarray(np.full((48, 64, 3), (0, 0, 255), np.uint8)).save(recipes_dir / "blue.png")
    operator_photo = tmp_path / "studio" / "green.png"
    operator_photo.parent.mkdir()
    Image.fromarray(np.full((48, 64, 3), (0, 255, 0), np.uint8)).save(operator_photo)
    (recipes_dir / "green.yaml").write_text(COMPOSITE.replace("name: webcomposite", "name: green").replace(
        '"#ffffff"', f'"{operator_photo}"'))
    c = app_client()
    job = submit(c, refs=[png_bytes(1)], recipe="webcomposite",
                 overrides={"generate.config.background": str(recipes_dir / "blue.png")})
    assert job.status_code == 202, job.text
    done = wait_for(c, job.json()["id"])
    assert done["state"] == "done", done
    corner = np.asarray(Image.open(io.BytesIO(c.get(done["results"][0]["image"]).content)))[0, 0]
    assert corner[0] < 8 and corner[1] < 8 and corner[2] > 240  # the operator's blue photo, not a colour
    green = wait_for(c, submit(c, recipe="green").json()["id"])
    assert green["state"] == "done", green
    # A re-run of a candidate keeps its preset's trust (the preset named that photo).
    again = c.post(f"/api/jobs/{green['id']}/candidates/{green['results'][0]['id']}/rerun")
    assert again.status_code == 202, again.text
    assert wait_for(c, again.json()["id"])["state"] == "done"


def test_a_huge_background_file_is_refused_before_it_is_read(app_client, recipes_dir, tmp_path):
    big = recipes_dir / "huge.png"
    with open(big, "wb") as f:  # sparse: 1 GiB on paper, nothing on disk
        f.write(png_bytes(1))
        f.truncate(1 << 30)
    c = app_client()
    error = _refused(submit(c, recipe="webcomposite", overrides={"generate.config.background": str(big)}), 413)
    assert "over the limit" in error
    from ecomforge.errors import InputError
    from ecomforge_classic.backgrounds import render

    with pytest.raises(InputError, match="over"):
        render(str(big), 32, 32)  # the CLI path checks the size before reading too


def test_every_first_party_path_setting_is_declared():
    """The typed field kinds cover every path-like setting of every installed first-party stage."""
    from ecomforge.pathspec import path_fields
    from ecomforge.plugins import get_registry

    declared = {(p.kind, p.name): {loc for loc, _ in path_fields(p.cls.Config)} for p in get_registry().all()}
    for kind_name, fields in {("generator", "composite"): {"background"}, ("masker", "upload"): {"path", "base_dir"},
                              ("generator", "sd-inpaint"): {"model", "base_config", "loras[].path", "ip_adapter"},
                              ("masker", "sam"): {"model", "mask_path", "base_dir"},
                              ("masker", "sam-clip"): {"model", "clip_model"}, ("masker", "clipseg"): {"model"},
                              ("scorer", "clip-image"): {"model"}, ("scorer", "dino"): {"model"},
                              ("trainer", "lora"): {"base_model"}}.items():
        if kind_name in declared:
            assert fields <= declared[kind_name], (kind_name, declared[kind_name])
    for (kind, name), fields in declared.items():
        model = get_registry().get(kind, name).cls.Config
        for fname, info in model.model_fields.items():
            if any(w in fname for w in ("path", "model", "dir", "file", "checkpoint", "background", "adapter")):
                if info.annotation in (str, str | None):
                    assert fname in fields, f"{kind} {name}: {fname} names a path but is a plain str"


# --- Gradio ---------------------------------------------------------------------------------------------

@pytest.fixture
def ui_client(app_client, tmp_path):
    # A runs path with a capital letter: Gradio lower-cases paths before its own block-list check.
    return app_client(ui=True, runs=tmp_path / "Runs")


def _join(c, path: str):
    body = {"data": [[{"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "x.png"}]],
            "fn_index": 0, "session_hash": "attacker1", "event_data": None, "trigger_id": None}
    return c.post("/gradio_api/queue/join", json=body)


def test_gradio_file_data_inputs_must_be_uploads(ui_client, secret):
    error = _refused(_join(ui_client, str(secret)))
    assert "uploaded" in error and str(secret) not in error
    assert "URL" in _refused(_join(ui_client, "http://169.254.169.254/latest/meta-data"))
    # Gradio's own check is on as well (mounted apps are otherwise never "launched").
    from gradio import processing_utils
    from gradio.context import LocalContext
    from gradio.exceptions import InvalidPathError

    blocks = ui_client.app.state.blocks
    assert blocks.has_launched
    token = LocalContext.blocks.set(blocks)
    try:
        with pytest.raises(InvalidPathError):
            processing_utils._check_allowed(str(secret), True)
    finally:
        LocalContext.blocks.reset(token)


def test_gradio_file_route_serves_nothing_of_the_job_store(ui_client, tmp_path):
    c = ui_client
    job = wait_for(c, submit(c).json()["id"])
    runs = tmp_path / "Runs"
    jdir = runs / job["id"]
    db_fd = next(int(fd) for fd in os.listdir("/proc/self/fd")
                 if os.path.realpath(f"/proc/self/fd/{fd}") == str(runs / "jobs.sqlite3"))
    targets = [jdir / "job.yaml", jdir / "uploads" / "ref-01.png", runs / "jobs.sqlite3",
               f"/proc/self/fd/{db_fd}", str(runs / "jobs.sqlite3").lower(), str(runs / "JOBS.SQLITE3"),
               jdir / job["run_dir"] / "report.html", jdir / job["run_dir"] / "manifest.jsonl",
               "/etc/passwd", "http://example.com/x.png", "//example.com/x.png"]
    for target in targets:
        for prefix in ("/gradio_api/file=", "/gradio_api/file/", "/file="):
            r = c.get(f"{prefix}{target}")
            assert r.status_code == 404, (target, r.status_code)
            assert b"SQLite" not in r.content and b"generate" not in r.content
    for closed in ("/gradio_api/run-history/records", "/gradio_api/proxy=http://127.0.0.1:1/x.png"):
        assert c.get(closed).status_code == 404, closed  # every user's runs; a reverse proxy
    # What Gradio itself stores (uploads, the gallery's copies) is served, with the file headers.
    from gradio.utils import get_upload_folder

    folder = os.path.join(get_upload_folder(), "ecomforge-test")
    os.makedirs(folder, exist_ok=True)
    page = os.path.join(folder, "x.html")
    with open(page, "w") as f:
        f.write("<script>alert(1)</script>")
    r = c.get(f"/gradio_api/file={page}")
    assert r.status_code == 200
    assert "sandbox" in r.headers["content-security-policy"] and r.headers["x-content-type-options"] == "nosniff"


def test_every_file_route_carries_the_file_headers(app_client):
    c = app_client()
    job = wait_for(c, submit(c).json()["id"])
    base = f"/api/jobs/{job['id']}/files/"
    for path, attachment in (("report.html", False), ("manifest.jsonl", True), ("recipe.yaml", True)):
        r = c.get(base + path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        # the report loads its own images, so it is not sandboxed; like every file, it runs no script
        assert ("sandbox" in csp) != (path == "report.html") and "default-src 'none'" in csp and "script-src" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert ("attachment" in r.headers.get("content-disposition", "")) == attachment, path
    r = c.get(job["results"][0]["image"])
    assert r.headers["content-type"] == "image/png" and r.headers["x-content-type-options"] == "nosniff"
    r = c.get(f"/api/jobs/{job['id']}/results.zip")
    assert r.headers["x-content-type-options"] == "nosniff" and "attachment" in r.headers["content-disposition"]


# --- Origin, Host, CORS ---------------------------------------------------------------------------------

def test_cross_site_requests_are_refused_on_loopback_without_a_token(app_client, tmp_path):
    c = app_client()
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": "http://testserver.evil.example"},
                    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}):
        assert "cross-site" in _refused(submit(c, headers=headers))
        _refused(c.get("/api/jobs", headers=headers))
    _no_jobs(c, tmp_path)
    assert submit(c, headers={"Origin": "http://testserver"}).status_code == 202  # the UI's own origin
    assert c.get("/api/jobs", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}).status_code == 200


def test_dns_rebinding_host_is_refused(app_client):
    c = app_client()
    assert "Host" in _refused(c.get("/api/jobs", headers={"Host": "evil.example"}))
    _refused(c.get("/api/jobs", headers={"Host": "127.0.0.1.evil.example:7860"}))
    for host in ("127.0.0.1:7860", "localhost", "[::1]:7860", "LOCALHOST:80"):
        assert c.get("/api/jobs", headers={"Host": host}).status_code == 200, host


def test_cors_is_closed_by_default_and_opens_only_for_allowed_origins(app_client):
    c = app_client(ui=True)
    pre = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    r = c.options("/api/jobs", headers=pre)
    assert r.status_code == 403 and not any(k.lower().startswith("access-control") for k in r.headers)
    r = c.get("/config", headers={"Origin": "http://testserver"})
    assert not any(k.lower().startswith("access-control") for k in r.headers)
    c = app_client(allowed_origins=("https://shop.example",))
    r = c.options("/api/jobs", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "https://shop.example"
    assert c.get("/api/jobs", headers={"Origin": "https://shop.example"}).status_code == 200


# --- limits before work and before decoding ---------------------------------------------------------------

@pytest.mark.parametrize("overrides, words", [
    ({"generate.seeds": {"count": 100000}}, "seeds"),
    ({"generate.sweep": {"level": list(range(1, 256)), "delay": [0.0] * 4}}, "sweep points"),
    ({"generate.sweep": {"level": list(range(1, 201))}, "generate.seeds": {"count": 6}}, "candidates"),
])
def test_job_size_limits_are_checked_before_any_work(app_client, tmp_path, monkeypatch, overrides, words):
    import math

    import ecomforge.recipe.load as load

    build = load._sweep_grid

    def guarded(sweep):
        assert math.prod(len(v) for v in sweep.values()) <= 2, "the job's grid was built"
        return build(sweep)

    monkeypatch.setattr(load, "_sweep_grid", guarded)
    c = app_client()
    assert words in _refused(submit(c, overrides=overrides), 413)
    _no_jobs(c, tmp_path)


def test_yaml_alias_bomb_is_refused_before_it_expands(app_client, tmp_path):
    lines = ["name: bomb", "a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{n}: &{n} [{', '.join(['*' + p] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]
    bomb = ("\n".join(lines) + "\n").encode()
    assert len(bomb) < 600  # the 531 bytes: 9^9 values once expanded
    c = app_client()
    files = [("references", ("a.png", png_bytes(1), "image/png")), ("recipe", ("r.yaml", bomb, "text/yaml"))]
    assert "aliases" in _refused(c.post("/api/jobs", files=files), 413)
    from ecomforge.recipe.safeyaml import YAMLBudgetError, safe_load

    with pytest.raises(YAMLBudgetError, match="expands"):  # few aliases, but they multiply
        safe_load("\n".join(lines[:4]) + "\n", max_aliases=100, max_nodes=500)
    assert safe_load("base: &b {steps: 20}\nother: *b\n") == {"base": {"steps": 20}, "other": {"steps": 20}}


def test_pixels_are_counted_from_headers_before_decoding(app_client, monkeypatch):
    import ecomforge.imaging.decode as decode

    c = app_client()
    monkeypatch.setattr(decode, "decode_image", lambda *a, **k: pytest.fail("decoded before the size check"))
    big = io.BytesIO()
    Image.new("L", (1000, 1000)).save(big, format="PNG")  # 1 MP of zeros: a few kB
    assert "pixels" in _refused(submit(c, refs=[big.getvalue()]), 413)
    # Three images each under the per-image limit (400k) add up to more than the request's (800k).
    assert "in this request" in _refused(submit(c, refs=[_photo(size=(600, 480))] * 3), 413)


def test_a_full_queue_answers_429_before_decoding(app_client, monkeypatch):
    c = app_client(queue_size=1)
    slow = {"generate.config.delay": 0.5, "generate.seeds": [1, 2, 3, 4]}
    first = submit(c, overrides=slow).json()["id"]
    wait_for(c, first, states=("running",))
    second = submit(c, overrides=slow)
    assert second.status_code == 202
    import ecomforge.web.uploads as uploads

    monkeypatch.setattr(uploads, "decode_upload", lambda *a, **k: pytest.fail("decoded a refused upload"))
    assert "queue is full" in _refused(submit(c, refs=[b"not even an image"]), 429)
    for job_id in (first, second.json()["id"]):
        c.post(f"/api/jobs/{job_id}/cancel")


def test_cancel_stops_a_running_job_at_its_next_candidate(app_client):
    c = app_client()
    job_id = submit(c, overrides={"generate.config.delay": 0.3, "generate.seeds": list(range(1, 21))}).json()["id"]
    while (c.get(f"/api/jobs/{job_id}").json()["progress"] or {}).get("candidates", 0) < 1:
        time.sleep(0.02)
    made = c.get(f"/api/jobs/{job_id}").json()["progress"]["candidates"]
    c.post(f"/api/jobs/{job_id}/cancel")
    job = wait_for(c, job_id, timeout=10)
    assert job["state"] == "cancelled" and job["resumable"]
    assert job["progress"]["candidates"] <= made + 1  # of 40: it stopped at the next one


def test_a_16_bit_png_upload_keeps_its_tones(app_client, tmp_path):
    ramp = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")  # a 16-bit greyscale PNG
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")
    c = app_client()
    job_id = submit(c, refs=[buf.getvalue()]).json()["id"]
    stored = np.asarray(Image.open(tmp_path / "runs" / job_id / "uploads" / "ref-01.png").convert("L"))
    assert np.abs(stored.astype(int) - np.round(ramp / 257.0).astype(int)).max() <= 1  # scaled, not clipped white
    c.post(f"/api/jobs/{job_id}/cancel")


def test_job_errors_do_not_show_server_folders(app_client, tmp_path):
    c = app_client()
    files = [("references", ("a.png", png_bytes(1), "image/png")), ("masks", ("m.png", _photo(value=0), "image/png"))]
    job = wait_for(c, c.post("/api/jobs", files=files, data={"recipe": "webtoy"}).json()["id"])
    # An odd-sized mask: the product fails (the job too when it was the only product).
    reasons = [f["reason"] for f in job["summary"].get("failed_products", [])] or [job["error"]]
    assert reasons and "the mask of photo 1 (a.png)" in reasons[0]  # the upload as the user named it
    assert str(tmp_path) not in json.dumps(job), reasons


def _gradio_run(c, blocks, values: dict[str, object]) -> list[dict]:
    """Click Run through the Gradio HTTP API (upload, queue/join, the SSE stream); the messages it sent back."""
    by_elem = {getattr(b, "elem_id", None): b for b in blocks.blocks.values()}
    run = by_elem["run"]
    fn = next(f for f in blocks.fns.values() if f.fn is not None and (run._id, "click") in f.targets)
    props = {comp["id"]: comp.get("props", {}).get("value") for comp in blocks.config["components"]}
    data = []
    for comp in fn.inputs:
        key = next((k for k in values if k in (getattr(comp, "elem_id", None), getattr(comp, "label", None))), None)
        data.append(values[key] if key is not None else props.get(comp._id))
    body = {"data": data, "fn_index": fn._id, "session_hash": "webattack01", "event_data": None,
            "trigger_id": run._id}
    joined = c.post("/gradio_api/queue/join", json=body)
    assert joined.status_code == 200, joined.text
    messages = []
    with c.stream("GET", "/gradio_api/queue/data", params={"session_hash": "webattack01"}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                messages.append(json.loads(line[5:]))
                if messages[-1].get("msg") == "process_completed":
                    break
    return messages


def test_the_ui_sweep_box_through_the_gradio_api(ui_client, tmp_path, secret):
    c = ui_client
    blocks = c.app.state.blocks
    uploaded = c.post("/gradio_api/upload", files=[("files", ("a.png", png_bytes(1), "image/png"))]).json()
    ref = {"path": uploaded[0], "meta": {"_type": "gradio.FileData"}, "orig_name": "a.png"}
    sweep = next(b.label for b in blocks.blocks.values() if str(getattr(b, "label", "")).startswith("Sweep"))
    done = _gradio_run(c, blocks, {"refs": [ref], "preset": "webcomposite",
                                   sweep: json.dumps({"background": [str(secret)]})})[-1]
    assert done["msg"] == "process_completed" and not done["success"], done
    assert "generate.sweep.background" in json.dumps(done)
    assert c.get("/api/jobs").json()["jobs"] == []


def test_the_model_allow_list_holds_ids_and_folders(tmp_path):
    from ecomforge.web.trust import PathPolicy

    (tmp_path / "models" / "sd").mkdir(parents=True)
    os.symlink("/etc", tmp_path / "models" / "escape")
    policy = PathPolicy(models=("org/tiny-sd", str(tmp_path / "models")))
    assert policy.model_allowed("org/tiny-sd") and policy.model_allowed(str(tmp_path / "models" / "sd"))
    for value in ("org/other", "org/tiny-sd/../x", str(tmp_path / "models" / ".." / "secret"),
                  str(tmp_path / "models" / "escape" / "passwd"), "models/sd", str(tmp_path / "modelsX")):
        assert not policy.model_allowed(value), value


@given(host=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.:-[]", max_size=30),
       origin=st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["http://localhost:7860", "null"])))
def test_origin_host_check_admits_only_its_own_names(host, origin):
    from ecomforge.web.security import OriginHostMiddleware, _hostname

    mw = OriginHostMiddleware(None, hosts={"127.0.0.1", "localhost", "::1"})
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin is not None else [])
    refusal = mw._refusal({"type": "http", "method": "POST", "scheme": "http", "headers": headers})
    if refusal is None:
        assert _hostname(host) in {"127.0.0.1", "localhost", "::1"}
        assert origin is None or origin.lower().rstrip("/") == f"http://{host.lower()}"


# --- found by the second attack pass ----------------------------------------------------------------------

@pytest.mark.parametrize("overrides, where", [
    ({"generate.config.size": [2000, 2000]}, "generate.config"),  # 4 MP canvas from a 3 kB upload (limit 400k)
    ({"generate.sweep": {"size": [[64, 64], [1000, 1000]]}}, "generate.config"),
    ({"generate.config.size": [600, 600], "generate.seeds": [1, 2, 3, 4, 5], "generate.batch_size": 5},
     "generate.batch_size"),  # each canvas under the limit, five at once over the batch budget (1.6 MP)
])
def test_the_canvas_a_job_asks_for_counts_against_the_pixel_limits(app_client, tmp_path, monkeypatch, overrides,
                                                                   where):
    import ecomforge.web.manager as manager_mod

    monkeypatch.setattr(manager_mod.JobManager, "submit", lambda *a, **k: pytest.fail("an over-limit job was queued"))
    c = app_client()
    error = _refused(submit(c, recipe="webcomposite", overrides=overrides), 413, where=where)
    assert "pixels" in error
    _no_jobs(c, tmp_path)


def test_a_canvas_within_the_limits_still_runs(app_client):
    c = app_client()
    job_id = submit(c, recipe="webcomposite", overrides={"generate.config.size": [96, 64],
                                                         "generate.seeds": [1, 2], "generate.batch_size": 2})
    assert job_id.status_code == 202, job_id.text
    job = wait_for(c, job_id.json()["id"])
    assert job["state"] == "done" and all(r["params"]["size"] == [96, 64] for r in job["results"])


def test_served_text_files_do_not_show_server_folders(app_client, tmp_path):
    """The run's recipe.yaml names its uploads; served, it names them relative to the job, as the API does."""
    c = app_client()
    job = wait_for(c, submit(c, recipe="webcomposite").json()["id"])
    run = tmp_path / "runs" / job["id"] / job["run_dir"]
    assert str(tmp_path) in (run / "recipe.yaml").read_text()  # on disk: the real paths (resume needs them)
    for name in ("recipe.yaml", "manifest.jsonl", "report.html"):
        r = c.get(f"/api/jobs/{job['id']}/files/{name}")
        assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
        assert str(tmp_path) not in r.text, name
    assert "uploads/ref-01.png" in c.get(f"/api/jobs/{job['id']}/files/recipe.yaml").text


def test_only_a_few_requests_decode_at_once(app_client, monkeypatch):
    """Twelve parallel 40-MP uploads took 5.7 GB: decoding and checking go through a couple of slots."""
    import threading

    import ecomforge.web.submit as submit_mod

    c = app_client(queue_size=20)
    manager, config = c.app.state.manager, c.app.state.config
    busy, peak, lock = [0], [0], threading.Lock()
    save = submit_mod.save_reference

    def counted(*a, **k):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.1)
        try:
            return save(*a, **k)
        finally:
            with lock:
                busy[0] -= 1

    monkeypatch.setattr(submit_mod, "save_reference", counted)
    jobs = []
    threads = [threading.Thread(target=lambda: jobs.append(submit_mod.submit_job(
        manager, config.recipes, config.limits, references=[png_bytes(1)], preset="webtoy"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(jobs) == 6 and peak[0] == 2
    for job in jobs:
        c.post(f"/api/jobs/{job.id}/cancel")


def test_a_request_that_waits_too_long_for_a_slot_gets_429(app_client, tmp_path):
    c = app_client()
    manager = c.app.state.manager
    manager.intake_wait = 0.05
    for _ in range(2):
        manager.intake.acquire()
    try:
        assert "busy" in _refused(submit(c), 429)
    finally:
        manager.intake.release()
        manager.intake.release()
    _no_jobs(c, tmp_path)
    assert submit(c).status_code == 202


@pytest.mark.parametrize("key, steps", [
    ("score", [{"plugin": "toy", "name": f"t{i}"} for i in range(17)]),  # 400 of them: 10 s a candidate
    ("filter", [{"plugin": "toy-top"}] * 17),
])
def test_a_job_may_not_multiply_its_work_with_many_scorers_or_filters(app_client, tmp_path, key, steps):
    c = app_client()
    assert f"{key}: 17 steps" in _refused(submit(c, overrides={key: steps}), 413)
    _no_jobs(c, tmp_path)
    assert submit(c, overrides={key: steps[:16]}).status_code == 202


def test_a_page_opened_with_the_token_in_its_url_drops_it(make_app):
    """?token= would stay in the address bar and the history: the page is loaded again without it."""
    from fastapi.testclient import TestClient

    token = "s3cret-token-123"
    with TestClient(make_app(token=token), follow_redirects=False) as c:
        r = c.get("/api/recipes", params={"token": token, "view": "a b"}, headers={"Accept": "text/html"})
        assert r.status_code == 303 and token not in r.headers["location"]
        assert r.headers["location"] == "/api/recipes?view=a+b"
        assert f"ecomforge_token={token}" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
        assert c.get(r.headers["location"]).status_code == 200  # with the cookie it just set
        c.cookies.clear()
        api = c.get("/api/recipes", params={"token": token})  # an API client's ?token= is answered as before
        assert api.status_code == 200
        c.cookies.clear()
        wrong = c.get("/api/recipes", params={"token": "wrong-token"}, headers={"Accept": "text/html"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers


def test_a_file_data_input_nested_past_the_walk_is_refused(tmp_path, secret):
    """The FileData walk stops at depth 50; a path hidden deeper must not pass unlooked-at."""
    from ecomforge.web.files import GradioFileGuard

    guard = GradioFileGuard(app=None, upload_folder=str(tmp_path / "gradio"))
    hidden = {"path": str(secret), "meta": {"_type": "gradio.FileData"}}
    for _ in range(60):
        hidden = [hidden]
    assert "nested too deeply" in guard._file_data_refusal(json.dumps({"data": [hidden]}).encode())
    shallow = {"data": [[[{"path": str(secret), "meta": {"_type": "gradio.FileData"}}]]], "fn_index": 1}
    assert "uploaded to this server" in guard._file_data_refusal(json.dumps(shallow).encode())
    assert guard._file_data_refusal(json.dumps({"data": [[[["a"]]], None], "fn_index": 1}).encode()) is None
