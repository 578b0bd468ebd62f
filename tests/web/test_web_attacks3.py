"""One regression test per finding of the third attack pass, through HTTP (and the UI's handlers where it applies)."""
from __future__ import annotations

import asyncio
import io
import json
import os
import re
import uuid
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from webhelpers import COMPOSITE, intake_taken, png_bytes, submit, wait_for
from webhelpers import no_jobs as _no_jobs
from webhelpers import refused as _refused
from webhelpers import ui_actions as _actions

TOKEN = "s3cret-token-123"


@pytest.fixture
def secret(tmp_path):
    """A server image no request may read (pure red)."""
    d = tmp_path / "secret"
    d.mkdir()
    Image.fromarray(np.full((72, 96, 3), (255, 0, 0), np.uint8)).save(d / "secret.png")
    return d / "secret.png"


# --- 1. mask path patterns: the documented placeholders only, filled by plain substitution, checked again --------

@pytest.mark.parametrize("masker", ["upload", "sam"])
def test_a_format_spec_in_a_mask_pattern_cannot_leave_the_presets(app_client, tmp_path, recipes_dir, secret, masker):
    # '{stem:.<2.0}' is '..' to str.format (the stem padded with dots, cut to two): the presets folder, then up.
    sneaky = f"{recipes_dir}/{{stem:.<2.0}}/secret/secret.png"
    key = {"upload": "path", "sam": "mask_path"}[masker]
    c = app_client()
    error = _refused(submit(c, recipe="webcomposite", overrides={"mask": {"plugin": masker, "config": {key: sneaky}}}),
                     400, f"mask.config.{key}")
    assert "placeholder" in error and str(tmp_path) not in error
    _no_jobs(c, tmp_path)


@pytest.mark.parametrize("placeholder", ["{stem!r}", "{stem.upper}", "{stem[0]}", "{0}", "{}", "{name:>9}", "{stem",
                                         "x}", "{nope}"])
def test_only_the_documented_placeholders_exactly(app_client, tmp_path, recipes_dir, placeholder):
    c = app_client()
    over = {"mask": {"plugin": "upload", "config": {"path": f"{recipes_dir}/{placeholder}.png"}}}
    assert "placeholder" in _refused(submit(c, recipe="webcomposite", overrides=over), 400, "mask.config.path")
    _no_jobs(c, tmp_path)


def test_the_filler_substitutes_plainly_and_refuses_values_that_leave_the_folder(tmp_path):
    from ecomforge.errors import InputError
    from ecomforge.imaging.maskfile import escape_pattern, fill_pattern, find_mask_file
    from ecomforge.types import Reference

    values = {"name": "00", "stem": "ref-01", "product": "vase"}
    assert fill_pattern("/m/{product}/{stem}-{name}.png", values) == "/m/vase/ref-01-00.png"
    assert fill_pattern("/m/{{stem}}.png", values) == "/m/{stem}.png"
    assert fill_pattern(escape_pattern("/runs/a{b}c") + "/{stem}.png", values) == "/runs/a{b}c/ref-01.png"
    for bad in ("../../etc", "a/b", "..", ".", "a\\b", "x\x00"):
        with pytest.raises(InputError, match="cannot be part of a file name"):
            fill_pattern("/m/{product}/x.png", {**values, "product": bad})
    (tmp_path / "masks").mkdir()
    ref = Reference(image=np.zeros((4, 4, 3), np.uint8), source="/up/...png", sha256="", product="p", name="00")
    with pytest.raises(InputError, match="cannot be part"):  # Path('...png').stem is '..'
        find_mask_file(f"{tmp_path}/masks/{{stem}}/{{stem}}/secret.png", ref, [])


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(["{stem}", "{name}", "{stem:.<2.0}", "{{", "}}", "..", ".", "x", "/", "{",
                                       "}", "{stem!s}", "{0}", "~", "secret"]), max_size=8),
       stem=st.sampled_from(["ref-01", "a.b", "x"]))
def test_what_the_web_check_passes_the_filler_fills_inside(tmp_path_factory, parts, stem):
    """One parser: a pattern the check lets through is, filled in at run time, inside the folder it checked."""
    from ecomforge.errors import InputError
    from ecomforge.imaging.maskfile import fill_pattern
    from ecomforge.web.trust import _inside

    root = tmp_path_factory.getbasetemp() / "presets-prop"
    root.mkdir(exist_ok=True)
    pattern = f"{root}/" + "".join(parts)
    if _inside(pattern, [root], pattern=True) is None:
        return
    try:
        filled = fill_pattern(pattern, {"stem": stem, "name": "00", "product": "p"})
    except InputError:
        return
    assert os.path.realpath(filled).startswith(str(root)), (pattern, filled)


def test_a_filled_mask_path_is_checked_again_when_the_job_runs(app_client, tmp_path, secret, monkeypatch):
    """Were the submit check ever fooled, the worker refuses the filled path, the same whether it exists or not."""
    import ecomforge.web.submit as submit_mod

    monkeypatch.setattr(submit_mod, "check_job_paths", lambda *a, **k: None)  # the submit-time check bypassed
    c = app_client()
    errors = []
    for target in (secret, secret.parent / "missing.png"):
        job = wait_for(c, submit(c, recipe="webcomposite",
                                 overrides={"mask": {"plugin": "upload", "config": {"path": str(target)}}}).json()["id"])
        text = json.dumps([job["error"], job["summary"]])  # (the request echoes its own overrides)
        assert job["results"] == [] and str(tmp_path) not in text
        reasons = [f["reason"] for f in job["summary"].get("failed_products", [])] or [job["error"]]
        assert "not a file this run may read" in reasons[0], reasons
        errors.append(reasons[0])
    assert errors[0] == errors[1]  # no existence oracle


def test_uploaded_masks_work_under_a_runs_folder_with_braces(app_client, tmp_path):
    """The uploads folder goes into the mask pattern escaped: a '{' in the server's folder is a folder name."""
    c = app_client(runs=tmp_path / "ru{n}s")
    photo = png_bytes(1)
    w, h = Image.open(io.BytesIO(photo)).size
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4:3 * h // 4, w // 4:3 * w // 4] = 255
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")
    files = [("references", ("a.png", photo, "image/png")), ("masks", ("m.png", buf.getvalue(), "image/png"))]
    job = wait_for(c, c.post("/api/jobs", files=files, data={"recipe": "webtoy"}).json()["id"])
    assert job["state"] == "done" and job["results"], job


# --- 2. an sd-inpaint canvas counts against the output-pixel limit ----------------------------------------------

@pytest.mark.parametrize("over", [
    {"generate.config.canvas": "8192x8192"},
    {"generate.config.canvas": "99:1"},  # around the 96x72 upload: 7128x72 (or 9504x96 turned) > 400k
    {"generate.config.canvas": "1:99"},
    {"generate.sweep": {"canvas": ["1:1", "99:1"]}},
])
def test_a_canvas_setting_counts_against_the_pixel_limit(app_client, tmp_path, over):
    c = app_client()
    r = submit(c, recipe="webcomposite", overrides={"generate.plugin": "sd-inpaint", "generate.config": {}, **over})
    assert "pixels" in _refused(r, 413)
    _no_jobs(c, tmp_path)


def test_a_canvas_within_the_limit_is_accepted(app_client):
    c = app_client()
    for canvas in ("1:1", "4:5", "512x512"):
        r = submit(c, recipe="webcomposite",
                   overrides={"generate.plugin": "sd-inpaint", "generate.config": {"canvas": canvas}})
        assert r.status_code == 202, r.text
        c.post(f"/api/jobs/{r.json()['id']}/cancel")


def test_canvas_pixels_follow_the_generator_layout():
    """The count is the generator's own canvas (ecomforge-diffusers lays the reference on it at scale 1)."""
    pytest.importorskip("ecomforge_diffusers")
    from ecomforge.web.submit import canvas_pixels
    from ecomforge_diffusers.canvas import canvas_size

    for spec in ("1:1", "4:5", "16:9", "99:1", "1:99", "1200x800"):
        for w, h in ((96, 72), (1000, 3000), (640, 640)):
            width, height = canvas_size(spec, w, h, 1.0)
            assert canvas_pixels(spec, [(w, h)]) >= width * height, (spec, w, h)


# --- 3. results.zip is streamed --------------------------------------------------------------------------------

def _asgi_get(app, path: str) -> tuple[int, dict, int]:
    """GET through the whole ASGI app, body chunks counted and dropped: (status, headers, body bytes)."""
    got = {"status": 0, "headers": {}, "size": 0}

    async def run():
        done = asyncio.Event()
        sent = False

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                got["status"] = message["status"]
                got["headers"] = {k.decode().lower(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body":
                got["size"] += len(message.get("body", b""))
                if not message.get("more_body"):
                    done.set()

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
                 "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"testserver")], "server": ("testserver", 80), "client": ("127.0.0.1", 5000)}
        await app(scope, receive, send)

    asyncio.run(run())
    return got["status"], got["headers"], got["size"]


def test_results_zip_is_streamed_with_bounded_memory(app_client, tmp_path):
    import tracemalloc

    c = app_client()
    job = wait_for(c, submit(c).json()["id"])
    run = tmp_path / "runs" / job["id"] / job["run_dir"]
    big = 6 * 1024 * 1024
    for rec in job["results"][:3]:  # three 6 MB candidates (random bytes: a zip cannot shrink them)
        (run / "candidates" / f"{rec['id']}.png").write_bytes(os.urandom(big))
    r = c.get(f"/api/jobs/{job['id']}/results.zip")
    assert r.status_code == 200 and "nosniff" in r.headers["x-content-type-options"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert "manifest.jsonl" in names and len(names) == len(job["results"]) + 1
        assert max(i.file_size for i in zf.infolist()) == big
    tracemalloc.start()
    try:
        status, headers, size = _asgi_get(c.app, f"/api/jobs/{job['id']}/results.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 200 and size > 3 * big
    assert "content-length" not in headers  # streamed, not built first
    assert peak < 6 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB zip"


# --- 4. UI thumbnails: the intake slot, and only the API's image types -----------------------------------------

@pytest.mark.parametrize("fmt", ["PCX", "SGI", "ICO", "PPM", "TGA"])
def test_upload_thumbnails_only_for_the_types_the_api_accepts(app_client, tmp_path, monkeypatch, fmt):
    c = app_client()
    act = _actions(c, tmp_path)
    odd = tmp_path / f"odd-{fmt}.png"  # named .png; its bytes are another format
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(odd, format=fmt)
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes(1))
    assert [name for _, name in act.upload_thumbs([str(odd), str(good)])] == ["good.png"]


def test_upload_thumbnails_take_an_intake_slot(app_client, tmp_path):
    import gradio as gr

    c = app_client()
    act = _actions(c, tmp_path)
    manager = c.app.state.manager
    photo = tmp_path / "p.png"
    photo.write_bytes(png_bytes(2))
    with intake_taken(manager), pytest.raises(gr.Error, match="busy"):
        act.upload_thumbs([str(photo)])
    assert len(act.upload_thumbs([str(photo)])) == 1


# --- 5. errors name no server path ----------------------------------------------------------------------------

ABSOLUTE = re.compile(r"(?<![\w.:/<>-])/(?:root|home|tmp|usr|etc|work|var)\b")


def test_job_errors_hide_the_model_cache_and_every_server_path(app_client, tmp_path, monkeypatch):
    cache = tmp_path / "model-cache"
    monkeypatch.setenv("ECOMFORGE_MODELS", str(cache))
    c = app_client()
    r = submit(c, recipe="webtoy", overrides={"mask": {"plugin": "sam", "config": {"model": "vit_b",
                                                                                    "points": [[10, 10]]}}})
    assert r.status_code == 202, r.text
    job = wait_for(c, r.json()["id"])
    reasons = [f["reason"] for f in job["summary"].get("failed_products", [])] + [job["error"] or ""]
    text = json.dumps(job)
    assert any("weights not found" in x for x in reasons), reasons
    assert str(tmp_path) not in text and str(cache) not in text and not ABSOLUTE.search(text), reasons
    assert any("<models>" in x for x in reasons), reasons


def test_ui_messages_hide_server_paths(app_client, tmp_path, monkeypatch):
    import gradio as gr

    cache = tmp_path / "model-cache"
    monkeypatch.setenv("ECOMFORGE_MODELS", str(cache))
    c = app_client()
    act = _actions(c, tmp_path)
    photo = tmp_path / "p.png"
    photo.write_bytes(png_bytes(2, (160, 120)))
    with pytest.raises(gr.Error) as caught:
        act.detect_mask([str(photo)], "sam", None, [(10.0, 10.0, 1)], None, "")
    message = str(caught.value.message)
    assert "weights not found" in message and str(tmp_path) not in message and not ABSOLUTE.search(message), message


def test_scrub_hides_any_absolute_path_but_keeps_urls_and_relative_names():
    from ecomforge.web.scrub import scrub_text

    folders = [("/srv/runs", "<runs>"), ("/srv/recipes", "<recipes>")]
    text = ("at /root/.cache/x/sam.pth, see https://example.com/a/b; '/srv/recipes/p.yaml' and "
            "/srv/runs/j1/x, /srv/runs2/y, uploads/ref-01.png, ~/models/z and 3/4")
    out = scrub_text(text, folders)
    assert "/root" not in out and "/srv" not in out and "~/models" not in out
    for kept in ("https://example.com/a/b", "'<recipes>/p.yaml'", "<runs>/j1/x", "uploads/ref-01.png", "3/4"):
        assert kept in out, out


# --- 6. a deeply nested uploaded recipe or overrides: 400, not 500 -----------------------------------------------

@pytest.mark.parametrize("recipe", [b"[" * 60000, b"a: " + b"{b: " * 3000 + b"1" + b"}" * 3000,
                                    b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 400))])
def test_a_deeply_nested_recipe_file_is_a_400(app_client, tmp_path, recipe):
    c = app_client()
    files = [("references", ("a.png", png_bytes(1), "image/png")), ("recipe", ("r.yaml", recipe, "text/yaml"))]
    assert "nested too deeply" in _refused(c.post("/api/jobs", files=files), 400)
    _no_jobs(c, tmp_path)


def test_deeply_nested_overrides_are_a_400(app_client, tmp_path):
    c = app_client()
    deep: object = 1
    for _ in range(900):  # under json's own recursion limit, over what the recipe code may recurse through
        deep = [deep]
    assert "nested too deeply" in _refused(submit(c, overrides={"generate.config.level": deep}), 400)
    _no_jobs(c, tmp_path)


# --- 7. Gradio's upload route: files per request and bytes, refused before anything is stored -------------------

def _stored(names) -> list[str]:
    from gradio.utils import get_upload_folder

    found = []
    for _, _, files in os.walk(get_upload_folder()):
        found += [f for f in files if f in names]
    return found


def test_gradio_uploads_are_bounded_before_they_are_stored(app_client):
    c = app_client(ui=True)  # max_files 3, max_file_bytes 200 kB
    tag = uuid.uuid4().hex[:8]
    names = [f"many-{tag}-{i}.png" for i in range(4)]
    r = c.post("/gradio_api/upload", files=[("files", (n, png_bytes(i), "image/png")) for i, n in enumerate(names)])
    assert "at most 3 files" in _refused(r, 413)
    assert _stored(names) == []
    r = c.post("/gradio_api/upload", files=[("files", (f"one-{tag}.png", png_bytes(1), "image/png"))],
               data={"filler": "x" * 2_000_000})  # one file, and a form far over what three files need
    assert "bytes" in _refused(r, 413)
    assert _stored([f"one-{tag}.png"]) == []
    ok = c.post("/gradio_api/upload", files=[("files", (n, png_bytes(i), "image/png")) for i, n in enumerate(names[:3])])
    assert ok.status_code == 200 and len(ok.json()) == 3
    assert sorted(_stored(names)) == sorted(names[:3])


def test_the_part_counter_sees_every_part_however_the_body_is_cut():
    from ecomforge.web.files import _PartCounter

    body = b"".join(b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n--XyZZ data\r\n" for _ in range(5))
    body += b"--XyZ--\r\n"
    for size in (1, 2, 3, 7, 64, len(body)):
        counter = _PartCounter(b"XyZ")
        for i in range(0, len(body), size):
            counter.feed(body[i:i + size])
        assert counter.finish() == 5, size  # '--XyZZ data' inside a part is data, as the parser reads it


# --- 8. Gradio's ranged file answers do not echo request headers ------------------------------------------------

def test_ranged_file_answers_do_not_echo_the_token(app_client):
    c = app_client(ui=True, token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    path = c.post("/gradio_api/upload", files=[("files", ("r.png", png_bytes(1), "image/png"))], headers=auth).json()[0]
    c.cookies.set("ecomforge_token", TOKEN)
    r = c.get(f"/gradio_api/file={path}", headers={**auth, "Range": "bytes=0-3", "X-Probe": "echo-me"})
    assert r.status_code == 206 and r.content == png_bytes(1)[:4]
    for name, value in r.headers.items():
        assert TOKEN not in value and "echo-me" not in value, (name, value)
    assert not {"cookie", "authorization", "x-probe", "range", "host"} & {k.lower() for k in r.headers}
    assert r.headers["x-content-type-options"] == "nosniff"


# --- 9. the prompt limit holds for the recipe as it will run ----------------------------------------------------

def test_the_prompt_limit_holds_whatever_the_prompt_came_from(app_client, tmp_path):
    c = app_client()
    long = "a" * 4001
    for over in ({"inputs.prompt": long}, {"inputs.negative_prompt": long}, {"inputs.prompt": "a" * 60000}):
        assert "over 4000 characters" in _refused(submit(c, overrides=over), 413)
    recipe = COMPOSITE.replace("prompt: a product", f"prompt: {long}").encode()
    files = [("references", ("a.png", png_bytes(1), "image/png")), ("recipe", ("r.yaml", recipe, "text/yaml"))]
    assert "inputs.prompt" in _refused(c.post("/api/jobs", files=files), 413)
    _no_jobs(c, tmp_path)
    assert submit(c, overrides={"inputs.prompt": "a" * 4000}).status_code == 202


# --- 10-12. Host names and the ?token= redirect ---------------------------------------------------------------

@pytest.mark.parametrize("host", ["[::1].evil.com", "[::1]evil", "[::1]:80:80", "localhost:abc", "[::1]:7860.evil.com",
                                  "localhost:80@evil.com", "[localhost]"])
def test_host_must_be_exactly_a_name_or_a_bracketed_address_with_a_port(app_client, host):
    c = app_client()
    assert "Host" in _refused(c.get("/api/jobs", headers={"Host": host}), 403)


def test_the_token_redirect_stays_on_this_site(app_client):
    c = app_client(token=TOKEN, follow_redirects=False)
    for path, expected in (("//evil.example/x", "/evil.example/x"), ("///evil.example", "/evil.example"),
                           ("/\\evil.example/x", "/evil.example/x"), ("/api/recipes", "/api/recipes")):
        r = c.get(f"http://testserver{path}", params={"token": TOKEN}, headers={"Accept": "text/html"})
        assert r.status_code == 303 and r.request.url.path == path, (path, r.text)
        location = r.headers["location"]
        assert location == expected and not location.startswith(("//", "/\\")), (path, location)


def test_interface_addresses_are_read_from_the_kernel_tables(tmp_path):
    from ecomforge.web.security import interface_addresses

    (tmp_path / "fib").write_text("Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n"
                                  "           |-- 127.0.0.1\n              /32 host LOCAL\n"
                                  "           |-- 192.168.7.20\n              /32 host LOCAL\n"
                                  "        |-- 192.168.7.255\n           /32 link BROADCAST\n")
    (tmp_path / "inet6").write_text("fd000000000000000000000000000002 04 40 00 82     eth0\n")
    found = interface_addresses(str(tmp_path / "fib"), str(tmp_path / "inet6"))
    assert {"127.0.0.1", "192.168.7.20", "fd00::2"} <= found and "192.168.7.255" not in found


def test_bound_to_every_interface_the_lan_address_is_a_host_name(app_client):
    from ecomforge.web.security import interface_addresses

    lan = sorted(a for a in interface_addresses() if not a.startswith(("127.", "::1", "fe80")))
    c = app_client(host="0.0.0.0", token=TOKEN, allowed_hosts=())
    auth = {"Authorization": f"Bearer {TOKEN}"}
    if lan:
        host = f"[{lan[0]}]:7860" if ":" in lan[0] else f"{lan[0]}:7860"
        assert c.get("/api/jobs", headers={**auth, "Host": host}).status_code == 200, host
    assert "--allow-host" in _refused(c.get("/api/jobs", headers={**auth, "Host": "203.0.113.77:7860"}), 403)


def test_a_malformed_upload_body_is_refused_before_gradio_stores_it(app_client):
    c = app_client(ui=True)
    r = c.post("/gradio_api/upload", content=b"--XyZ\r\nno headers end here",
               headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code == 400 and "multipart" in r.json()["error"]


# --- second pass: what a re-check found ---------------------------------------------------------------------------

@pytest.mark.parametrize("ctype", ["multipart/form-data; xboundary=a; boundary=a--",
                                   "multipart/form-data; boundary=a; boundary=a--",
                                   'multipart/form-data; foo="boundary=a"; boundary=a--'])
def test_a_second_boundary_parameter_cannot_hide_the_files(app_client, ctype):
    """The count uses the boundary Gradio's parser uses: '--a--' is no closing line when the boundary is 'a--'."""
    c = app_client(ui=True)  # max_files 3
    tag = uuid.uuid4().hex[:8]
    names = [f"hid-{tag}-{i}.png" for i in range(6)]
    body = b"".join(b'--a--\r\nContent-Disposition: form-data; name="files"; filename="%s"\r\n'
                    b"Content-Type: image/png\r\n\r\n%s\r\n" % (n.encode(), png_bytes(i)) for i, n in enumerate(names))
    r = c.post("/gradio_api/upload", content=body + b"--a----\r\n", headers={"Content-Type": ctype})
    assert r.status_code in (400, 413), r.text
    assert _stored(names) == []


def test_two_boundary_parameters_are_refused():
    from ecomforge.web.files import _boundary

    def scope(ctype):
        return {"headers": [(b"content-type", ctype)]}

    assert _boundary(scope(b"multipart/form-data; boundary=XyZ")) == b"XyZ"
    assert _boundary(scope(b'multipart/form-data; boundary="XyZ"')) == b"XyZ"
    assert _boundary(scope(b"multipart/form-data; Boundary=a--; boundary=a")) == b""
    assert _boundary(scope(b"application/json")) is None


def test_ranged_file_answers_keep_their_own_content_type(app_client):
    c = app_client(ui=True)
    path = c.post("/gradio_api/upload", files=[("files", ("ct.png", png_bytes(1), "image/png"))]).json()[0]
    r = c.get(f"/gradio_api/file={path}", headers={"Range": "bytes=0-3", "Content-Type": "text/html"})
    assert r.status_code == 206
    assert r.headers.get_list("content-type") == ["image/png"], r.headers


def test_the_mask_preview_reads_mask_files_only_where_a_job_may(app_client, tmp_path, monkeypatch):
    """'{stem}' is the uploaded photo's name: the preview must not read masks/<that>.png from the server's folder."""
    import gradio as gr

    server = tmp_path / "server"
    (server / "masks").mkdir(parents=True)
    (server / "masks" / "secret.png").write_bytes(png_bytes(3, (160, 120)))
    monkeypatch.chdir(server)
    c = app_client()
    act = _actions(c, tmp_path)
    photo = tmp_path / "secret.png"
    photo.write_bytes(png_bytes(2, (160, 120)))
    with pytest.raises(gr.Error) as caught:
        act.detect_mask([str(photo)], "upload", None, None, None, "")
    assert "not a file this run may read" in str(caught.value.message)
    mask = tmp_path / "upload" / "mine.png"  # an uploaded mask is read
    mask.parent.mkdir()
    half = np.zeros((120, 160), np.uint8)
    half[30:90, 40:120] = 255
    Image.fromarray(half).save(mask)
    overlay, _, _ = act.detect_mask([str(photo)], "upload", None, None, [str(mask)], "")
    assert overlay is not None


def test_scrub_keeps_routes_and_hides_a_folder_with_spaces(tmp_path, monkeypatch):
    from ecomforge.web.scrub import known_folders, scrub_text

    spaced = tmp_path / "my secret dir"
    spaced.mkdir()
    monkeypatch.chdir(spaced)
    out = scrub_text(f"not found (looked in {spaced}); GET /api/recipes lists them", known_folders())
    assert out == "not found (looked in <server path>); GET /api/recipes lists them", out


def test_a_deep_sweep_in_the_ui_is_a_message(app_client, tmp_path):
    import gradio as gr

    act = _actions(app_client(), tmp_path)
    with pytest.raises(gr.Error) as caught:
        act.overrides("", "", None, None, "composite", "[" * 100000, None, None, None, [])
    assert "nested too deeply" in str(caught.value.message)


class _Upscaler:
    """A third-party generator whose output size comes from a setting of its own (no size, canvas or *_side)."""

    @staticmethod
    def make():
        import cv2
        from pydantic import Field

        from ecomforge import hookimpl
        from ecomforge.stages import Generator, StageConfig
        from ecomforge.types import Candidate

        class Upscale(Generator):
            """The reference, ``factor`` times larger."""

            name = "upscale"

            class Config(StageConfig):
                factor: int = Field(default=1, ge=1, le=64, description="Times larger, per side.")
                pad: int = Field(default=0, ge=0, le=4096, description="Border added on every side, px.")

            @classmethod
            def work_pixels(cls, config, reference):
                f, p = config.factor, config.pad
                return (reference[0] * f + 2 * p) * (reference[1] * f + 2 * p)

            def generate(self, request):
                f, p = request.config.factor, request.config.pad
                w, h = request.reference.size
                big = cv2.resize(request.reference.image, (w * f, h * f), interpolation=cv2.INTER_NEAREST)
                mask = cv2.resize(request.mask.data, (w * f, h * f), interpolation=cv2.INTER_NEAREST)
                big, mask = np.pad(big, ((p, p), (p, p), (0, 0))), np.pad(mask, p)
                return [Candidate(big, s, {"factor": f, "pad": p}, plugin=self.name, mask=mask) for s in request.seeds]

        class Plugin:
            @hookimpl
            def register_generators(self, register):
                register(Upscale)

        return Plugin()


def test_a_generator_that_declares_its_pixels_is_held_to_the_limit(app_client, tmp_path):
    # before: the server counted only size, canvas and *_side settings, so factor 64 (a 6144x4608 image from the
    # 96x72 upload) passed a limit of 400 000 pixels
    from ecomforge.testing import temporary_plugins

    import toyplugins

    with temporary_plugins(toyplugins, _Upscaler.make()):
        c = app_client()
        for over in ({"generate.config.factor": 64}, {"generate.sweep": {"factor": [1, 8]}},
                     # each value alone is within the limit, their combination is not (before: only each alone
                     # was checked): 96x72 at factor 6 is 248 832 px, pad 120 alone 104 832 px, both 548 352 px
                     {"generate.sweep": {"factor": [1, 6], "pad": [0, 120]}}):
            r = submit(c, recipe="webcomposite", overrides={"generate.plugin": "upscale", "generate.config": {},
                                                            **over})
            assert "over the limit of 400000 pixels" in _refused(r, 413)
            _no_jobs(c, tmp_path)
        r = submit(c, recipe="webcomposite", overrides={"generate.plugin": "upscale", "generate.config": {"factor": 2}})
        assert r.status_code == 202, r.text
        job = wait_for(c, r.json()["id"])
        assert job["state"] == "done", job


def test_gradio_copies_of_uploads_are_deleted_after_their_age(app_client):
    # before: every file uploaded to the UI stayed in Gradio's cache until the server stopped, so a page that
    # uploads again and again filled the disk
    import time

    c = app_client(ui=True, ui_files_max_age=1)
    name = f"aged-{uuid.uuid4().hex[:8]}.png"
    r = c.post("/gradio_api/upload", files=[("files", (name, png_bytes(1), "image/png"))])
    assert r.status_code == 200 and _stored([name]) == [name]
    deadline = time.time() + 15
    while _stored([name]) and time.time() < deadline:
        time.sleep(0.25)
    assert _stored([name]) == []
    # the server goes on taking uploads after a sweep
    again = c.post("/gradio_api/upload", files=[("files", (name, png_bytes(2), "image/png"))])
    assert again.status_code == 200 and _stored([name]) == [name]
