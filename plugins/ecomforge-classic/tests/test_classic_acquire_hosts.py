"""IPv6 forms that carry a non-public IPv4 address are refused; the download deadline covers redirects and headers."""
from __future__ import annotations

import http.server
import threading
import time

import pytest

from ecomforge.errors import InputError
from ecomforge_classic.acquire import LocalAcquirer, check_host

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


# --- the deadline over redirects and headers --------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
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


def test_a_redirect_chain_longer_than_the_timeout_fails_at_the_deadline(server, tmp_path):
    with pytest.raises(InputError, match=r"/hop/1: HTTP 404"):  # a short chain is followed to its end
        _acquire(f"{server}/hop/1", tmp_path, timeout=5, allow_private_hosts=True)
    with pytest.raises(InputError, match=r"/hop/5: the download took longer than 1.5 s \(timeout\)"):
        _acquire(f"{server}/hop/5", tmp_path, timeout=1.5, allow_private_hosts=True)


def test_headers_dripped_past_the_timeout_fail_at_the_deadline(server, tmp_path):
    with pytest.raises(InputError, match=r"/header-drip: the download took longer than 1 s \(timeout\)"):
        _acquire(f"{server}/header-drip", tmp_path, timeout=1, allow_private_hosts=True)
