"""A login form for token mode: a browser without the token gets a page to type it in, not a 401 JSON body.

ASGI middleware placed outside ``TokenMiddleware``: it answers only page loads (GET of an HTML page outside
/api and Gradio's routes) that carry no valid token, and ``POST /login``. Everything else passes through,
so API clients still get the JSON 401 and the token check stays in one place.
"""
from __future__ import annotations

import hmac
import html
from urllib.parse import parse_qs

from .security import COOKIE

LOGIN_PATH = "/login"
MAX_FORM_BYTES = 4096
# Routes that are never a page: API clients and Gradio's own calls keep the JSON 401.
NOT_PAGES = ("/api", "/gradio_api", "/docs", "/openapi.json", "/redoc")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ecomforge · sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{font-family: system-ui, sans-serif; background: #f8fafc; display: flex; justify-content: center;
       align-items: center; min-height: 90vh; margin: 0; color: #111827}}
form {{background: white; padding: 28px 32px; border-radius: 12px; box-shadow: 0 2px 12px #0001; width: 360px}}
h1 {{font-size: 20px; margin: 0 0 6px}} p {{color: #4b5563; font-size: 14px}}
input {{width: 100%; box-sizing: border-box; padding: 9px; font-size: 15px; border: 1px solid #cbd5e1;
        border-radius: 6px; margin: 6px 0 14px}}
button {{width: 100%; padding: 10px; font-size: 15px; background: #4f46e5; color: white; border: 0;
         border-radius: 6px; cursor: pointer}}
.error {{color: #b91c1c; font-weight: 600}}
</style></head>
<body><form method="post" action="{action}">
<h1>ecomforge</h1>
<p>This server needs its access token (the one given to <code>ecomforge serve --token</code>).</p>
{error}
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<button type="submit">Sign in</button>
</form></body></html>
"""


def login_html(error: str | None = None) -> bytes:
    """The sign-in page, with an error line when a wrong token was typed."""
    line = f"<p class='error'>{html.escape(error)}</p>" if error else ""
    return PAGE.format(action=LOGIN_PATH, error=line).encode()


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _has_token(scope, token: str) -> bool:
    """The same three places ``TokenMiddleware`` reads: bearer header, ``?token=``, the cookie."""
    headers = _headers(scope)
    given = []
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given.append(auth[7:].strip())
    given += parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])[:1]
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            given.append(value)
    return any(hmac.compare_digest(g.encode(), token.encode()) for g in given)


def _is_page_load(scope) -> bool:
    path = scope.get("path", "/")
    if scope.get("method") not in ("GET", "HEAD") or any(path == p or path.startswith(p + "/") for p in NOT_PAGES):
        return False
    return "text/html" in _headers(scope).get("accept", "")


async def _send_page(send, status: int, body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
        (b"x-frame-options", b"DENY"), *extra]})
    await send({"type": "http.response.body", "body": body})


async def _read_form(receive) -> dict[str, list[str]] | None:
    """The urlencoded body, or None when it is over ``MAX_FORM_BYTES``."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_FORM_BYTES:
            return None
        if not message.get("more_body"):
            return parse_qs(body.decode("utf-8", "replace"))


class LoginPage:
    """Serves the sign-in form to browsers without the token; a right token sets the cookie and goes to /."""

    def __init__(self, app, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send) -> None:
        if self.token is None or scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope.get("path") == LOGIN_PATH and scope.get("method") == "POST":
            return await self._login(receive, send)
        if scope.get("path") == LOGIN_PATH or (_is_page_load(scope) and not _has_token(scope, self.token)):
            return await _send_page(send, 401, login_html())
        return await self.app(scope, receive, send)

    async def _login(self, receive, send) -> None:
        assert self.token is not None  # only called in token mode
        form = await _read_form(receive)
        given = ((form or {}).get("token") or [""])[0]
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            return await _send_page(send, 401, login_html("wrong access token" if given else "type the access token"))
        # The same same-site, script-invisible cookie a ?token= visit sets; the token never sits in a URL.
        cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", b"/"), (b"set-cookie", cookie.encode()), (b"content-length", b"0"),
            (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": b""})
