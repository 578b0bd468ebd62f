"""Files the server serves and Gradio's file access: the same headers everywhere, nothing outside Gradio's uploads."""
from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any

from .security import send_json

# Files we serve hold prompts and user uploads: never let one run script on this origin or be sniffed as HTML.
FILE_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
# report.html is a page of the job's own images. Sandboxed, it would have an opaque origin, so a browser would
# send its image requests as cross-site (refused by OriginHostMiddleware): it gets a policy that loads images
# from this server only, and still runs no script, sends no form, takes no <base> and is framed by no page.
REPORT_CSP = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'")
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
INLINE_TYPES = (b"image/png", b"image/jpeg", b"image/webp", b"image/gif", b"text/html")
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/", "/file=")
# Gradio routes the UI never needs: a reverse proxy, and the run history (every user's inputs and outputs).
CLOSED_ROUTES = ("/gradio_api/proxy=", "/gradio_api/run-history", "/proxy=")
CALL_ROUTES = ("/gradio_api/queue/join", "/gradio_api/run/", "/gradio_api/call/", "/gradio_api/api/",
               "/gradio_api/stream/")
# What a served file's answer may carry. Gradio's ranged answers copy every request header into the
# response (the token cookie and Authorization included); nothing outside this list leaves the server.
FILE_RESPONSE_HEADERS = frozenset({b"content-type", b"content-length", b"content-range", b"accept-ranges",
                                   b"content-disposition", b"content-encoding", b"etag", b"last-modified",
                                   b"cache-control", b"expires", b"date", b"vary"})


def file_headers(content_type: bytes, *, csp: str = FILE_CSP, filename: str | None = None) -> list[tuple[bytes, bytes]]:
    """The headers every file we serve carries: a CSP (sandboxing unless told), nosniff, and attachment unless it
    is shown inline; one Content-Disposition at most (a browser refuses a download with two)."""
    headers = [(b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff")]
    if content_type.split(b";")[0].strip().lower() not in INLINE_TYPES:
        if filename is not None and not _FILENAME.fullmatch(filename):
            raise ValueError(f"not a download name: {filename!r}")  # our own names only (a job id and a suffix)
        headers.append((b"content-disposition", b"attachment" + (f'; filename="{filename}"'.encode() if filename
                                                                   else b"")))
    return headers


class GradioFileGuard:
    """Gradio's file routes and API calls held to what the UI needs.

    ``/gradio_api/file=`` serves only files inside Gradio's own upload/cache folder (uploads and the
    copies Gradio makes of what the UI shows), judged on the real path (links and ``/proc/self/fd``
    followed, case kept), never a URL; with the same headers as the API's files, and no header of the
    request echoed back. FileData inputs in API calls may only name files in that folder, and never a
    URL. A multipart request (an upload) holds at most ``max_upload_files`` files and ``max_upload_bytes``.
    """

    def __init__(self, app, upload_folder: str, allow_urls: bool = False, max_body: int = 4 * 1024 * 1024,
                 max_upload_files: int = 8, max_upload_bytes: int = 161 * 1024 * 1024) -> None:
        self.app = app
        self.upload_folder = os.path.realpath(upload_folder)
        self.allow_urls = allow_urls
        self.max_body = max_body
        self.max_upload_files = max_upload_files  # files in one multipart request to Gradio (an upload)
        self.max_upload_bytes = max_upload_bytes

    def servable(self, path: str) -> bool:
        """True for a file inside Gradio's upload folder (the real path decides)."""
        if not path or "\x00" in path or _URLISH.match(path):
            return False
        real = os.path.realpath(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
        return real.startswith(self.upload_folder + os.sep) and os.path.isfile(real)

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(CLOSED_ROUTES):
            await send_json(send, 404, {"error": "not found", "status": 404})
            return
        prefix = next((p for p in FILE_ROUTES if path.startswith(p)), None)
        if prefix is not None:
            if not self.servable(path[len(prefix):]):
                await send_json(send, 404, {"error": "no such file", "status": 404})
                return
            return await self.app(scope, receive, _with_file_headers(send, scope))
        if scope["type"] == "http" and scope.get("method") == "POST" and _boundary(scope) is not None \
                and not path.startswith(("/api/", "/login")):
            return await self._upload(scope, receive, send)
        if scope["type"] == "http" and scope.get("method") == "POST" and path.startswith(CALL_ROUTES):
            body = await _read_body(receive, self.max_body)
            if body is None:
                await send_json(send, 413, {"error": f"request body is over {self.max_body} bytes", "status": 413})
                return
            refusal = self._file_data_refusal(body)
            if refusal is not None:
                await send_json(send, 403, {"error": refusal, "status": 403})
                return
            return await self.app(scope, _replay(body), send)
        return await self.app(scope, receive, send)

    async def _upload(self, scope, receive, send) -> None:
        """A multipart request to Gradio (its upload route), spooled and counted before Gradio sees it.

        One over the file count or the byte limit is refused before Gradio stores any of it: what Gradio
        stores stays until the server stops.
        """
        boundary = _boundary(scope)
        if not boundary:
            await send_json(send, 400, {"error": "a multipart body needs a boundary", "status": 400})
            return
        too_many = {"error": f"an upload may hold at most {self.max_upload_files} files", "status": 413}
        too_large = {"error": f"an upload may hold at most {self.max_upload_bytes} bytes", "status": 413}
        for k, v in scope.get("headers", []):
            if k.lower() == b"content-length" and v.isdigit() and int(v) > self.max_upload_bytes:
                await send_json(send, 413, too_large)
                return
        counter = _PartCounter(boundary)
        with tempfile.TemporaryFile(prefix="ecomforge-upload-") as spool:
            size = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_upload_bytes:
                    await send_json(send, 413, too_large)
                    return
                if counter.feed(chunk) > self.max_upload_files:
                    await send_json(send, 413, too_many)
                    return
                spool.write(chunk)
                if not message.get("more_body"):
                    break
            if counter.finish() > self.max_upload_files:
                await send_json(send, 413, too_many)
                return
            if counter.malformed:
                await send_json(send, 400, {"error": "not a multipart body", "status": 400})
                return
            spool.seek(0)
            await self.app(scope, _replay_file(spool), send)

    def _file_data_refusal(self, body: bytes) -> str | None:
        try:
            data = json.loads(body or b"null")
        except (ValueError, RecursionError):
            return None  # not JSON: Gradio answers it
        # Gradio reads an input file from its "path" ("url" is only for showing it), and downloads a URL path.
        if _depth(data) > MAX_DEPTH:  # past it the walk below would stop looking: refuse rather than pass
            return "a request nested too deeply"
        for item in _file_data(data):
            value = item.get("path")
            if not isinstance(value, str):
                continue
            if _URLISH.match(value):
                if not self.allow_urls:
                    return "a file input may not be a URL"
            elif not self.servable(value):
                return "a file input may only be a file uploaded to this server"
        return None


_URLISH = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*:|//|\\\\)")


MAX_DEPTH = 50


def _depth(data: Any) -> int:
    """How deeply lists and objects nest in a JSON value (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH and isinstance(value, (dict, list)):
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def _file_data(data: Any, depth: int = 0):
    """Every dict in a JSON value that is a Gradio FileData (``meta._type`` or a ``path`` key)."""
    if depth > MAX_DEPTH:
        return
    if isinstance(data, dict):
        meta = data.get("meta")
        if (isinstance(meta, dict) and meta.get("_type") == "gradio.FileData") or "path" in data:
            yield data
        for v in data.values():
            yield from _file_data(v, depth + 1)
    elif isinstance(data, list):
        for v in data:
            yield from _file_data(v, depth + 1)


async def _read_body(receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _boundary(scope) -> bytes | None:
    """The multipart boundary of a request, read as Gradio's parser reads it; None when it is not multipart.

    The same parser on both sides: a header with two ``boundary`` parameters would otherwise be counted by
    one boundary and stored by the other.
    """
    from python_multipart.multipart import parse_options_header

    for k, v in scope.get("headers", []):
        if k.lower() == b"content-type":
            kind, params = parse_options_header(v)
            if kind != b"multipart/form-data":
                return None
            if len(re.findall(rb"(?:^|;)\s*boundary\s*=", v, re.IGNORECASE)) > 1:
                return b""  # two boundaries: which one a parser takes is its choice, so neither
            return params.get(b"boundary", b"").strip()
    return None


class _PartCounter:
    """Counts a multipart body's parts as it streams, with the parser Starlette (and so Gradio) reads it with."""

    def __init__(self, boundary: bytes) -> None:
        from python_multipart.multipart import MultipartParser

        self.parts = 0
        self.malformed = False  # the parser gave up: the body is refused (Gradio's parser would refuse it too)
        self._parser = MultipartParser(boundary, callbacks={"on_part_begin": self._begin})

    def _begin(self) -> None:
        self.parts += 1

    def feed(self, chunk: bytes) -> int:
        if not self.malformed:
            try:
                self._parser.write(chunk)
            except Exception:
                self.malformed = True
        return self.parts

    def finish(self) -> int:
        """The count once the body has ended."""
        if not self.malformed:
            try:
                self._parser.finalize()
            except Exception:
                self.malformed = True
        return self.parts


def _replay_file(spool):
    """A receive() that gives the app a spooled body, a chunk at a time."""
    done = False

    async def receive():
        nonlocal done
        if done:
            return {"type": "http.disconnect"}
        chunk = spool.read(1024 * 1024)
        more = bool(chunk) and spool.tell() < os.fstat(spool.fileno()).st_size
        done = not more
        return {"type": "http.request", "body": chunk, "more_body": more}

    return receive


def _with_file_headers(send, scope=None):
    request = {(k.lower(), v) for k, v in (scope or {}).get("headers", [])}

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            # Only the headers a file answer needs, and none that merely repeats the request (a reflected cookie,
            # a Content-Type the request sent): of the framing headers, the answer's own where both are there.
            given = [(k, v) for k, v in message.get("headers", []) if k.lower() in FILE_RESPONSE_HEADERS]
            names = [k.lower() for k, _ in given]
            headers = [(k, v) for k, v in given if (k.lower(), v) not in request
                       or (k.lower() in (b"content-type", b"content-length", b"content-range")
                           and names.count(k.lower()) == 1)]
            ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"application/octet-stream")
            extra = file_headers(ctype)
            if any(k == b"content-disposition" for k, _ in extra):
                # One Content-Disposition (Chromium refuses a download with two): Gradio's own attachment, which
                # names the file, else ours.
                own = [(k, v) for k, v in headers if k.lower() == b"content-disposition"
                       and v.strip().lower().startswith(b"attachment")][:1]
                headers = [(k, v) for k, v in headers if k.lower() != b"content-disposition"] + own
                extra = [(k, v) for k, v in extra if not (own and k == b"content-disposition")]
            message = {**message, "headers": headers + extra}
        await send(message)

    return wrapped
