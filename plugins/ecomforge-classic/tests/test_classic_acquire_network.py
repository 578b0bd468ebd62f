"""URL downloads: the timeout is a deadline for the whole download, and non-public hosts are refused by default."""
from __future__ import annotations

import http.server
import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from ecomforge.errors import InputError
from ecomforge_classic.acquire import LocalAcquirer


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        if self.path == "/drip":  # one byte every 0.2 s for a minute: each read is quick, the whole is not
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(300):
                    self.wfile.write(b"\xff")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/secret.png")
            self.end_headers()
            return
        if self.path == "/secret.png":
            data = _png()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(404)
        self.end_headers()


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _acquire(url: str, tmp_path, **config):
    return LocalAcquirer(config).acquire([url], product="mug", base_dir=tmp_path)


def test_a_dripping_server_is_cut_off_at_the_deadline(server, tmp_path):
    with pytest.raises(InputError, match=r"/drip: the download took longer than 1 s \(timeout\)"):
        _acquire(f"{server}/drip", tmp_path, timeout=1, allow_private_hosts=True)


def test_a_loopback_url_is_refused_by_default(server, tmp_path):
    with pytest.raises(InputError, match=r"/secret.png: the host '127.0.0.1' is a non-public address"):
        _acquire(f"{server}/secret.png", tmp_path)
    assert len(_acquire(f"{server}/secret.png", tmp_path, allow_private_hosts=True)) == 1


def test_a_redirect_to_a_loopback_address_is_refused(server, tmp_path, monkeypatch):
    import ecomforge_classic.acquire as acquire

    # the first URL passes as a public host would; the redirect it answers with names 127.0.0.1
    real = acquire.check_host
    monkeypatch.setattr(acquire, "check_host",
                        lambda url, allow: None if url.endswith("/redirect") else real(url, allow))
    with pytest.raises(InputError, match=r"/secret.png: the host '127.0.0.1' is a non-public address"):
        _acquire(f"{server}/redirect", tmp_path)
    assert len(_acquire(f"{server}/redirect", tmp_path, allow_private_hosts=True)) == 1  # allowed: followed


@pytest.mark.parametrize("url", ["http://10.0.0.1/a.png", "http://169.254.169.254/latest", "http://[::1]/a.png",
                                 "http://[::ffff:127.0.0.1]/a.png", "http://0.0.0.0/a.png", "http://localhost/a.png"])
def test_private_link_local_and_mapped_addresses_are_refused(url, tmp_path):
    with pytest.raises(InputError, match="non-public address"):
        _acquire(url, tmp_path)


def test_a_catalogue_cannot_allow_private_hosts(tmp_path):
    from ecomforge.recipe.catalog import read_catalog

    (tmp_path / "c.csv").write_text("product,references,acquire.config.allow_private_hosts\nvase,a.png,true\n")
    with pytest.raises(InputError, match=r"c.csv: line 2: column 'acquire.config.allow_private_hosts': a catalogue "
                                         "may not set acquire settings"):
        read_catalog(tmp_path / "c.csv")
