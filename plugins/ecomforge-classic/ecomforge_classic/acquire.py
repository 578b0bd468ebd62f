"""The ``local`` acquirer: reference images from files, folders, globs and http(s) URLs."""
from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from ecomforge.errors import InputError
from ecomforge.stages import Acquirer, StageConfig
from ecomforge.types import Reference

from .decode import DEFAULT_MAX_PIXELS, decode_image

DEFAULT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
_GLOB_CHARS = re.compile(r"[*?\[]")
# Files and folders one pattern or folder may look at: '/**/*.png' would otherwise walk the whole disk.
MAX_VISITED = 10_000


class LocalAcquirer(Acquirer):
    """Loads reference photos from local paths and URLs, in spec order, dropping byte-identical duplicates.

    A download is someone else's file: it may only be PNG, JPEG or WebP, and a JPEG that would cost out of
    proportion to decode (a scan repeated, a broken segment, overlapping metadata) is refused before it is read."""

    name = "local"
    default = True  # what a recipe without an `acquire:` step uses

    class Config(StageConfig):
        max_pixels: int = Field(DEFAULT_MAX_PIXELS, gt=0,
                                description="Largest accepted image (width × height), checked before decoding "
                                            "as a decompression-bomb guard.")
        max_bytes: int = Field(50_000_000, gt=0, description="Largest accepted file or download, in bytes.")
        timeout: float = Field(20.0, gt=0, description="Seconds a whole URL download may take (connecting, "
                                                       "redirects and the body together) before it is given up.")
        allow_private_hosts: bool = Field(False, description="Download from hosts that resolve to loopback, private, "
                                                             "link-local or other non-public addresses (a URL or "
                                                             "any redirect); off: such a URL is refused.")
        extensions: tuple[str, ...] = Field(DEFAULT_EXTENSIONS,
                                            description="File suffixes picked up from folders and globs "
                                                        "(case-insensitive); files named directly are always read.")

    def acquire(self, specs: Sequence[str], *, product: str, base_dir: Path) -> list[Reference]:
        """Load every image the specs name: files, folders (sorted), globs (sorted) and URLs."""
        if isinstance(specs, str):
            specs = [specs]
        if not specs:
            raise InputError(f"product '{product}': no references given (inputs.references is empty)")
        references: list[Reference] = []
        seen: set[str] = set()
        names: set[str] = set()
        for spec in specs:
            for source, data in self._expand(str(spec), Path(base_dir)):
                digest = hashlib.sha256(data).hexdigest()
                if digest in seen:
                    continue  # the same photo listed twice would double its weight in scoring
                seen.add(digest)
                # a download is someone else's file: held to what its pixels cost (imaging.decode, untrusted)
                rgb, alpha = decode_image(data, what=source, max_pixels=self.config.max_pixels,
                                          untrusted=_is_url(source))
                name = _unique_name(len(references), names)
                references.append(Reference(image=rgb, source=source, sha256=digest, alpha=alpha,
                                            product=product, name=name))
        if not references:
            raise InputError(f"product '{product}': no images found in {', '.join(map(str, specs))}")
        return references

    def count(self, specs: Sequence[str], *, base_dir: Path, limit: int) -> int:
        """The files and URLs the specs name (before duplicates are dropped), up to ``limit + 1``; a spec that names
        nothing counts 0 here (acquiring says what is missing)."""
        total = 0
        for spec in [specs] if isinstance(specs, str) else specs:
            if re.match(r"^[a-z][a-z0-9+.-]*://", str(spec), re.IGNORECASE):
                total += 1
            else:
                total += len(self._resolve(str(spec), Path(base_dir), missing_ok=True))
            if total > limit:
                break
        return total

    def _expand(self, spec: str, base_dir: Path):
        """Yield (source, bytes) for one spec, in a deterministic order."""
        if _is_url(spec):
            yield spec, fetch_url(spec, timeout=self.config.timeout, max_bytes=self.config.max_bytes,
                                  allow_private=self.config.allow_private_hosts)
            return
        if re.match(r"^[a-z][a-z0-9+.-]*://", spec, re.IGNORECASE):
            raise InputError(f"{spec}: only local paths and http(s) URLs are supported")
        for path in self._resolve(spec, base_dir):
            yield str(path), self._read(path)

    def _resolve(self, spec: str, base_dir: Path, *, missing_ok: bool = False) -> list[Path]:
        """The files a path, folder or glob names: relative to the current directory first, then the recipe's.

        A path that exists as written is used as it is, even with glob characters in its name (``can[1].jpg``).
        """
        expanded = os.path.expanduser(spec)
        same = Path(base_dir).resolve() == Path.cwd().resolve()
        roots = [Path.cwd()] if os.path.isabs(expanded) or same else [Path.cwd(), base_dir]
        is_glob = bool(_GLOB_CHARS.search(expanded))
        empty: Path | None = None
        for root in roots:
            target = root / expanded
            try:
                exists, is_dir, is_file = target.exists(), target.is_dir(), target.is_file()
            except OSError as exc:  # a name too long for the file system, and the like: no such photo
                short = spec if len(spec) <= 80 else f"{spec[:60]}... ({len(spec)} characters)"
                raise InputError(f"{short}: not a usable path ({exc.strerror or exc})") from exc
            if exists and not is_dir and not is_file:
                raise InputError(f"{target}: not a regular file (a device, a pipe or a socket)")
            if is_file:  # a file that exists as named ('can[1].jpg') is that file, not a pattern
                return [target]
            if is_dir:
                files = sorted(p for p in _capped(target.iterdir(), spec) if p.is_file() and self._wanted(p))
                if files:
                    return files
                empty = target
            elif is_glob:
                hits = sorted(Path(p) for p in capped_glob(str(target), spec))
                files = [p for p in hits if p.is_file() and self._wanted(p)]
                if files:
                    return files
        if missing_ok:
            return []
        if empty is not None:
            raise InputError(f"{empty}: the folder holds no images ({' '.join(self.config.extensions)})")
        # An absolute path was looked for only where it says; a relative one in each root.
        where = "" if os.path.isabs(expanded) else f" (looked in {_where(roots)})"
        if is_glob:
            raise InputError(f"{spec}: the pattern matches no image files{where}")
        raise InputError(f"{spec}: no such file or folder{where}")

    def _wanted(self, path: Path) -> bool:
        return path.suffix.lower() in {e.lower() if e.startswith(".") else "." + e.lower()
                                       for e in self.config.extensions}

    def _read(self, path: Path) -> bytes:
        """The file's bytes, refusing files over ``max_bytes`` before reading them."""
        try:
            size = path.stat().st_size
            if size > self.config.max_bytes:
                raise InputError(f"{path}: {size} bytes is over the limit of {self.config.max_bytes} (max_bytes)")
            return path.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _capped(entries: Any, spec: str, walk: Any = None) -> Any:
    """``entries``, refusing to look at more than ``MAX_VISITED`` of them (in all, over a whole ``walk``)."""
    for n, entry in enumerate(entries, 1):
        if walk is not None:
            walk.seen += 1
            n = walk.seen
        if n > MAX_VISITED:
            raise InputError(f"{spec}: looks at more than {MAX_VISITED} files and folders (the limit): name a "
                             "narrower folder or pattern")
        yield entry


def capped_glob(pattern: str, spec: str) -> list[str]:
    """``glob.glob(pattern, recursive=True)`` that looks at no more than ``MAX_VISITED`` directory entries in all
    (``**`` does not follow symbolic links: a link loop is not walked forever); hidden names match only a
    pattern that starts with '.', as in ``glob``."""
    parts = Path(pattern).parts
    first = next((i for i, p in enumerate(parts) if _GLOB_CHARS.search(p)), len(parts))
    if first == len(parts):
        return [pattern] if os.path.lexists(pattern) else []
    return _Walk(spec).walk(os.path.join(*parts[:first]) if first else os.curdir, parts[first:])


class _Walk:
    """One capped glob: every directory entry it looks at counts against ``MAX_VISITED``."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.seen = 0

    def entries(self, folder: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(folder) as it:
                return list(_capped(it, self.spec, self))
        except OSError:
            return []

    def walk(self, folder: str, rest: tuple[str, ...]) -> list[str]:
        import fnmatch

        if not rest:
            return [folder]
        head, tail = rest[0], rest[1:]
        if head == "**":
            out = self.walk(folder, tail)
            for entry in self.entries(folder):
                if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                    out += self.walk(entry.path, rest)
            return out
        if not _GLOB_CHARS.search(head):
            path = os.path.join(folder, head)
            return self.walk(path, tail) if os.path.lexists(path) else []
        out = []
        for entry in self.entries(folder):
            hidden = entry.name.startswith(".") and not head.startswith(".")
            if not hidden and fnmatch.fnmatch(entry.name, head) and (not tail or entry.is_dir()):
                out += self.walk(entry.path, tail)
        return out


def _is_url(spec: str) -> bool:
    return re.match(r"^https?://", spec, re.IGNORECASE) is not None


def fetch_url(url: str, *, timeout: float, max_bytes: int, allow_private: bool = False) -> bytes:
    """Download a URL within ``timeout`` seconds in all, refusing more than ``max_bytes`` and (unless
    ``allow_private``) a URL or redirect whose host resolves to a non-public address; failures raise InputError.

    The deadline covers every redirect hop, the headers and the body: each connection gets only the time left,
    a redirect is not followed once it has passed, and a watchdog shuts the sockets down when it comes (a server
    that drips its headers a byte a second is cut off there too)."""
    import http.client

    check_host(url, allow_private)
    with _Deadline(timeout) as clock:
        late = f"{url}: the download took longer than {timeout:g} s (timeout)"
        opener = urllib.request.build_opener(_CheckedRedirects(allow_private, clock, late),
                                             _DeadlineHTTPHandler(clock), _DeadlineHTTPSHandler(clock))
        request = urllib.request.Request(url, headers={"User-Agent": "ecomforge"})
        try:
            with opener.open(request, timeout=clock.left()) as response:  # scheme checked; each redirect's too
                if clock.left() <= 0:
                    raise InputError(late)
                length = response.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > max_bytes:
                    raise InputError(f"{url}: {length} bytes is over the limit of {max_bytes} (max_bytes)")
                data = _read_body(response, url, clock.deadline, timeout, max_bytes)
                if clock.expired:  # the watchdog's shutdown reads as the end of the body: it is cut short
                    raise InputError(late)
        except InputError:
            raise
        except (OSError, ValueError, http.client.HTTPException) as exc:
            if clock.expired or clock.left() <= 0:  # the watchdog shut the socket: whatever broke, it was late
                raise InputError(late) from exc
            raise _download_error(url, exc, late) from exc
    if len(data) > max_bytes:
        raise InputError(f"{url}: the download is over the limit of {max_bytes} bytes (max_bytes)")
    return data


def _download_error(url: str, exc: BaseException, late: str) -> InputError:
    """The one-line InputError for a failed download."""
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return InputError(f"{url}: HTTP {exc.code} {exc.reason}")
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, InputError):
            return exc.reason
        if isinstance(exc.reason, TimeoutError):
            return InputError(late)
        return InputError(f"{url}: cannot download ({exc.reason})")
    if isinstance(exc, TimeoutError):
        return InputError(late)
    return InputError(f"{url}: cannot download ({type(exc).__name__}: {exc})")


class _Deadline:
    """One download's deadline: the time left for each connection, and a watchdog that shuts every socket the
    download opened down when the deadline comes (a read in progress then ends at once)."""

    def __init__(self, timeout: float) -> None:
        import threading
        import time

        self._now = time.monotonic
        self.deadline = self._now() + timeout
        self.expired = False
        self._lock = threading.Lock()
        self._socks: list[Any] = []
        self._timer = threading.Timer(timeout, self._expire)
        self._timer.daemon = True

    def left(self) -> float:
        return self.deadline - self._now()

    def watch(self, sock: Any) -> Any:
        """``sock``, watched: a duplicate of it is shut down at the deadline (the same connection, whatever
        wraps the original later, TLS included)."""
        dup = sock.dup()
        with self._lock:
            self._socks.append(dup)
            if self.expired:
                _shutdown(dup)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                _shutdown(sock)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()


def _shutdown(sock: Any) -> None:
    import socket

    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _watched(base: Any, clock: _Deadline) -> Any:
    """``base`` (an http.client connection class) whose sockets ``clock`` watches."""

    class Watched(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            make = self._create_connection
            self._create_connection = lambda *a, **k: clock.watch(make(*a, **k))

    return Watched


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, clock: _Deadline) -> None:
        import http.client

        super().__init__()
        self._connection = _watched(http.client.HTTPConnection, clock)

    def http_open(self, req: Any) -> Any:
        return self.do_open(self._connection, req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, clock: _Deadline) -> None:
        import http.client

        super().__init__()
        self._connection = _watched(http.client.HTTPSConnection, clock)

    def https_open(self, req: Any) -> Any:
        return self.do_open(self._connection, req, context=self._context)  # type: ignore[attr-defined]


def _read_body(response: Any, url: str, deadline: float, timeout: float, max_bytes: int) -> bytes:
    """The body, up to one byte more than ``max_bytes``, read by the deadline: a server that sends a byte a
    second holds the run no longer than ``timeout`` in all."""
    import time

    sock = getattr(getattr(response.fp, "raw", None), "_sock", None)
    chunks: list[bytes] = []
    got = 0
    while got <= max_bytes:  # one byte more tells an oversized body apart
        left = deadline - time.monotonic()
        if left <= 0:
            raise InputError(f"{url}: the download took longer than {timeout:g} s (timeout)")
        if sock is not None:
            sock.settimeout(left)  # a read waits no longer than the time the whole download has left
        chunk = response.read1(min(65536, max_bytes + 1 - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def check_host(url: str, allow_private: bool) -> None:
    """Refuse a URL whose host resolves to a loopback, private, link-local or otherwise non-global address: a
    catalogue (often someone else's export) must not make ecomforge reach into the operator's own network."""
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise InputError(f"{url}: only http(s) URLs are downloaded")
    if allow_private:
        return
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme.lower() == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise InputError(f"{url}: cannot download (cannot resolve host {host!r})") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not is_public_address(address):
            raise InputError(f"{url}: the host {host!r} is a non-public address ({address}): refused",
                             hint="set acquire.config.allow_private_hosts: true in the recipe to download from "
                                  "your own network")


def is_public_address(address: Any) -> bool:
    """Whether ``address`` (an ``ipaddress`` IPv4Address or IPv6Address) is global, and so is every IPv4 address
    an IPv6 form carries (IPv4-mapped and -translated, IPv4-compatible, 6to4, Teredo, NAT64): ``64:ff9b::7f00:1``
    reaches 127.0.0.1 through a NAT64 gateway though ``is_global`` calls it public. 192.0.0.0/24 (IETF protocol
    assignments) counts as non-global."""
    if isinstance(address, ipaddress.IPv6Address):
        if not address.is_global:
            return False
        if address in _NAT64_LOCAL:  # RFC 8215 local-use NAT64: the IPv4 may sit anywhere in it
            return False
        return all(is_public_address(v4) for v4 in _embedded_ipv4(address))
    return address.is_global and address not in _IETF_PROTOCOL


def _embedded_ipv4(address: Any) -> list[Any]:
    """The IPv4 addresses an IPv6 address carries, by the forms that route or translate to them."""
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in net for net in _LOW32_FORMS):
        found.append(low)
    return found


# Forms whose last 32 bits are an IPv4 address: NAT64 well-known (RFC 6052), IPv4-compatible (::/96) and
# IPv4-translated (::ffff:0:0:0/96, RFC 2765).
_LOW32_FORMS = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IETF_PROTOCOL = ipaddress.IPv4Network("192.0.0.0/24")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to an http(s) URL whose host passes ``check_host``, and only before the deadline:
    the next hop gets the time left, not a fresh timeout."""

    def __init__(self, allow_private: bool, clock: _Deadline, late: str) -> None:
        self.allow_private = allow_private
        self.clock = clock
        self.late = late

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        left = self.clock.left()
        if left <= 0:
            raise InputError(self.late)
        check_host(newurl, self.allow_private)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        req.timeout = left  # urllib opens the next hop with the old request's timeout
        fp.close()  # the redirect's own body is not read (a slow one would not count against the deadline)
        return new


def _unique_name(index: int, taken: set[str]) -> str:
    """A short file-safe stem: '00', '01', ...; a clash gets '-2', '-3'."""
    base = f"{index:02d}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


def _where(roots: list[Path]) -> str:
    return " and ".join(str(r) for r in roots)
