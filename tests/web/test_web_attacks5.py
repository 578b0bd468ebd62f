"""One regression test per finding of the fifth attack pass, through HTTP (and the UI's handlers where it applies)."""
from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from webhelpers import intake_taken, png_bytes, slots_taken, submit, wait_for
from webhelpers import no_jobs as _no_jobs
from webhelpers import post_job as _post
from webhelpers import refused as _refused
from webhelpers import ui_actions as _actions

# --- 1. EXIF orientation without Pillow's IFD loader -------------------------------------------------------

def exif_bomb_tiff(n: int) -> bytes:
    """A TIFF IFD of n distinct UNDEFINED tags, each spanning the whole block (as poc/exifbomb.py)."""
    size = 8 + 2 + 12 * n + 4
    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", n)
    tiff += b"".join(struct.pack(">HHII", 0x8000 + i if i < 0x8000 else i - 0x8000 + 1, 7, size - 1, 1)
                     for i in range(n))
    return tiff + b"\x00\x00\x00\x00"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def exif_bomb_png(n: int) -> bytes:
    """A 1x1 PNG whose eXIf chunk is ``exif_bomb_tiff(n)``."""
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    return png + _chunk(b"eXIf", exif_bomb_tiff(n)) + _chunk(b"IDAT", zlib.compress(b"\x00\x80\x80\x80")) + \
        _chunk(b"IEND", b"")


def _photo(seed: int = 0, size: tuple[int, int] = (50, 30)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _saved(im: Image.Image, fmt: str, orientation: int | None, *, raw_profile: bool = False,
           xmp: bool = False) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    exif[0x0110] = "Model 1"
    if orientation is not None and not xmp:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    extra: dict = {"lossless": True} if fmt == "WEBP" else {}
    if fmt == "PNG" and (raw_profile or xmp):
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        if raw_profile:
            raw = exif.tobytes()
            info.add_text("Raw profile type exif", f"\nexif\n{len(raw)}\n{raw.hex()}", zip=True)
        else:
            info.add_itxt("XML:com.adobe.xmp", f'<x:xmpmeta><rdf:Description tiff:Orientation="{orientation}"/>'
                                               "</x:xmpmeta>")
        extra["pnginfo"] = info
    else:
        extra["exif"] = exif.tobytes()
    im.save(buf, format=fmt, **extra)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied_as_pillow_applies_it(fmt, orientation):
    from ecomforge.imaging.decode import decode_image

    data = _saved(_photo(orientation), fmt, orientation)
    with Image.open(io.BytesIO(data)) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    rgb, _ = decode_image(data)
    assert rgb.shape == expected.shape and (rgb == expected).all()
    assert rgb.shape[:2] == ((50, 30) if orientation >= 5 else (30, 50))


@pytest.mark.parametrize("how", ["raw_profile", "xmp"])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_orientation_from_a_png_text_profile_or_xmp_as_pillow(how, orientation):
    from ecomforge.imaging.decode import decode_image

    data = _saved(_photo(orientation), "PNG", orientation, **{how: True})
    with Image.open(io.BytesIO(data)) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    rgb, _ = decode_image(data)
    assert (rgb.shape == expected.shape) and (rgb == expected).all()


def test_real_photo_orientation_with_a_big_exif_and_a_thumbnail():
    """A camera-like EXIF: IFD0, an Exif sub-IFD, a JPEG thumbnail; both byte orders."""
    from ecomforge.imaging.decode import decode_image
    from ecomforge.imaging.exif import exif_orientation

    im = _photo(3, (64, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Maker " * 50
    exif.get_ifd(0x8769)[0x9003] = "2024:01:01 10:00:00"
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif.tobytes())
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as src:
        assert exif_orientation(src.info["exif"]) == 6
        expected = np.asarray(ImageOps.exif_transpose(src).convert("RGB"))
    assert (decode_image(data)[0] == expected).all()
    big_endian = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x02" + struct.pack(">HHIHH", 0x010F, 2, 4, 0x4142, 0) + \
        struct.pack(">HHIHH", 0x0112, 3, 1, 8, 0) + b"\x00" * 4
    assert exif_orientation(big_endian) == 8
    assert exif_orientation(big_endian[:-16]) is None  # the entry is cut off: no orientation


def test_the_orientation_is_dropped_once_applied():
    from ecomforge.imaging.exif import exif_transpose, image_orientation

    with Image.open(io.BytesIO(_saved(_photo(), "JPEG", 6))) as im:
        im.load()
        upright = exif_transpose(im)
    assert upright.size == (30, 50) and image_orientation(upright) == 1


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=400),
                 st.tuples(st.sampled_from([b"II*\x00", b"MM\x00*"]), st.integers(0, 2**32 - 1),
                           st.integers(0, 2**16 - 1), st.binary(max_size=300)).map(
                     lambda t: t[0] + (struct.pack("<IH" if t[0][:1] == b"I" else ">IH", t[1], t[2])) + t[3]),
                 st.tuples(st.sampled_from([b"II*\x00", b"MM\x00*"]), st.lists(
                     st.tuples(st.sampled_from([0x0112, 0x0110, 0x8000]), st.integers(0, 20),
                               st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=8)).map(
                     lambda t: t[0] + _ifd(t[0][:1] == b"I", t[1]))))
def test_the_orientation_reader_never_raises_or_allocates(blob):
    from ecomforge.imaging.exif import exif_orientation, ifd_load_bytes

    tracemalloc.start()
    try:
        found = exif_orientation(b"Exif\x00\x00" + blob)
        assert found == exif_orientation(blob)
        cost = ifd_load_bytes(blob)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found is None or isinstance(found, int)
    assert 0 <= cost and peak < 64 * 1024


def _ifd(little: bool, entries) -> bytes:
    e = "<" if little else ">"
    out = struct.pack(e + "IH", 8, len(entries))
    return out + b"".join(struct.pack(e + "HHII", tag, typ, count, value) for tag, typ, count, value in entries) + \
        b"\x00" * 4


@pytest.mark.parametrize("n", [4000, 12000])
def test_an_exif_bomb_decodes_fast_in_little_memory(n):
    from ecomforge.imaging.decode import decode_image

    data = exif_bomb_png(n)
    tracemalloc.start()
    start = time.process_time()
    try:
        rgb, _ = decode_image(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rgb.shape == (1, 1, 3)
    assert time.process_time() - start < 0.5 and peak < 8 * 1024 * 1024, peak  # was 1.9 GB for n=12000


def _jpeg_with(marker: int, payload: bytes) -> bytes:
    """A small JPEG without its JFIF segment (so Pillow reads the dpi from EXIF) plus one APPn segment."""
    buf = io.BytesIO()
    _photo(1, (16, 16)).save(buf, format="JPEG")
    data = buf.getvalue()
    assert data[2:4] == b"\xff\xe0"
    data = data[:2] + data[4 + struct.unpack(">H", data[4:6])[0]:]
    return data[:2] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + data[2:]


@pytest.mark.parametrize("marker,prefix", [(0xE1, b"Exif\x00\x00"), (0xE2, b"MPF\x00")], ids=["exif", "mpf"])
def test_an_exif_or_mpf_bomb_in_a_jpeg_is_refused_before_pillow_opens_it(app_client, tmp_path, monkeypatch,
                                                                         marker, prefix):
    """Pillow parses a JPEG's EXIF (for its dpi) and MPF directories when it opens the file: 350 MB from 64 KB."""
    import PIL.Image

    n = (65533 - 2 - len(prefix) - 14) // 12
    bomb = _jpeg_with(marker, prefix + exif_bomb_tiff(n))
    c = app_client()
    opened = []
    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    error = _refused(_post(c, [("references", ("r.jpg", bomb, "image/jpeg"))]), 400, "metadata is malformed")
    assert opened == [] and str(tmp_path) not in error
    _no_jobs(c, tmp_path)
    good = _saved(_photo(), "JPEG", 6)
    assert _post(c, [("references", ("r.jpg", good, "image/jpeg"))]).status_code == 202


# --- 2. GIF and BMP are refused by name ------------------------------------------------------------------

def gif_comments(n: int) -> bytes:
    """A 1x1 GIF of n one-byte comment blocks (as poc/gifcomment.py)."""
    head = b"GIF89a" + (1).to_bytes(2, "little") * 2 + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    image = b"\x2c" + b"\x00\x00\x00\x00" + b"\x01\x00\x01\x00" + b"\x00" + b"\x02\x02\x44\x01\x00"
    return head + b"\x21\xfe\x01A\x00" * n + image + b"\x3b"


def bmp_rle(w: int, h: int) -> bytes:
    """A w x h RLE8 BMP of one pixel a row (as poc/bmprle.py)."""
    pal = b"".join(bytes([i, i, i, 0]) for i in range(256))
    rle = b"\x01\x07\x00\x00" * h + b"\x00\x01"
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(rle), 2835, 2835, 256, 0)
    off = 14 + 40 + len(pal)
    return b"BM" + struct.pack("<IHHI", off + len(rle), 0, 0, off) + info + pal + rle


def _plain(fmt: str) -> bytes:
    buf = io.BytesIO()
    _photo().save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("data,name", [(gif_comments(20000), "GIF"), (_plain("GIF"), "GIF"),
                                       (bmp_rle(1200, 333), "BMP"), (_plain("BMP"), "BMP")],
                         ids=["gif-comments", "gif", "bmp-rle", "bmp"])
def test_gif_and_bmp_uploads_are_refused_with_a_hint(app_client, tmp_path, monkeypatch, data, name):
    import PIL.Image

    c = app_client()
    opened = []
    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    error = _refused(_post(c, [("references", ("r.img", data, "image/png"))]), 400, f"{name} images are not accepted")
    assert "convert it to PNG, JPEG or WebP" in error and opened == []
    _refused(_post(c, [("references", ("r.png", png_bytes(1), "image/png")), ("masks", ("m.img", data, "image/png"))]),
             400, f"mask 1: {name}")
    _no_jobs(c, tmp_path)


def test_only_png_jpeg_and_webp_anywhere(app_client, tmp_path):
    """The API, the UI's thumbnails and the mask preview decode with one set of types."""
    from ecomforge.errors import InputError
    from ecomforge.web.preview import preview_mask
    from ecomforge.web.uploads import FORMATS, Limits

    assert FORMATS == {"PNG", "JPEG", "WEBP"}
    c = app_client()
    paths = []
    for name, data in (("a.gif", gif_comments(100)), ("b.bmp", bmp_rle(64, 64)), ("good.webp", _plain("WEBP")),
                       ("good.jpg", _plain("JPEG"))):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    assert [n for _, n in _actions(c, tmp_path).upload_thumbs([str(p) for p in paths])] == ["good.webp", "good.jpg"]
    for p, kind in zip(paths[:2], ("GIF", "BMP")):
        with pytest.raises(InputError, match=f"{kind} images are not accepted"):
            preview_mask(p, "classic", {}, Limits())
    assert _post(c, [("references", ("r.webp", _plain("WEBP"), "image/webp"))]).status_code == 202


# --- 3. the JPEG scan counter cannot be bypassed; junk between segments is refused ------------------------

def _jpeg(w: int, h: int, *, progressive: bool, quality: int = 90, seed: int = 0, flat: bool = False,
          **save) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.full((h, w, 3), 128, np.uint8) if flat else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    from PIL import ImageFile

    # Pillow writes an optimized or progressive JPEG through one buffer of MAXBLOCK bytes; noise at quality
    # 100 outgrows the default ("broken data stream"), a limit of the writer, not of what is tested here
    ImageFile.MAXBLOCK = max(ImageFile.MAXBLOCK, 4 * w * h + 65536)
    Image.fromarray(pixels).save(buf, format="JPEG", progressive=progressive, quality=quality, **save)
    return buf.getvalue()


def _scan_bomb(repeats: int) -> bytes:
    from test_web_attacks4 import scan_bomb

    return scan_bomb(_jpeg(320, 240, progressive=True, flat=True), repeats)


@pytest.mark.parametrize("marker", [0xE5, 0xFE, 0xDB])
def test_a_segment_length_under_two_is_refused_before_decoding(app_client, tmp_path, marker):
    """libjpeg reads on past a length of 0 or 1; the scan counter must not stop there (poc/jpeg_len0.py)."""
    from ecomforge.web.uploads import Limits, decode_upload

    bomb = _scan_bomb(200)
    for hidden in (bomb[:2] + bytes([0xFF, marker, 0, 0]) + bomb[2:], bomb[:2] + bytes([0xFF, marker, 0, 1]) + bomb[2:]):
        start = time.process_time()
        with pytest.raises(Exception, match="broken length"):
            decode_upload(hidden, "reference 1", Limits())
        assert time.process_time() - start < 0.1
    c = app_client()
    error = _refused(_post(c, [("references", ("r.jpg", hidden, "image/jpeg"))]), 400, "not a valid JPEG")
    assert str(tmp_path) not in error
    _no_jobs(c, tmp_path)


def test_a_segment_that_runs_past_the_end_is_refused():
    from ecomforge.errors import InputError
    from ecomforge.web.uploads import Limits, decode_upload

    data = _jpeg(40, 30, progressive=False)
    with pytest.raises(InputError, match="broken length"):
        decode_upload(data[:2] + b"\xff\xe1\xff\xf0" + b"Exif", "reference 1", Limits())


def test_junk_between_segments_is_refused(app_client, tmp_path):
    """Pillow's header reader walks junk a byte at a time in Python (poc/jpegjunk.py: 0.18 s a MB)."""
    from ecomforge.imaging.jpeg import MAX_JPEG_JUNK
    from ecomforge.web.uploads import Limits, decode_upload

    data = _jpeg(40, 30, progressive=False)
    for junk in (b"\x00" * 100_000, b"\xff" * 100_000):
        bad = data[:2] + b"\xff\xfe\x00\x02" + junk + data[2:]
        start = time.process_time()
        with pytest.raises(Exception, match="bytes of junk"):
            decode_upload(bad, "reference 1", Limits())
        assert time.process_time() - start < 0.05
    little = data[:2] + b"\xff\xfe\x00\x02" + b"\x00" * MAX_JPEG_JUNK + data[2:]
    assert decode_upload(little, "reference 1", Limits())[0].shape == (30, 40, 3)
    c = app_client()
    _refused(_post(c, [("references", ("r.jpg", bad, "image/jpeg"))]), 400, "junk")
    _no_jobs(c, tmp_path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=st.integers(8, 200), h=st.integers(8, 200), quality=st.integers(5, 100), progressive=st.booleans(),
       seed=st.integers(0, 2**16), exif=st.booleans(), icc=st.booleans(), orientation=st.integers(1, 8),
       subsampling=st.sampled_from([-1, 0, 1, 2]), optimize=st.booleans())
def test_real_jpegs_pass_the_structure_checks(w, h, quality, progressive, seed, exif, icc, orientation,
                                              subsampling, optimize):
    """Pillow's JPEGs (baseline/progressive, with EXIF with a thumbnail, ICC of several segments) are accepted."""
    from ecomforge.imaging.jpeg import walk_jpeg
    from ecomforge.web.uploads import Limits, decode_upload

    save: dict = {"subsampling": subsampling, "optimize": optimize}
    if exif:
        e = Image.Exif()
        e[0x0112] = orientation
        e[0x010F] = "Camera"
        e[0x8298] = "c" * 300
        save["exif"] = e.tobytes()
    if icc:
        from PIL import ImageCms

        # over 64 KiB: several APP2 segments (Pillow fails to write that progressive or optimized)
        pad = 0 if progressive or optimize else 70_000
        save["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes() + b"\x00" * pad
    data = _jpeg(w, h, progressive=progressive, quality=quality, seed=seed, **save)
    walk = walk_jpeg(data)
    assert walk.broken is None and walk.junk == 0 and walk.scans >= 1
    rgb, _ = decode_upload(data, "reference 1", Limits())
    assert sorted(rgb.shape[:2]) == sorted((h, w))


# --- 4. a request's form is parsed only inside a body slot ------------------------------------------------

def test_the_form_is_not_parsed_while_the_request_waits_for_a_slot(app_client, tmp_path, monkeypatch):
    from starlette.requests import Request

    c = app_client()
    manager = c.app.state.manager
    parsed = []
    real_form = Request._get_form

    async def spy(self, **kw):
        parsed.append(kw)
        return await real_form(self, **kw)

    monkeypatch.setattr(Request, "_get_form", spy)
    files = [("references", ("a.png", png_bytes(1), "image/png"))]
    with slots_taken(manager, "bodies"):
        _refused(_post(c, files, **{f"pad{i}": "a" * 1000 for i in range(3)}), 429, "busy receiving")
        # A form whose file count is wrong is refused too, unparsed: the slot comes first.
        _refused(_post(c, [*files, *files, *files, *files]), 429, "busy receiving")
        assert parsed == []
    got = [manager.bodies.acquire(blocking=False) for _ in range(8)]
    assert all(got)  # every body slot released
    for _ in got:
        manager.bodies.release()
    with intake_taken(manager):  # decoding slots busy: the body is read (bounded), its files are not decoded
        _refused(_post(c, files), 429, "busy checking")
        assert len(parsed) == 1
    r = _post(c, files)
    assert r.status_code == 202, r.text
    assert parsed and parsed[-1]["max_fields"] <= 16 and parsed[-1]["max_part_size"] <= 256 * 1024


def test_the_slot_is_held_while_the_body_is_parsed_and_through_submit(app_client, monkeypatch):
    """One slot per request: submit_job's own intake_slot (in the worker thread) takes no second one."""
    import ecomforge.web.api as api

    c = app_client()
    manager = c.app.state.manager
    held = []
    real = api.submit_job

    def spy(*a, **k):
        free = 0
        while manager.intake.acquire(blocking=False):
            free += 1
        for _ in range(free):
            manager.intake.release()
        held.append((free, getattr(manager._holding, "slot", False)))
        return real(*a, **k)

    monkeypatch.setattr(api, "submit_job", spy)
    job = _post(c, [("references", ("a.png", png_bytes(1), "image/png"))]).json()
    assert held == [(1, True)]  # of 2 slots, this request holds 1, and its thread knows it
    assert wait_for(c, job["id"])["state"] == "done"
    assert not getattr(manager._holding, "slot", False)
    got = [manager.intake.acquire(blocking=False) for _ in range(2)]
    assert got == [True, True]
    for _ in got:
        manager.intake.release()


@pytest.mark.parametrize("why", ["bad-form", "too-many-files", "refused-upload"])
def test_the_slot_is_released_on_every_refusal(app_client, why):
    c = app_client()
    files = {"bad-form": [("references", ("a.png", png_bytes(1), "image/png"))] * 1,
             "too-many-files": [("references", (f"a{i}.png", png_bytes(1), "image/png")) for i in range(4)],
             "refused-upload": [("references", ("a.gif", _plain("GIF"), "image/gif"))]}[why]
    extra = {f"f{i}": "x" for i in range(50)} if why == "bad-form" else {}
    for _ in range(3):  # more refusals than slots: a leaked slot would make the next a 429
        r = _post(c, files, **extra)
        assert r.status_code in (400, 413), r.text
    assert _post(c, [("references", ("a.png", png_bytes(1), "image/png"))]).status_code == 202


def test_a_form_of_fifty_text_fields_is_refused(app_client, tmp_path):
    c = app_client()
    error = _refused(_post(c, [("references", ("a.png", png_bytes(1), "image/png"))],
                           **{f"pad{i}": "a" for i in range(50)}), 400, "bad multipart form")
    assert "fields" in error.lower()
    _no_jobs(c, tmp_path)


def test_a_text_field_over_the_part_size_is_refused(app_client, tmp_path):
    c = app_client()
    _refused(_post(c, [("references", ("a.png", png_bytes(1), "image/png"))], prompt="a" * 300_000),
             400, "bad multipart form")
    # within the part size, a field's own limit answers (overrides: 64 KiB, 413)
    _refused(_post(c, [("references", ("a.png", png_bytes(1), "image/png"))],
                   overrides=json.dumps({"inputs.prompt": "a" * 100_000})), 413, "overrides")
    _no_jobs(c, tmp_path)


def test_a_body_that_does_not_arrive_in_time_frees_the_slot(app_client, monkeypatch):
    from starlette.requests import Request

    import ecomforge.web.api as api

    c = app_client()
    monkeypatch.setattr(api, "FORM_WAIT_S", 0.1)

    async def slow(self, **kw):
        await asyncio.sleep(5)

    monkeypatch.setattr(Request, "_get_form", slow)
    _refused(_post(c, [("references", ("a.png", png_bytes(1), "image/png"))]), 408, "did not arrive")
    monkeypatch.undo()
    assert _post(c, [("references", ("a.png", png_bytes(1), "image/png"))]).status_code == 202


def test_a_full_queue_is_still_a_429_before_the_body_is_parsed(app_client, monkeypatch):
    from starlette.requests import Request

    c = app_client(queue_size=0)
    parsed = []
    monkeypatch.setattr(Request, "_get_form", lambda self, **kw: parsed.append(kw))
    _refused(_post(c, [("references", ("a.png", png_bytes(1), "image/png"))]), 429, "queue is full")
    assert parsed == []


# --- 5. the same download is the same bytes --------------------------------------------------------------

def test_zips_of_the_same_selection_are_byte_identical(app_client, tmp_path):
    from ecomforge.web.api import iter_zip, zip_records

    c = app_client()
    job = wait_for(c, submit(c).json()["id"])
    ids = [r["id"] for r in job["results"]]
    assert len(ids) >= 2
    first = c.get(f"/api/jobs/{job['id']}/results.zip").content
    time.sleep(2.1)  # a zip dated "now" would differ by now (zip times count in 2 s steps)
    assert c.get(f"/api/jobs/{job['id']}/results.zip").content == first
    picked = c.get(f"/api/jobs/{job['id']}/results.zip", params={"ids": ids[0]}).content
    assert picked == c.get(f"/api/jobs/{job['id']}/results.zip", params={"ids": ids[0]}).content != first
    manager = c.app.state.manager
    root = manager.store.job_dir(job["id"]) / manager.get(job["id"]).run_dir
    records = zip_records(root, manager.get(job["id"]), None)
    assert b"".join(iter_zip(root, records, manager, job["id"])) == first
    act = _actions(c, tmp_path)
    zips = [open(act.make_zip(job["id"], sel), "rb").read() for sel in (None, None, ids[:2], ids[1::-1])]
    assert zips[0] == zips[1] == first and zips[2] == zips[3]
