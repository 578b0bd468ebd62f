"""One regression test per finding of the fourth attack pass, through HTTP (and the UI's handlers where it applies)."""
from __future__ import annotations

import io
import json
import struct
import threading
import time
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from webhelpers import COMPOSITE, intake_taken, png_bytes, submit, wait_for
from webhelpers import no_jobs as _no_jobs
from webhelpers import post_job as _post
from webhelpers import refused as _refused
from webhelpers import ui_actions as _actions

# --- 1. TIFF uploads are refused (tiles and strips are sized apart from the image) ---------------------------

def tiff_tile_bomb(tile: int, side: int = 64) -> bytes:
    """A side x side RGB TIFF whose one deflate tile is declared tile x tile pixels (as poc/tiffbomb.py)."""
    raw = tile * tile * 3
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(bytes(1 << 20)) for _ in range(raw >> 20)) + comp.compress(
        bytes(raw & ((1 << 20) - 1))) + comp.flush()
    n = 12
    bps_off = 8 + 2 + n * 12 + 4
    data_off = bps_off + 6
    entries = sorted([(256, 3, 1, side), (257, 3, 1, side), (258, 3, 3, bps_off), (259, 3, 1, 8), (262, 3, 1, 2),
                      (277, 3, 1, 3), (284, 3, 1, 1), (322, 4, 1, tile), (323, 4, 1, tile), (324, 4, 1, data_off),
                      (325, 4, 1, len(data)), (339, 3, 1, 1)])
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += (struct.pack("<HHIHH", tag, typ, count, value, 0) if typ == 3 and count == 1
                else struct.pack("<HHII", tag, typ, count, value))
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + struct.pack("<HHH", 8, 8, 8) + data


def _tiff(big_endian: bool = False) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((72, 96, 3), 128, np.uint8)).save(buf, format="TIFF", compression="tiff_deflate",
                                                                big_endian=big_endian)
    return buf.getvalue()


@pytest.mark.parametrize("data", [tiff_tile_bomb(1024), _tiff(), _tiff(big_endian=True)],
                         ids=["tile-bomb", "plain", "big-endian"])
def test_tiff_uploads_are_refused_with_a_hint(app_client, tmp_path, data):
    c = app_client()
    error = _refused(_post(c, [("references", ("r.tif", data, "image/tiff"))]), 400, "TIFF")
    assert "convert it to PNG, JPEG or WebP" in error and str(tmp_path) not in error
    error = _refused(_post(c, [("references", ("r.png", png_bytes(1), "image/png")),
                               ("masks", ("m.tif", data, "image/tiff"))]), 400, "mask 1: TIFF")
    _no_jobs(c, tmp_path)


def test_tiff_is_no_upload_format_anywhere(app_client, tmp_path):
    """The API, the UI's thumbnails and the mask preview decode with one set of types: TIFF is not in it."""
    from ecomforge.errors import InputError
    from ecomforge.web.preview import preview_mask
    from ecomforge.web.uploads import FORMATS, Limits

    assert "TIFF" not in FORMATS and {"PNG", "JPEG", "WEBP"} <= FORMATS
    c = app_client()
    bomb = tmp_path / "bomb.tif"
    bomb.write_bytes(tiff_tile_bomb(1024))
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes(1))
    assert [name for _, name in _actions(c, tmp_path).upload_thumbs([str(bomb), str(good)])] == ["good.png"]
    with pytest.raises(InputError, match="TIFF images are not accepted"):
        preview_mask(bomb, "classic", {}, Limits())


# --- 2. a JPEG of too many scans is refused before it is decoded ---------------------------------------------

def _segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, bytes) of a JPEG written by Pillow, an SOS segment with its entropy-coded data (as poc/progjpeg.py)."""
    i, out = 2, []
    while data[i + 1] != 0xD9:
        marker = data[i + 1]
        j = i + 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker == 0xDA:
            while not (data[j] == 0xFF and data[j + 1] != 0 and not 0xD0 <= data[j + 1] <= 0xD7):
                j += 1
        out.append((marker, data[i:j]))
        i = j
    return out


def scan_bomb(base: bytes, repeats: int) -> bytes:
    """``base`` (a progressive JPEG) with its last Huffman table and scan repeated ``repeats`` times."""
    segs = _segments(base)
    last = max(k for k, (m, _) in enumerate(segs) if m == 0xDA)
    tail = b"".join(s for m, s in segs[last - 1:last + 1] if m in (0xC4, 0xDA))
    return base[:2] + b"".join(s for _, s in segs) + tail * repeats + b"\xff\xd9"


def _jpeg(w: int, h: int, *, progressive: bool, quality: int = 90, mode: str = "RGB", seed: int = 0,
          restart: int = 0, flat: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    pixels = np.full(shape, 128, np.uint8) if flat else rng.integers(0, 256, shape, dtype=np.uint8)
    buf = io.BytesIO()
    extra = {"restart_marker_blocks": restart} if restart else {}
    Image.fromarray(pixels, mode).save(buf, format="JPEG", progressive=progressive, quality=quality, **extra)
    return buf.getvalue()


def _with_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    """``data`` with an APPn or COM segment holding ``payload`` right after SOI (the decoder skips it by length)."""
    return data[:2] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + data[2:]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=st.integers(8, 160), h=st.integers(8, 160), quality=st.integers(5, 100), progressive=st.booleans(),
       mode=st.sampled_from(["RGB", "L"]), seed=st.integers(0, 2**16), restart=st.sampled_from([0, 1, 3]),
       hidden=st.binary(max_size=64), extra=st.integers(1, 80))
def test_jpeg_scans_are_counted_as_the_decoder_reads_them(w, h, quality, progressive, mode, seed, restart, hidden,
                                                          extra):
    """Pillow's JPEGs are counted right (libjpeg: 1 scan baseline; progressive 10 colour, 6 grey) and decoded;
    a JPEG hidden in an APP1 segment (an EXIF thumbnail) is skipped; repeated scans over the limit are refused."""
    from ecomforge.imaging.jpeg import jpeg_scans
    from ecomforge.web.uploads import Limits, TooLarge, decode_upload

    limits = Limits(max_jpeg_scans=64)
    data = _jpeg(w, h, progressive=progressive, quality=quality, mode=mode, seed=seed, restart=restart)
    scans = (10 if mode == "RGB" else 6) if progressive else 1
    thumb = _jpeg(8, 8, progressive=True, seed=seed) + b"\xff\xda" + hidden  # its scans are APP1's bytes
    for variant in (data, _with_segment(data, 0xE1, b"Exif\x00\x00" + thumb), _with_segment(data, 0xFE, hidden)):
        assert jpeg_scans(variant) == scans
        rgb, _ = decode_upload(variant, "reference 1", limits)
        assert rgb.shape[:2] == (h, w)
    if progressive:
        bomb = scan_bomb(data, extra)
        assert jpeg_scans(bomb) == scans + extra
        if scans + extra > limits.max_jpeg_scans:
            with pytest.raises(TooLarge, match="scans is over the limit of 64"):
                decode_upload(bomb, "reference 1", limits)
        else:
            decode_upload(bomb, "reference 1", limits)


def test_the_scan_count_stops_at_the_end_of_the_image_and_skips_stuffing():
    from ecomforge.imaging.jpeg import jpeg_scans

    data = _jpeg(40, 30, progressive=True)
    assert jpeg_scans(data + b"\xff\xda\x00\x08" * 100) == 10  # after EOI: never read by the decoder
    assert jpeg_scans(b"\x89PNG\r\n\x1a\n" + b"\xff\xda" * 100) == 0  # not a JPEG
    # Garbage between segments is skipped to the next marker, as libjpeg does: a scan after it still counts.
    body = data[:-2]
    assert jpeg_scans(body + b"junk\x00\xff\x00" + scan_bomb(data, 3)[len(body):]) == 13
    # Thousands of tiny segments: counted as over any limit, quickly.
    many = data[:2] + b"\xff\xfe\x00\x02" * 100_000 + data[2:]
    start = time.perf_counter()
    assert jpeg_scans(many, max_segments=4096) == 4096
    assert time.perf_counter() - start < 1.0


def test_a_jpeg_scan_bomb_is_refused_through_http_before_decoding(app_client, tmp_path, monkeypatch):
    import PIL.ImageFile

    c = app_client()
    bomb = scan_bomb(_jpeg(320, 240, progressive=True, flat=True), 200)  # a flat photo: tiny scans
    assert len(bomb) < 200_000
    loads = []
    real_load = PIL.ImageFile.ImageFile.load
    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", lambda self: loads.append(self.format) or real_load(self))
    error = _refused(_post(c, [("references", ("r.jpg", bomb, "image/jpeg"))]), 413, "210 scans")
    assert "over the limit of 64" in error and loads == []
    _no_jobs(c, tmp_path)
    path = tmp_path / "bomb.jpg"  # the UI names it under its thumbnails, without decoding it
    path.write_bytes(bomb)
    assert _actions(c, tmp_path).upload_thumbs([str(path)]) == [] and loads == []
    ok = _post(c, [("references", ("r.jpg", _jpeg(96, 72, progressive=True), "image/jpeg"))])
    assert ok.status_code == 202, ok.text


# --- 3. a request's files are read into memory only inside an intake slot -----------------------------------

def test_files_are_not_read_while_the_request_waits_for_an_intake_slot(app_client, monkeypatch):
    from starlette.datastructures import UploadFile

    c = app_client()
    manager = c.app.state.manager
    reads = []
    real_read = UploadFile.read

    async def spy(self, size=-1):
        reads.append((self.filename, size))
        return await real_read(self, size)

    monkeypatch.setattr(UploadFile, "read", spy)
    big = png_bytes(1, (300, 200))
    files = [("references", ("a.png", big, "image/png")), ("masks", ("m.png", big, "image/png"))]
    with intake_taken(manager):
        _refused(_post(c, files), 429, "busy")
        assert reads == []  # refused after the wait without holding a byte of the files
    assert c.get("/api/jobs").json()["jobs"] == []
    r = _post(c, files)
    assert r.status_code == 202, r.text
    assert sorted(name for name, _ in reads) == ["a.png", "m.png"]
    # The form's own checks still come first, without a slot: a count that is wrong is a 400.
    with intake_taken(manager):
        _refused(_post(c, [*files, ("masks", ("m2.png", big, "image/png"))]), 400, "2 masks for 1 references")


def test_a_nested_intake_slot_takes_no_second_slot(tmp_path):
    from ecomforge.web.manager import JobManager

    manager = JobManager(tmp_path / "runs", intake=1, intake_wait=0.05)
    try:
        with manager.intake_slot(), manager.intake_slot():
            assert not manager.intake.acquire(blocking=False)
        assert manager.intake.acquire(blocking=False)
        manager.intake.release()
    finally:
        manager.stop()


# --- 4. results.zip (and the UI's zip) name no server path -------------------------------------------------

@pytest.fixture
def bg_job(app_client, recipes_dir, tmp_path):
    """A finished job of a preset whose background is a photo in the presets folder, named by its absolute path."""
    bg = recipes_dir / "bg.png"
    Image.fromarray(np.full((64, 64, 3), (30, 120, 200), np.uint8)).save(bg)
    (recipes_dir / "bgpreset.yaml").write_text(COMPOSITE.replace("name: webcomposite", "name: bgpreset")
                                               .replace('background: "#ffffff"', f'background: "{bg}"'))
    c = app_client()
    job = wait_for(c, submit(c, recipe="bgpreset").json()["id"])
    assert job["state"] == "done" and job["results"], job
    raw = (tmp_path / "runs" / job["id"]).rglob("manifest.jsonl")
    assert str(bg) in next(raw).read_text()  # on disk the real path stays (resume needs it)
    return c, job, bg


def _zip_manifest(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert any(n.endswith(".png") for n in zf.namelist())
        return zf.read("manifest.jsonl").decode()


def test_results_zip_manifest_names_no_server_path(bg_job, tmp_path):
    c, job, bg = bg_job
    r = c.get(f"/api/jobs/{job['id']}/results.zip")
    assert r.status_code == 200
    text = _zip_manifest(r.content)
    assert str(tmp_path) not in text and "<recipes>/bg.png" in text
    assert json.loads(text.splitlines()[0])["image"].startswith("candidates/")
    picked = c.get(f"/api/jobs/{job['id']}/results.zip", params={"ids": job["results"][0]["id"]})
    assert str(tmp_path) not in _zip_manifest(picked.content)


def test_the_ui_zip_names_no_server_path(bg_job, tmp_path):
    c, job, _ = bg_job
    act = _actions(c, tmp_path)
    for ids in (None, [job["results"][0]["id"]]):
        with open(act.make_zip(job["id"], ids), "rb") as f:
            text = _zip_manifest(f.read())
        assert str(tmp_path) not in text and "<recipes>/bg.png" in text


# --- 5. the UI's download zips take a bounded amount of disk -------------------------------------------------

def test_ui_zips_are_kept_in_one_folder_and_only_the_newest_few(app_client, tmp_path):
    import glob
    import tempfile

    from ecomforge.web.ui_actions import MAX_ZIPS

    c = app_client()
    job = wait_for(c, submit(c).json()["id"])
    act = _actions(c, tmp_path)
    before = set(glob.glob(f"{tempfile.gettempdir()}/ecomforge-zip-*"))
    paths = [act.make_zip(job["id"], None if i % 2 else [job["results"][0]["id"]]) for i in range(MAX_ZIPS + 4)]
    assert set(glob.glob(f"{tempfile.gettempdir()}/ecomforge-zip-*")) == before  # no folder left per click
    zips = tmp_path / "thumbs" / "zips"
    kept = sorted(zips.rglob("*.zip"))
    assert len(kept) == MAX_ZIPS and len([p for p in zips.iterdir()]) == MAX_ZIPS
    assert {str(p) for p in kept} == set(paths[-MAX_ZIPS:])
    assert paths[-1].endswith(f"{job['id']}-all.zip") and zipfile.ZipFile(paths[-1]).testzip() is None


# --- 6. integers of more digits than Python converts are a 400 -----------------------------------------------

def test_a_huge_integer_in_the_overrides_or_a_recipe_file_is_a_400(app_client, tmp_path):
    c = app_client()
    digits = "9" * 5000
    r = c.post("/api/jobs", files=[("references", ("r.png", png_bytes(1), "image/png"))],
               data={"recipe": "webtoy", "overrides": '{"generate.seeds": [' + digits + "]}"})
    assert "more than 4300 digits" in _refused(r, 400, "overrides:")
    recipe = f"name: x\ngenerate:\n  plugin: composite\n  seeds: [{digits}]\n".encode()
    r = c.post("/api/jobs", files=[("references", ("r.png", png_bytes(1), "image/png")),
                                   ("recipe", ("r.yaml", recipe, "application/yaml"))])
    assert "more than 4300 digits" in _refused(r, 400, "recipe file:")
    _no_jobs(c, tmp_path)


def test_a_huge_integer_in_the_ui_sweep_box_is_a_message(app_client, tmp_path):
    import gradio as gr

    act = _actions(app_client(), tmp_path)
    with pytest.raises(gr.Error, match="too many digits"):
        act.overrides("x", None, None, None, "toy", '{"level": [' + "9" * 5000 + "]}", 0, 0, 0, [])


# --- 7. resume checks and changes the job's state under one lock --------------------------------------------

def test_two_resumes_at_once_queue_the_job_once(tmp_path, monkeypatch):
    from ecomforge.web.jobs import CANCELLED
    from ecomforge.web.manager import JOB_RECIPE, JobConflict, JobManager

    manager = JobManager(tmp_path / "runs")  # no workers: the queue is what is looked at
    try:
        job = manager.new_job("webtoy", {})
        manager.store.add(job)
        manager.store.update(job.id, state=CANCELLED)
        (manager.store.job_dir(job.id) / JOB_RECIPE).write_text("name: x\n")
        barrier = threading.Barrier(2, timeout=0.5)
        real = manager.store.job_dir

        def job_dir(job_id):  # both resumes meet here, between looking at the job and queueing it
            if threading.current_thread().name.startswith("resume-"):
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass
            return real(job_id)

        monkeypatch.setattr(manager.store, "job_dir", job_dir)
        outcomes: list[str] = []

        def resume():
            try:
                manager.resume(job.id)
                outcomes.append("queued")
            except JobConflict:
                outcomes.append("conflict")

        threads = [threading.Thread(target=resume, name=f"resume-{i}") for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert sorted(outcomes) == ["conflict", "queued"]
        assert manager.waiting() == 1 and manager._queue.qsize() == 1
    finally:
        manager.stop()


# --- 8. uvicorn gets connection limits ---------------------------------------------------------------------

def test_serve_passes_connection_limits_to_uvicorn(tmp_path, monkeypatch):
    import uvicorn
    from click.testing import CliRunner

    from ecomforge.web.cli import serve

    seen = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.append(kw))
    args = ["--no-ui", "--runs", str(tmp_path / "runs"), "--recipes", str(tmp_path)]
    for extra, want in (([], (100, 5)), (["--max-connections", "12", "--keep-alive", "3"], (12, 3))):
        result = CliRunner().invoke(serve, [*args, *extra])
        assert result.exit_code == 0, result.output
        kw = seen.pop()
        assert (kw["limit_concurrency"], kw["timeout_keep_alive"]) == want
        assert kw["http"] == "h11" and kw["h11_max_incomplete_event_size"] == 16 * 1024
