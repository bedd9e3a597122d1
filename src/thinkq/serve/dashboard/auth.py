"""Signing in to the live page: a browser cannot send ``Authorization`` when it navigates.

``GET /thinkq/?key=KEY`` with the gateway's key answers ``303 See Other`` to the same
path without the query (``/thinkq`` signs in to ``/thinkq/`` too), setting a cookie
``thinkq_session``: HttpOnly, ``SameSite=Strict``, ``Path=/thinkq``, holding
HMAC-SHA256(key, :data:`PURPOSE`) in hex, a token derived from the key and not the key
itself (it stays valid until the key changes, across restarts and across the gateways of
a fleet). A wrong key in the query is a 401 like any other. The cookie is accepted on
``GET`` (and ``HEAD``) of ``/thinkq/`` paths only: the page, its scripts,
``/thinkq/dashboard.json`` and ``/thinkq/state``; never on the generation endpoints,
``/v1/models`` or ``/metrics``, where only ``Authorization: Bearer`` counts, so that a
page elsewhere cannot spend the key through the browser. ``Authorization: Bearer`` works
on every path, the page's too.

The access log of ``thinkq serve`` is off and nothing here logs the path or the
query, so the key sent in a query reaches no log; the redirect takes it out of the
address bar (it stays in the browser's history: sign in from a private window on a
shared machine).
"""

from __future__ import annotations

import hashlib
import hmac
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, quote

from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from thinkq.web import page

__all__ = ["COOKIE", "HEADERS", "PREFIX", "PURPOSE", "SignIn", "sign_in_form", "token"]

#: The cookie's name.
COOKIE = "thinkq_session"
#: The paths the cookie opens (GET only), and the cookie's ``Path``.
PREFIX = "/thinkq/"
#: What the token signs, so that it is good for this use only.
PURPOSE = b"thinkq dashboard session v1"
_READ = frozenset({"GET", "HEAD"})
_PAGE = PREFIX.rstrip("/")  # /thinkq, which the router redirects to /thinkq/
#: Headers of the page's responses: no caching, no referrer, no framing, own scripts only.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
}


def token(key: bytes) -> str:
    """The cookie's value for ``key``: HMAC-SHA256(key, :data:`PURPOSE`), hex."""
    return hmac.new(key, PURPOSE, hashlib.sha256).hexdigest()


def _cookie(scope: Scope) -> str:
    header = b"; ".join(v for k, v in scope["headers"] if k == b"cookie")
    try:
        jar = SimpleCookie(header.decode("latin-1"))
    except CookieError:
        return ""
    morsel = jar.get(COOKIE)
    return "" if morsel is None else morsel.value


def _browser(scope: Scope) -> bool:
    """Whether a request without ``Authorization`` asks for HTML (a browser navigating)."""
    headers = dict(scope["headers"])
    return b"authorization" not in headers and b"text/html" in headers.get(b"accept", b"")


def sign_in_form(*, wrong: bool = False) -> Response:
    """401 with a form that signs in (``GET /thinkq/?key=...``), for a browser."""
    note = '<p class="tq-message tq-error">Wrong key.</p>' if wrong else ""
    body = (
        '<header class="tq-header"><h1>thinkq gateway</h1></header><main class="tq-main">'
        f'<section class="tq-card"><h2>Sign in</h2>{note}<form method="get" action="/thinkq/">'
        '<p class="tq-note">The gateway\'s API key (its --api-key-env variable):</p>'
        '<input type="password" name="key" autocomplete="current-password" autofocus '
        'style="padding: 6px 8px; min-width: 280px"> '
        '<button class="tq-button" type="submit">Sign in</button></form></section></main>'
    )
    response = HTMLResponse(page(title="thinkq: sign in", body=body, assets=("thinkq.css",)), 401)
    response.headers.update(HEADERS | {"WWW-Authenticate": "Bearer"})
    return response


class SignIn:
    """The page's sign-in in front of the key check ``guarded`` (``app`` behind it).

    A ``GET`` of a ``/thinkq/`` path with ``?key=`` and the right key signs in (303
    and the cookie); one with the right cookie (and no key) goes straight to ``app``;
    a browser's ``GET /thinkq/`` without either (no ``Authorization`` header, HTML
    accepted) gets 401 with a sign-in form; everything else goes to ``guarded``
    (401 unless a right Bearer header comes with it).
    """

    def __init__(self, guarded: ASGIApp, app: ASGIApp, *, api_key: str) -> None:
        self.guarded, self.app = guarded, app
        self.key = api_key.encode()
        self.token = token(self.key).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reading = scope["type"] == "http" and scope["method"] in _READ
        path = scope["path"] if reading else ""
        if not (path.startswith(PREFIX) or path == _PAGE):
            await self.guarded(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        given = parse_qs(query, keep_blank_values=True).get("key")
        if given is not None and hmac.compare_digest(given[-1].encode(), self.key):
            await self._signed_in(PREFIX if path == _PAGE else path)(scope, receive, send)
            return
        cookie = _cookie(scope).encode("latin-1", "replace")
        if given is None and hmac.compare_digest(cookie, self.token):
            await self.app(scope, receive, send)
            return
        if path in (PREFIX, _PAGE) and _browser(scope):
            await sign_in_form(wrong=given is not None)(scope, receive, send)
            return
        await self.guarded(scope, receive, send)

    def _signed_in(self, path: str) -> Response:
        response = Response(status_code=303, headers={"Location": quote(path)})
        response.set_cookie(
            COOKIE, self.token.decode(), path=PREFIX.rstrip("/"), httponly=True,
            samesite="strict", secure=False,
        )  # fmt: skip
        response.headers.update(HEADERS)
        return response
