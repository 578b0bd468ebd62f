"""The ``local`` acquirer: reference images from files, folders, globs and http(s) URLs."""
from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from ecomforge.errors import InputError
from ecomforge.stages import Acquirer, StageConfig
from ecomforge.types import Reference

from .decode import DEFAULT_MAX_PIXELS, decode_image

DEFAULT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
_GLOB_CHARS = re.compile(r"[*?\[]")


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
        timeout: float = Field(20.0, gt=0, description="Seconds to wait on a URL before giving up.")
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

    def _expand(self, spec: str, base_dir: Path):
        """Yield (source, bytes) for one spec, in a deterministic order."""
        if _is_url(spec):
            yield spec, fetch_url(spec, timeout=self.config.timeout, max_bytes=self.config.max_bytes)
            return
        if re.match(r"^[a-z][a-z0-9+.-]*://", spec, re.IGNORECASE):
            raise InputError(f"{spec}: only local paths and http(s) URLs are supported")
        for path in self._resolve(spec, base_dir):
            yield str(path), self._read(path)

    def _resolve(self, spec: str, base_dir: Path) -> list[Path]:
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
            if target.is_file():  # a file that exists as named ('can[1].jpg') is that file, not a pattern
                return [target]
            if target.is_dir():
                files = sorted(p for p in target.iterdir() if p.is_file() and self._wanted(p))
                if files:
                    return files
                empty = target
            elif is_glob:
                hits = sorted(Path(p) for p in glob.glob(str(target), recursive=True))
                files = [p for p in hits if p.is_file() and self._wanted(p)]
                if files:
                    return files
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


def _is_url(spec: str) -> bool:
    return re.match(r"^https?://", spec, re.IGNORECASE) is not None


def fetch_url(url: str, *, timeout: float, max_bytes: int) -> bytes:
    """Download a URL with a timeout, refusing more than ``max_bytes``; failures raise InputError."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "ecomforge"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # scheme checked
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise InputError(f"{url}: {length} bytes is over the limit of {max_bytes} (max_bytes)")
            data = response.read(max_bytes + 1)  # one byte more tells an oversized body apart
    except InputError:
        raise
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise InputError(f"{url}: cannot download ({exc.reason})") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{url}: cannot download ({type(exc).__name__}: {exc})") from exc
    if len(data) > max_bytes:
        raise InputError(f"{url}: the download is over the limit of {max_bytes} bytes (max_bytes)")
    return data


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
