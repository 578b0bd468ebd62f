"""The UI's logic without a browser: preset readiness, declared masker inputs, partial results, thumbnails,
mask warnings, concurrency, re-running a job and the token-mode sign-in form."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import Field

from ecomforge import hookimpl
from ecomforge.imaging.refine import RefineConfig
from ecomforge.stages import Masker
from ecomforge.types import Mask
from ecomforge.web.preview import AREA_RANGE, LOW_CONFIDENCE, confidence_warning, masker_accepts, masker_config
from ecomforge.web.readiness import order_presets, preset_readiness
from ecomforge.web.uploads import Limits

from webhelpers import intake_taken, png_bytes, wait_for


class PromptedMasker(Masker):
    """A third-party masker whose text prompt lives under its own key name."""

    name = "prompted-toy"
    accepts = {"text": "describe", "mask": "rough"}

    class Config(RefineConfig):
        describe: str = Field("", description="What to find.")
        rough: str | None = Field(None, description="A rough mask file.")

    def mask(self, reference):
        """Everything."""
        import numpy as np

        return Mask(np.full(reference.image.shape[:2], 255, np.uint8), score=0.3, label="all")


class PromptedPlugin:
    @hookimpl
    def register_maskers(self, register):
        register(PromptedMasker)


def test_every_installed_masker_declares_keys_its_config_has(toy_registry):
    """A declared input that names a missing key would send the UI's value nowhere."""
    for name, plugin in toy_registry.plugins["masker"].items():
        accepts = dict(getattr(plugin.cls, "accepts", {}))
        assert set(accepts) <= {"text", "points", "point_labels", "box", "mask"}, name
        assert all(key in plugin.cls.Config.model_fields for key in accepts.values()), name
    assert "mask" in masker_accepts("upload") and not masker_accepts("classic")


def test_ui_inputs_go_to_the_keys_a_new_masker_declares(toy_registry):
    from ecomforge.testing import temporary_plugins

    import toyplugins

    with temporary_plugins(toyplugins, PromptedPlugin()):
        cfg = masker_config("prompted-toy", {}, "a red vase", [(1.0, 2.0, 1)], "/x/m.png")
    assert cfg == {"describe": "a red vase", "rough": "/x/m.png"}  # no points: it does not take any


def test_uploaded_masks_go_to_a_masker_that_declares_it_takes_one(toy_registry, tmp_path):
    from ecomforge.testing import temporary_plugins
    from ecomforge.web.recipes import uploaded_mask_step

    import toyplugins

    pattern = tmp_path / "masks" / "{stem}.png"
    step = uploaded_mask_step({"plugin": "classic", "config": {"feather": 3, "min_contrast": 5.0}}, pattern)
    assert step == {"plugin": "upload", "config": {"feather": 3, "path": str(pattern)}}  # refine settings kept
    with temporary_plugins(toyplugins, PromptedPlugin()):
        step = uploaded_mask_step({"plugin": "prompted-toy", "config": {"describe": "a vase"}}, pattern)
    assert step == {"plugin": "prompted-toy", "config": {"describe": "a vase", "rough": str(pattern)}}


@given(score=st.floats(0, 1), area=st.floats(0, 1))
def test_a_mask_warning_exactly_when_the_score_is_low_or_the_area_unusual(score, area):
    warning = confidence_warning(score, area)
    unusual = score < LOW_CONFIDENCE or not AREA_RANGE[0] <= area <= AREA_RANGE[1]
    assert (warning is not None) == unusual
    if warning and score < LOW_CONFIDENCE:
        assert f"{score:.2f}" in warning


def test_presets_that_run_here_come_first_and_say_so(toy_registry, recipes_dir):
    from ecomforge.web.recipes import list_presets

    (recipes_dir / "aaa-sam.yaml").write_text(
        "name: s\ninputs: {references: [x.png]}\ngenerate: {plugin: toy}\n"
        "mask: {plugin: sam, config: {points: [[1, 1]], model: /nonexistent/sam.pth}}\n")
    (recipes_dir / "bbb-train.yaml").write_text("trainer: lora\nsteps: 10\n")  # not a generation recipe
    rated = order_presets(list_presets(recipes_dir))
    names = [p["name"] for p, _ in rated]
    assert names[0] == "webtoy" and "bbb-train" not in names
    if "sam" in toy_registry.plugins["masker"]:
        sam = dict((p["name"], r) for p, r in rated)["aaa-sam"]
        assert not sam.ready and sam.label == "needs model weights" and sam.detail == "mask (sam)"
    assert preset_readiness(rated[0][0]).label == "works offline"


def _job_with_results(client, **kw):
    from webhelpers import submit

    job = submit(client, **kw).json()
    return wait_for(client, job["id"])


def test_cancelled_job_results_include_candidates_not_scored_yet(client, tmp_path):
    from ecomforge.web.results import job_results, status_html

    manager = client.app.state.manager
    slow = {"generate.config.delay": 0.3, "generate.seeds": {"count": 8, "base": 1}, "generate.sweep": {}}
    from webhelpers import submit

    job = submit(client, overrides=slow).json()
    import time

    deadline = time.time() + 20
    while len(list((manager.store.job_dir(job["id"])).rglob("candidates/*[0-9a-f].png"))) < 2:
        assert time.time() < deadline
        time.sleep(0.05)
    client.post(f"/api/jobs/{job['id']}/cancel")
    done = wait_for(client, job["id"])
    assert done["state"] == "cancelled"
    res = job_results(manager, manager.get(job["id"]), tmp_path / "thumbs")
    assert 2 <= len(res.items) < 8 and all(not r.get("scored", True) for r in res.records)
    assert all(caption == "not scored yet" for _, caption in res.items)
    for thumb, _ in res.items:  # small JPEGs, made once
        with Image.open(thumb) as im:
            assert im.format == "JPEG" and max(im.size) <= 320
    html = status_html({**manager.get(job["id"]).to_dict(), "waiting": 0}, res)
    assert "cancelled" in html and "Resume" in html


def test_a_job_runs_again_as_a_new_job_with_the_same_photos(client):
    from ecomforge.web.results import job_choices
    from ecomforge.web.ui_actions import rerun_job

    first = _job_with_results(client)
    manager = client.app.state.manager
    again = rerun_job(manager, client.app.state.config.recipes, Limits(), first["id"])
    second = wait_for(client, again.id)
    assert second["id"] != first["id"] and second["state"] == "done"
    made = lambda j: sorted((r["seed"], r["params"].get("level")) for r in j["results"])
    assert made(client.get(f"/api/jobs/{second['id']}").json()) == made(client.get(f"/api/jobs/{first['id']}").json())
    assert [i for _, i in job_choices(manager)][:2] == [second["id"], first["id"]]  # newest first


def test_mask_previews_follow_workers_and_watching_a_job_takes_no_slot(toy_registry, tmp_path, recipes_dir):
    from ecomforge.web.manager import JobManager
    from ecomforge.web.ui import build_ui

    manager = JobManager(tmp_path / "runs", workers=3)
    try:
        demo = build_ui(manager, recipes_dir, Limits())
    finally:
        manager.store.close()
    assert demo._queue.default_concurrency_limit == 3
    fns = {getattr(f.fn, "__name__", ""): f for f in demo.fns.values()}
    assert fns["detect_mask"].concurrency_limit in ("default", 3)
    for name in ("start", "resume", "show"):
        assert fns[name].concurrency_limit is None, name  # following polls; the job queue honours --workers


@pytest.fixture
def login_client():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from ecomforge.web.login import LoginPage
    from ecomforge.web.security import TokenMiddleware

    app = FastAPI()
    app.get("/")(lambda: {"page": "ui"})
    app.get("/api/jobs")(lambda: {"jobs": []})
    app.add_middleware(TokenMiddleware, token="right-token-1")
    app.add_middleware(LoginPage, token="right-token-1")
    return TestClient(app)


def test_a_browser_without_the_token_gets_a_form_and_the_api_keeps_json(login_client):
    page = login_client.get("/", headers={"accept": "text/html"})
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    assert 'name="token"' in page.text and "default-src 'none'" in page.headers["content-security-policy"]
    api = login_client.get("/api/jobs", headers={"accept": "text/html"})
    assert api.status_code == 401 and api.json()["status"] == 401


def test_signing_in_sets_the_cookie_and_a_wrong_token_says_so(login_client):
    wrong = login_client.post("/login", data={"token": "nope-nope"}, follow_redirects=False)
    assert wrong.status_code == 401 and "wrong access token" in wrong.text
    assert "set-cookie" not in wrong.headers
    ok = login_client.post("/login", data={"token": "right-token-1"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    assert "HttpOnly" in ok.headers["set-cookie"] and "SameSite=Strict" in ok.headers["set-cookie"]
    assert login_client.get("/", headers={"accept": "text/html"}).json() == {"page": "ui"}  # the cookie is kept
    huge = login_client.post("/login", content=b"token=" + b"x" * 10_000,
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 401


def test_upload_thumbnails_refuse_a_pixel_bomb_from_its_header(tmp_path):
    from ecomforge.web.results import thumbnail

    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 3000)).save(big)
    with pytest.raises(ValueError, match="over the limit"):
        thumbnail(big, tmp_path / "t", max_pixels=1_000_000)
    ok = tmp_path / "ok.png"
    ok.write_bytes(png_bytes(1, (640, 480)))
    with Image.open(thumbnail(ok, tmp_path / "t", max_pixels=1_000_000)) as im:
        assert im.size == (320, 240)


def test_run_before_the_form_caught_up_with_a_new_preset_runs_that_preset_as_written(client, tmp_path):
    """Picking a preset and clicking Run at once must not send the old preset's generator settings."""
    from ecomforge.web.recipes import list_presets
    from ecomforge.web.ui_actions import Actions

    manager = client.app.state.manager
    recipes = client.app.state.config.recipes
    presets = {p["name"]: p for p in list_presets(recipes)}
    photo = tmp_path / "r.png"
    photo.write_bytes(png_bytes(1))
    act = Actions(manager, recipes, Limits(), presets, tmp_path / "thumbs")
    stale = [str(photo), "an old prompt", "", "webtoy", "quickstart", "classic", "", [], None,
             "composite", '{"background": ["#ffffff"]}', 1, 0, 0]
    job = manager.get(act.submit(*stale))
    assert job.request["overrides"] == {} and job.request["prompt"] is None
    done = wait_for(client, job.id)
    assert done["state"] == "done" and {r["plugin"] for r in client.get(f"/api/jobs/{job.id}").json()["results"]} == {"toy"}
    caught_up = [*stale[:4], "webtoy", *stale[5:9], "toy", "{}", 1, 7, 0]
    over = manager.get(act.submit(*caught_up)).request["overrides"]
    assert over["generate.seeds"] == {"count": 1, "base": 7} and over["mask"]["plugin"] == "classic"


def test_run_after_the_uploads_were_deleted_says_to_upload_again(client, tmp_path):
    # Gradio deletes its copies of uploads after --ui-files-max-age: Run then explains, instead of an error page
    from ecomforge.web.recipes import list_presets
    from ecomforge.web.ui_actions import Actions

    manager = client.app.state.manager
    recipes = client.app.state.config.recipes
    act = Actions(manager, recipes, Limits(), {p["name"]: p for p in list_presets(recipes)}, tmp_path / "thumbs")
    gone = [str(tmp_path / "deleted.png"), "", "", "webtoy", "webtoy", None, "", [], None, None, "{}", 1, 0, 0]
    with pytest.raises(Exception, match="no longer on the server.*upload them again") as err:
        act.submit(*gone)
    assert str(tmp_path) not in str(err.value)
    assert manager.store.all() == []  # no job was made


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)  # the app is stateless
@given(guess=st.text(max_size=40).filter(lambda t: t != "right-token-1"))
def test_no_other_typed_token_signs_in(login_client, guess):
    r = login_client.post("/login", data={"token": guess}, follow_redirects=False)
    assert r.status_code == 401 and "set-cookie" not in r.headers
    assert "<script" not in r.text.lower()  # the page never echoes what was typed


def test_mask_previews_share_the_intake_slots(toy_registry, tmp_path):
    """A preview decodes a whole photo: with every intake slot taken it is refused (busy), not decoded."""
    import gradio as gr

    from ecomforge.web.manager import JobManager
    from ecomforge.web.ui_actions import Actions

    from webhelpers import png_bytes

    manager = JobManager(tmp_path / "runs", workers=1)
    try:
        photo = tmp_path / "ref.png"
        photo.write_bytes(png_bytes(2, (160, 120)))
        actions = Actions(manager, tmp_path, Limits(), {}, tmp_path / "thumbs")
        with intake_taken(manager), pytest.raises(gr.Error, match="busy"):
            actions.detect_mask([str(photo)], "classic", None, None, None, "")
        overlay, _, _ = actions.detect_mask([str(photo)], "classic", None, None, None, "")
        assert overlay is not None and overlay.shape == (120, 160, 3)
    finally:
        manager.store.close()
