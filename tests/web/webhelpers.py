"""Helpers for the web tests: sample uploads, the toy preset, submit and wait."""
from __future__ import annotations

import io
import json
import time
from contextlib import contextmanager

from PIL import Image

from ecomforge.testing import sample_image

# Uploaded references are real files read by the `local` acquirer and masked by the `classic` masker;
# generation, scoring and filtering use the toy stages (fast, deterministic, no weights).
WEB_RECIPE = """
name: webtoy
description: toy generator on uploaded photos
inputs:
  references: [placeholder.png]
  prompt: a toy on a table
  negative_prompt: blurry
mask: {plugin: classic, config: {feather: 0}}
generate:
  plugin: toy
  config: {level: 100, delay: 0.0}
  sweep: {level: [60, 180]}
  seeds: [1, 2]
  batch_size: 1
score:
  - {plugin: toy, weight: 1}
filter: {plugin: toy-top}
"""


COMPOSITE = """
name: webcomposite
inputs: {references: [placeholder.png], prompt: a product}
mask: {plugin: classic, config: {feather: 0}}
generate:
  plugin: composite
  config: {background: "#ffffff", scale: 0.6}
  seeds: [1]
score: [{plugin: toy}]
filter: {plugin: toy-top}
"""
"""A preset with a real masker and generator (classic, composite) and the toy scorer and filter."""


@contextmanager
def slots_taken(manager, which: str = "intake"):
    """Every slot of one of ``manager``'s semaphores held ("intake": decoding, "bodies": reading request bodies),
    with a short wait for one, so the next request that needs one is refused as busy."""
    manager.intake_wait = 0.05
    sem = getattr(manager, which)
    taken = 0
    while sem.acquire(blocking=False):
        taken += 1
    try:
        yield
    finally:
        for _ in range(taken):
            sem.release()


def intake_taken(manager):
    """Every intake (decoding) slot held: ``slots_taken(manager, "intake")``."""
    return slots_taken(manager, "intake")


def refused(r, status, words=None):
    """A one-line JSON refusal with ``status`` (and ``words`` in it); returns its message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and "\n" not in body["error"], body
    if words:
        assert words in body["error"], body["error"]
    return body["error"]


def no_jobs(c, tmp_path, runs="runs"):
    """No job was queued and no job folder is left behind."""
    assert c.get("/api/jobs").json()["jobs"] == []
    assert [p for p in (tmp_path / runs).iterdir() if p.is_dir()] == []


def ui_actions(client, tmp_path):
    """The UI's actions on the app behind ``client`` (no presets of its own)."""
    from ecomforge.web.ui_actions import Actions

    config = client.app.state.config
    return Actions(client.app.state.manager, config.recipes, config.limits, {}, tmp_path / "thumbs")


def post_job(c, files, recipe="webtoy", **data):
    """POST /api/jobs with these files and form fields."""
    return c.post("/api/jobs", files=files, data={"recipe": recipe, **data})


def png_bytes(seed: int = 1, size: tuple[int, int] = (96, 72)) -> bytes:
    """A synthetic packshot (plain background, one product) as PNG bytes."""
    img, _ = sample_image(size[0], size[1], seed)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(seed: int = 1) -> bytes:
    """The same as JPEG."""
    img, _ = sample_image(96, 72, seed)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def submit(client, *, refs=None, recipe="webtoy", overrides=None, headers=None, **fields):
    """POST /api/jobs with the given references (bytes) and fields."""
    refs = [png_bytes(1)] if refs is None else refs
    files = [("references", (f"r{i}.png", b, "image/png")) for i, b in enumerate(refs)]
    data = {"recipe": recipe, **fields}
    if overrides is not None:
        data["overrides"] = json.dumps(overrides)
    return client.post("/api/jobs", files=files or None, data=data, headers=headers or {})


def wait_for(client, job_id, states=("done", "failed", "cancelled", "interrupted"), timeout=30.0, headers=None):
    """Poll a job until it reaches one of ``states``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=headers or {}).json()
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stuck in {job['state']}: {job}")
