"""The ``local`` acquirer and the image decoder: every input kind, every image mode, every bad file."""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ecomforge.errors import InputError
from ecomforge.testing import AcquirerContract
from ecomforge_classic.acquire import LocalAcquirer
from ecomforge_classic.decode import decode_image

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "dreambench"


def gradient(w: int = 48, h: int = 32) -> np.ndarray:
    """A deterministic RGB test image with distinct rows, columns and channels."""
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs * 255 // (w - 1), ys * 255 // (h - 1), (xs + ys) % 256], axis=2).astype(np.uint8)


def encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def acquire(specs, base_dir: Path, **config):
    # The tests' own servers listen on 127.0.0.1, which downloads refuse unless private hosts are allowed.
    return LocalAcquirer({"allow_private_hosts": True, **config}).acquire(specs, product="mug", base_dir=base_dir)


# --- decoding: image modes -------------------------------------------------------------------

def test_rgba_keeps_alpha_and_rgb():
    rgba = np.dstack([gradient(), np.tile(np.arange(48, dtype=np.uint8) * 5, (32, 1))])
    rgb, alpha = decode_image(encode(Image.fromarray(rgba, "RGBA")))
    assert rgb.dtype == np.uint8 and rgb.shape == (32, 48, 3)
    np.testing.assert_array_equal(rgb, rgba[..., :3])
    np.testing.assert_array_equal(alpha, rgba[..., 3])


def test_la_gives_grey_rgb_and_alpha():
    grey = np.tile(np.arange(48, dtype=np.uint8) * 5, (32, 1))
    la = Image.merge("LA", [Image.fromarray(grey), Image.fromarray(255 - grey)])
    rgb, alpha = decode_image(encode(la))
    assert all(np.array_equal(rgb[..., c], grey) for c in range(3))
    np.testing.assert_array_equal(alpha, 255 - grey)


def test_palette_with_transparency_becomes_alpha():
    pal = Image.fromarray(gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    index = np.asarray(pal)
    transparent = int(index[0, 0])
    rgb, alpha = decode_image(encode(pal, transparency=transparent))
    assert alpha is not None
    np.testing.assert_array_equal(alpha == 0, index == transparent)
    assert rgb.shape == (32, 48, 3)


def test_palette_without_transparency_is_plain_rgb():
    pal = Image.fromarray(gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    rgb, alpha = decode_image(encode(pal))
    assert alpha is None
    np.testing.assert_array_equal(rgb, np.asarray(pal.convert("RGB")))


def test_grey_l_and_bilevel():
    grey = np.tile(np.arange(48, dtype=np.uint8) * 5, (32, 1))
    rgb, alpha = decode_image(encode(Image.fromarray(grey, "L")))
    assert alpha is None and all(np.array_equal(rgb[..., c], grey) for c in range(3))
    rgb1, _ = decode_image(encode(Image.fromarray(grey > 100)))
    assert set(np.unique(rgb1)) == {0, 255}


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_grey_is_scaled_not_clipped(fmt):
    wide = (np.arange(32 * 48).reshape(32, 48) * 40).astype(np.uint16)  # 0 .. 61400
    rgb, _ = decode_image(encode(Image.fromarray(wide), fmt))
    expected = np.round(wide / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(rgb[..., 0], expected)
    assert rgb.max() > 200  # clipping to 255 would flatten; truncation to 8 bits would wrap


def test_32bit_int_grey_mode_i():
    wide = (np.arange(32 * 48).reshape(32, 48) * 40).astype(np.int32)
    rgb, _ = decode_image(encode(Image.fromarray(wide, "I"), "TIFF"))
    np.testing.assert_array_equal(rgb[..., 0], np.round(wide / 257.0).astype(np.uint8))


def test_cmyk_jpeg_is_rgb():
    cmyk = Image.fromarray(gradient()).convert("CMYK")
    rgb, alpha = decode_image(encode(cmyk, "JPEG", quality=95))
    assert rgb.shape == (32, 48, 3) and alpha is None
    assert np.abs(rgb.astype(int) - gradient().astype(int)).mean() < 12


def test_exif_orientation_is_applied():
    image = Image.fromarray(gradient(48, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    rgb, _ = decode_image(encode(image, "JPEG", quality=95, exif=exif.tobytes()))
    assert rgb.shape == (48, 32, 3)  # width and height swapped
    expected = np.asarray(image.transpose(Image.Transpose.ROTATE_270))
    assert np.abs(rgb.astype(int) - expected.astype(int)).mean() < 8


# --- decoding: bad input ----------------------------------------------------------------------

def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    big = encode(Image.new("L", (3000, 3000)))  # tiny file, 9 MP
    with pytest.raises(InputError, match=r"^bomb.png: too many pixels \(3000x3000 = 9000000, limit 4000000: max_pixels\)$"):
        decode_image(big, what="bomb.png", max_pixels=4_000_000)
    rgb, _ = decode_image(big, max_pixels=10_000_000)
    assert rgb.shape == (3000, 3000, 3)
    assert Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS >= 10_000_000  # PIL's guard raised, not lowered

    # PIL's own guard, should it fire first, gives the same one-line error.
    def pil_guard(size):
        raise Image.DecompressionBombError("Image size (9000000 pixels) exceeds limit of 1 pixels")

    monkeypatch.setattr(Image, "_decompression_bomb_check", pil_guard)
    with pytest.raises(InputError, match=r"^bomb.png: too many pixels \(9000000 pixels, limit 4000000"):
        decode_image(big, what="bomb.png", max_pixels=4_000_000)


def test_truncated_jpeg_names_the_file():
    data = encode(Image.fromarray(gradient(256, 256)), "JPEG")
    with pytest.raises(InputError, match=r"^cut.jpg: truncated or corrupt"):
        decode_image(data[: len(data) // 2], what="cut.jpg")


def test_empty_and_non_image():
    with pytest.raises(InputError, match="empty.png: the file is empty"):
        decode_image(b"", what="empty.png")
    with pytest.raises(InputError, match="notes.png: not an image"):
        decode_image(b"just some text, not pixels\n", what="notes.png")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600),
                 st.tuples(st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]),
                           st.integers(0, 400), st.binary(max_size=64))))
def test_arbitrary_bytes_give_an_image_or_input_error(blob):
    """Random bytes, and real files with bytes cut or spliced, never leak a library exception."""
    if isinstance(blob, tuple):
        fmt, cut, junk = blob
        good = encode(Image.fromarray(gradient(20, 12)).convert("RGB"), fmt)
        blob = good[:cut] + junk + good[cut + len(junk):]
    try:
        rgb, alpha = decode_image(blob, what="x", max_pixels=1_000_000)
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("x: ")
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert alpha is None or alpha.shape == rgb.shape[:2]


# --- acquiring: specs -------------------------------------------------------------------------

@pytest.fixture
def photos(tmp_path):
    """Three distinct PNGs in a folder, plus a text file the folder scan must skip."""
    folder = tmp_path / "refs"
    for i, name in enumerate(["b.png", "a.png", "c.jpg"]):
        write(folder / name, encode(Image.fromarray(np.roll(gradient(), i * 7, axis=1)),
                                    "JPEG" if name.endswith("jpg") else "PNG"))
    write(folder / "notes.txt", b"not an image")
    return folder


def test_folder_is_sorted_and_described(photos):
    refs = acquire([str(photos)], photos.parent)
    assert [Path(r.source).name for r in refs] == ["a.png", "b.png", "c.jpg"]
    assert [r.name for r in refs] == ["00", "01", "02"]
    assert all(r.product == "mug" and r.image.shape == (32, 48, 3) for r in refs)
    assert refs[0].sha256 == hashlib.sha256((photos / "a.png").read_bytes()).hexdigest()


def test_glob_and_duplicates_dropped(photos, tmp_path):
    write(tmp_path / "copy" / "same-as-a.png", (photos / "a.png").read_bytes())
    refs = acquire([str(photos / "*.png"), str(tmp_path / "copy" / "*.png"), str(photos / "a.png")], tmp_path)
    assert [Path(r.source).name for r in refs] == ["a.png", "b.png"]
    assert len({r.sha256 for r in refs}) == 2


def test_relative_paths_cwd_first_then_base_dir(photos, tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    write(elsewhere / "refs" / "a.png", encode(Image.new("RGB", (8, 8), "red")))
    monkeypatch.chdir(elsewhere)
    from_cwd = acquire(["refs/a.png"], base_dir=tmp_path)
    assert from_cwd[0].image[0, 0].tolist() == [255, 0, 0]
    from_base = acquire(["refs/b.png", "refs/*.jpg"], base_dir=tmp_path)
    assert [Path(r.source).name for r in from_base] == ["b.png", "c.jpg"]


def test_extensions_config_filters_folders(photos):
    refs = acquire([str(photos)], photos.parent, extensions=[".jpg"])
    assert [Path(r.source).name for r in refs] == ["c.jpg"]


def test_missing_file_glob_and_empty_spec(tmp_path):
    with pytest.raises(InputError, match=r"nope.png: no such file or folder \(looked in .* and "):
        acquire(["nope.png"], tmp_path)
    gone = tmp_path / "gone" / "x.png"
    with pytest.raises(InputError) as info:  # an absolute path: only where it says, no misleading "looked in"
        acquire([str(gone)], tmp_path)
    assert info.value.message == f"{gone}: no such file or folder"
    with pytest.raises(InputError, match=r"\*.webp: the pattern matches no image files"):
        acquire(["*.webp"], tmp_path)
    with pytest.raises(InputError, match="no references given"):
        acquire([], tmp_path)
    (tmp_path / "void").mkdir()
    with pytest.raises(InputError, match="void: the folder holds no images"):
        acquire([str(tmp_path / "void")], tmp_path)


def test_bad_files_name_the_file(tmp_path):
    empty = write(tmp_path / "empty.png", b"")
    text = write(tmp_path / "text.png", b"hello, I am text\n" * 10)
    big = write(tmp_path / "big.png", encode(Image.new("RGB", (400, 400))))
    with pytest.raises(InputError, match=r"empty.png: the file is empty"):
        acquire([str(empty)], tmp_path)
    with pytest.raises(InputError, match=r"text.png: not an image"):
        acquire([str(text)], tmp_path)
    with pytest.raises(InputError, match=r"big.png: too many pixels .*limit 100000: max_pixels"):
        acquire([str(big)], tmp_path, max_pixels=100_000)
    with pytest.raises(InputError, match=r"big.png: \d+ bytes is over the limit"):
        acquire([str(big)], tmp_path, max_bytes=100)


def test_real_photo_sample():
    refs = acquire([str(SAMPLES / "vase" / "0[23].jpg")], SAMPLES)
    assert [Path(r.source).name for r in refs] == ["02.jpg", "03.jpg"]
    assert refs[0].size == (1044, 1044) and refs[0].alpha is None


# --- acquiring: URLs --------------------------------------------------------------------------

@pytest.fixture
def server(photos):
    """A local http.server serving the photos folder on 127.0.0.1."""
    handler = functools.partial(_QuietHandler, directory=str(photos))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


def test_url_is_downloaded(server, photos):
    refs = acquire([f"{server}/a.png", str(photos / "a.png")], photos)
    assert len(refs) == 1  # same bytes from the URL and the disk: one reference
    assert refs[0].source == f"{server}/a.png"
    assert refs[0].sha256 == hashlib.sha256((photos / "a.png").read_bytes()).hexdigest()


def test_url_failures_are_input_errors(server, photos):
    with pytest.raises(InputError, match=r"/missing.png: HTTP 404"):
        acquire([f"{server}/missing.png"], photos)
    with pytest.raises(InputError, match=r"/a.png: .*over the limit"):
        acquire([f"{server}/a.png"], photos, max_bytes=50)
    with pytest.raises(InputError, match=r"/notes.txt: not an image"):
        acquire([f"{server}/notes.txt"], photos)
    with pytest.raises(InputError, match=r"127.0.0.1:9/x.png: cannot download"):
        acquire(["http://127.0.0.1:9/x.png"], photos, timeout=2)
    with pytest.raises(InputError, match="only local paths and http"):
        acquire(["ftp://example.com/x.png"], photos)


class TestLocalContract(AcquirerContract):
    def make_stage(self):
        return LocalAcquirer()

    def make_specs(self, tmp_path):
        write(tmp_path / "p" / "a.png", encode(Image.fromarray(gradient())))
        return [str(tmp_path / "p")]


def test_a_download_is_held_to_what_its_pixels_cost(server, photos):
    # A URL names someone else's file: the acquirer refuses a JPEG that repeats one scan hundreds of times (minutes
    # to decode) and types whose decoders cost more than their pixels (TIFF tiles, GIF comments), as the web
    # server refuses such uploads; the same files on disk are the user's own and are read.
    import io as io_mod

    buf = io_mod.BytesIO()
    Image.fromarray(gradient()).save(buf, format="JPEG", progressive=True)
    base = buf.getvalue()
    body = base[:-2]  # without EOI
    last_scan = body.rindex(b"\xff\xda")
    bomb = body + body[last_scan:] * 200 + b"\xff\xd9"
    write(photos / "bomb.jpg", bomb)
    tiff = io_mod.BytesIO()
    Image.fromarray(gradient()).save(tiff, format="TIFF")
    write(photos / "t.tif", tiff.getvalue())
    with pytest.raises(InputError, match=r"/bomb.jpg: a JPEG of \d+ scans is over the limit of 64"):
        acquire([f"{server}/bomb.jpg"], photos)
    with pytest.raises(InputError, match=r"/t.tif: not an image"):
        acquire([f"{server}/t.tif"], photos)
    assert len(acquire([str(photos / "t.tif")], photos)) == 1  # on disk: the user's own file
    progressive = photos / "p.jpg"
    write(progressive, base)
    assert len(acquire([f"{server}/p.jpg"], photos)) == 1  # a normal progressive JPEG downloads fine


@pytest.mark.parametrize("spec", ["/a" * 3000 + ".jpg", "x" * 300 + ".png", "d" * 300 + "/*.jpg"])
def test_a_path_the_file_system_cannot_hold_is_an_input_error(tmp_path, spec):
    """A catalogue cell or recipe path too long for the file system is no such photo, said in one line that shortens
    it (an OSError from stat before: a traceback-like 'error: OSError' and exit 1)."""
    acq = LocalAcquirer()
    for call in (lambda: acq.count([spec], base_dir=tmp_path, limit=64),
                 lambda: acq.acquire([spec], product="p", base_dir=tmp_path)):
        with pytest.raises(InputError, match=r"not a usable path \(File name too long\)") as info:
            call()
        assert len(info.value.one_line()) < 200
