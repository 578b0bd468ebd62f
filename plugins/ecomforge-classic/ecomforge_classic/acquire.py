"""The ``local`` acquirer: reference images from files, folders, globs and http(s) URLs."""
from __future__ import annotations

import hashlib
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
            if target.exists() and not target.is_dir() and not target.is_file():
                raise InputError(f"{target}: not a regular file (a device, a pipe or a socket)")
            if target.is_file():  # a file that exists as named ('can[1].jpg') is that file, not a pattern
                return [target]
            if target.is_dir():
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
    ``allow_private``) a URL or redirect whose host resolves to a non-public address; failures raise InputError."""
    import time
    import urllib.error

    deadline = time.monotonic() + timeout
    check_host(url, allow_private)
    opener = urllib.request.build_opener(_CheckedRedirects(allow_private))
    request = urllib.request.Request(url, headers={"User-Agent": "ecomforge"})
    try:
        with opener.open(request, timeout=timeout) as response:  # scheme checked; each redirect's host too
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise InputError(f"{url}: {length} bytes is over the limit of {max_bytes} (max_bytes)")
            data = _read_body(response, url, deadline, timeout, max_bytes)
    except InputError:
        raise
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, InputError):
            raise exc.reason from exc
        raise InputError(f"{url}: cannot download ({exc.reason})") from exc
    except TimeoutError as exc:
        raise InputError(f"{url}: the download took longer than {timeout:g} s (timeout)") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{url}: cannot download ({type(exc).__name__}: {exc})") from exc
    if len(data) > max_bytes:
        raise InputError(f"{url}: the download is over the limit of {max_bytes} bytes (max_bytes)")
    return data


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
    import ipaddress
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
        mapped = getattr(address, "ipv4_mapped", None)
        if not (mapped or address).is_global:
            raise InputError(f"{url}: the host {host!r} is a non-public address ({address}): refused",
                             hint="set acquire.config.allow_private_hosts: true in the recipe to download from "
                                  "your own network")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to an http(s) URL whose host passes ``check_host``."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_host(newurl, self.allow_private)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


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
