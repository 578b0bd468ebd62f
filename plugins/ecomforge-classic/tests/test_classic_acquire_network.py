"""URL downloads: the timeout is a deadline for the whole download (redirects and headers too), and non-public hosts,
IPv6 forms that carry one included, are refused by default."""
from __future__ import annotations

import http.server
import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from ecomforge.errors import InputError
from ecomforge_classic.acquire import LocalAcquirer, check_host


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
        try:
            # The chains end in a 404: followed to the end (each read inside its own timeout, the old behaviour),
            # the download fails with 'HTTP 404'; cut off at the deadline, with the timeout message.
            if self.path.startswith("/hop/"):  # each hop waits 0.6 s, well within the timeout on its own
                n = int(self.path.rsplit("/", 1)[1])
                time.sleep(0.6)
                self.send_response(302)
                self.send_header("Location", f"/hop/{n - 1}" if n > 1 else "/gone")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/header-drip":  # a header a byte every 0.1 s for 4 s, then a 404
                self.wfile.write(b"HTTP/1.0 404 Not Found\r\nX-Slow: ")
                for _ in range(40):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
                self.wfile.write(b"\r\nContent-Length: 0\r\n\r\n")
                return
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass


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


def test_a_redirect_chain_longer_than_the_timeout_fails_at_the_deadline(server, tmp_path):
    with pytest.raises(InputError, match=r"/hop/1: HTTP 404"):  # a short chain is followed to its end
        _acquire(f"{server}/hop/1", tmp_path, timeout=5, allow_private_hosts=True)
    with pytest.raises(InputError, match=r"/hop/5: the download took longer than 1.5 s \(timeout\)"):
        _acquire(f"{server}/hop/5", tmp_path, timeout=1.5, allow_private_hosts=True)


def test_headers_dripped_past_the_timeout_fail_at_the_deadline(server, tmp_path):
    with pytest.raises(InputError, match=r"/header-drip: the download took longer than 1 s \(timeout\)"):
        _acquire(f"{server}/header-drip", tmp_path, timeout=1, allow_private_hosts=True)


# --- check_host: literal addresses, resolved without DNS ------------------------------------------


@pytest.mark.parametrize("host", [
    "[64:ff9b::7f00:1]",        # NAT64 well-known prefix -> 127.0.0.1
    "[64:ff9b::a00:1]",         # NAT64 -> 10.0.0.1
    "[64:ff9b:1::7f00:1]",      # NAT64 local-use prefix
    "[2002:7f00:1::]",          # 6to4 -> 127.0.0.1
    "[2002:a9fe:a9fe::1]",      # 6to4 -> 169.254.169.254
    "[::127.0.0.1]",            # IPv4-compatible
    "[::ffff:0:7f00:1]",        # IPv4-translated
    "[::ffff:127.0.0.1]",       # IPv4-mapped
    "192.0.0.8",                # IETF protocol assignments
    "192.0.0.9",
])
def test_embedded_non_public_ipv4_is_refused(host):
    with pytest.raises(InputError, match=r"/a.png: the host .* is a non-public address .*: refused"):
        check_host(f"http://{host}/a.png", False)


@pytest.mark.parametrize("host", ["8.8.8.8", "[64:ff9b::808:808]", "[2002:808:808::1]", "[2606:4700::1111]"])
def test_public_addresses_pass(host):
    check_host(f"http://{host}/a.png", False)


def test_allow_private_lets_them_through():
    check_host("http://[64:ff9b::7f00:1]/a.png", True)
