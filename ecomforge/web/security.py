"""Access token, Origin/Host and request-size checks, as plain ASGI middleware in front of the API and the UI."""
from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlencode

from ..errors import UsageError

COOKIE = "ecomforge_token"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def check_bind(host: str, token: str | None) -> None:
    """Any host but loopback needs an access token: refuse to start without one."""
    if host not in LOCAL_HOSTS and not token:
        raise UsageError(f"--host {host} exposes the server beyond this machine: set an access token with "
                         "--token or the ECOMFORGE_TOKEN environment variable (or bind 127.0.0.1)")
    if token is not None and len(token) < 8:
        raise UsageError("the access token must be at least 8 characters")


async def send_json(send, status: int, payload: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """A whole JSON response from inside ASGI middleware."""
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class TokenMiddleware:
    """Every request carries the token (``Authorization: Bearer``, ``?token=`` or the cookie a ``?token=`` visit sets)."""

    def __init__(self, app, token: str | None) -> None:
        self.app = app
        self.token = token

    def _given(self, scope) -> tuple[str | None, bool]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if query.get("token"):
            return query["token"][0], True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                return value, False
        return None, False

    async def __call__(self, scope, receive, send) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        given, from_query = self._given(scope)
        if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            msg = "access token required: send 'Authorization: Bearer TOKEN' or open the page with ?token=TOKEN"
            if given is not None:
                msg = "wrong access token"
            await send_json(send, 401, {"error": msg, "status": 401}, [(b"www-authenticate", b"Bearer")])
            return
        if not from_query or scope["type"] != "http":
            return await self.app(scope, receive, send)
        cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        if scope.get("method") in ("GET", "HEAD") and "text/html" in _headers(scope).get("accept", ""):
            # A page opened with ?token=: set the cookie and load it again without the token, so the
            # token leaves the address bar, the history and any Referer.
            kept = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                                 keep_blank_values=True) if k != "token"]
            # Same origin only: '//evil.example/x' would be another site's address (leading slashes collapsed).
            location = "/" + quote((scope.get("path") or "/").lstrip("/\\")) + (f"?{urlencode(kept)}" if kept else "")
            await send({"type": "http.response.start", "status": 303, "headers": [
                (b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode()),
                (b"content-length", b"0"), (b"cache-control", b"no-store"), (b"referrer-policy", b"no-referrer")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cookie(message) -> None:
            # A browser that opened ?token=... keeps the token in a same-site, script-invisible cookie.
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with 413, by Content-Length or while streaming."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        msg = {"error": f"request body is over the limit of {self.limit} bytes", "status": 413}
        refused = _content_length_refusal(scope, self.limit, msg)
        if refused is not None:
            await send_json(send, *refused)
            return
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await send_json(send, 413, msg)


def _content_length_refusal(scope, limit: int, too_large: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """(status, body) refusing a request by its Content-Length header alone, or None to read the body."""
    for k, v in scope.get("headers", []):
        if k.lower() == b"content-length":
            try:
                size = int(v)
            except ValueError:
                return 400, {"error": "bad Content-Length header", "status": 400}
            if size > limit:
                return 413, too_large
    return None


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


# A Host header: a name or IPv4 address, or an IPv6 address in brackets, each with an optional port; nothing after.
_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+(?:%[\w.~-]+)?)\]|(?P<name>[^\[\]:]*))(?::\d{1,5})?")


def _hostname(hostport: str) -> str:
    """'Example.com:7860' -> 'example.com'; '[::1]:80' -> '::1'; '' for anything else ('[::1].evil.com')."""
    hostport = hostport.strip().lower()
    m = _HOST.fullmatch(hostport)
    if m is None:
        # A bare IPv6 address (no brackets, so no port): the whole of it.
        return hostport if hostport.count(":") > 1 and "[" not in hostport and "]" not in hostport else ""
    return m.group("v6") or m.group("name") or ""


def interface_addresses(fib_trie: str = "/proc/net/fib_trie", if_inet6: str = "/proc/net/if_inet6") -> set[str]:
    """This machine's own IP addresses, without extra packages: Linux's tables, else the default route's."""
    import ipaddress
    import socket

    found: set[str] = set()
    try:
        last = None
        with open(fib_trie, encoding="ascii", errors="replace") as f:
            for line in f:
                text = line.strip()
                if text.startswith("|-- "):
                    last = text[4:].strip()
                elif "/32 host LOCAL" in text and last:
                    found.add(last)
    except OSError:
        pass
    try:
        with open(if_inet6, encoding="ascii", errors="replace") as f:
            for line in f:
                hexaddr = line.split()[0] if line.split() else ""
                if len(hexaddr) == 32:
                    found.add(ipaddress.IPv6Address(int(hexaddr, 16)).compressed)
    except (OSError, ValueError):
        pass
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:  # connecting a UDP socket sends nothing; it picks the address the default route would use
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                found.add(s.getsockname()[0])
        except OSError:
            pass
    return {a for a in found if a and a not in ("0.0.0.0", "::")}


class OriginHostMiddleware:
    """Refuse requests for a Host this server does not answer to (DNS rebinding) and cross-site requests.

    Every mode, loopback without a token included: a page on another site may not submit jobs or read
    results through the user's browser. A request with an ``Origin`` must come from this server's own
    origin (or one the operator allowed); without one, a browser's ``Sec-Fetch-Site: cross-site`` is
    refused except for a plain top-level navigation. CORS stays closed: no ``Access-Control-Allow-*``
    header leaves the server unless the operator allowed that origin.
    """

    def __init__(self, app, hosts: Iterable[str], origins: Iterable[str] = frozenset()) -> None:
        self.app = app
        self.hosts = {h.lower().strip("[]") for h in hosts}
        self.origins = {o.lower().rstrip("/") for o in origins}

    def _refusal(self, scope) -> str | None:
        h = _headers(scope)
        host = h.get("host", "")
        if _hostname(host) not in self.hosts:
            return (f"Host {host[:80]!r} is not a name this server answers to: start the server with "
                    "--allow-host NAME for each name or address browsers use to reach it")
        origin = h.get("origin")
        if origin is not None:
            origin = origin.lower().rstrip("/")
            scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
            if origin != f"{scheme}://{host.lower()}" and origin not in self.origins:
                return f"cross-site request from {origin[:80]!r} refused"
            return None
        site = h.get("sec-fetch-site")
        if site == "cross-site":
            navigation = scope["type"] == "http" and scope.get("method") in ("GET", "HEAD") \
                and h.get("sec-fetch-mode") == "navigate"
            if not navigation:
                return "cross-site request refused"
        return None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refusal = self._refusal(scope)
        if refusal is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await send_json(send, 403, {"error": refusal, "status": 403})
            return
        h = _headers(scope)
        origin = (h.get("origin") or "").lower().rstrip("/")
        cors = [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin"),
                (b"access-control-allow-headers", b"authorization, content-type")] if origin in self.origins else []
        if cors and scope.get("method") == "OPTIONS" and "access-control-request-method" in h:
            await send({"type": "http.response.start", "status": 204,
                        "headers": [*cors, (b"access-control-allow-methods", b"GET, POST")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def closed_cors(message) -> None:
            # Only an origin the operator allowed gets CORS headers, whatever the app behind (Gradio) adds.
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if not k.lower().startswith(b"access-control-")]
                message = {**message, "headers": kept + cors}
            await send(message)

        await self.app(scope, receive, closed_cors)
