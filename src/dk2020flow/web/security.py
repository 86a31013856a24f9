"""Response headers every page gets, and the CSRF check every unsafe request passes.

CSRF is a double-submit token: a random value in a cookie (``dk2020flow_csrf``,
HttpOnly, SameSite=Strict) that every form repeats in a hidden ``csrf_token`` field
and every htmx request in the ``X-CSRF-Token`` header (``base.html`` sets both). A
POST, PUT, PATCH or DELETE whose token is missing or differs is refused with 403
before its endpoint runs, and a request whose ``Origin`` names another site too.
The session cookie is SameSite=Lax besides, so a cross-site form never carries it.

The REST API under ``/api`` is outside all of this: it is its own application (the
console's app-wide CSRF dependency does not reach it), it authenticates by bearer token
only and never reads a cookie — so a forged cross-site request, which can carry the
browser's cookies but not an ``Authorization`` header, gets nothing from it — and it
is sent no CSRF cookie.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dk2020flow.web.config import CSRF_COOKIE

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
STREAMED_UPLOAD = "dk2020flow_streamed_upload"
"""Set on an endpoint by ``web.uploads.streamed``: it reads its multipart body as it
arrives and checks the form's CSRF token itself (``MultipartUpload.check_csrf``)."""
API_PATH = "/api"
"""The REST API's mount: bearer tokens, no cookies, so outside the CSRF machinery."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # The sign-in link carries its token in the URL: never send it on in a Referer.
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


class CsrfRefused(Exception):  # noqa: N818 - named as the refusal it is
    """An unsafe request without the right CSRF token (answered with 403)."""


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response, and a CSRF cookie
    set on the first response to a browser that has none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _is_api(scope):
            await self._api(scope, receive, send)
            return
        request = Request(scope)
        existing = request.cookies.get(CSRF_COOKIE)
        token = existing if _well_formed(existing) else secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf_token"] = token
        secure = request.url.scheme == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if existing != token:
                    cookie = f"{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
                    headers.append("set-cookie", cookie + ("; Secure" if secure else ""))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The REST API (``/api``) gets the headers but no cookie: it reads none (bearer
        tokens only), so it needs no CSRF token and sets none."""

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_api(scope: Scope) -> bool:
    path = str(scope.get("path", ""))
    return path == API_PATH or path.startswith(API_PATH + "/")


def _well_formed(token: str | None) -> bool:
    return token is not None and 20 <= len(token) <= 100 and token.isascii()


def csrf_token(request: Request) -> str:
    """The token this request's forms must carry (set by ``SecurityHeaders``)."""
    return str(request.state.csrf_token)


async def check_csrf(request: Request) -> None:
    """An app-wide dependency: refuse an unsafe request without the right token."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
        raise CsrfRefused("the request came from another site")
    expected = request.cookies.get(CSRF_COOKIE)
    if not _well_formed(expected):
        raise CsrfRefused("the form is missing its security token")
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data") and getattr(
            request.scope.get("endpoint"), STREAMED_UPLOAD, False
        ):
            return  # the endpoint's receiver checks the token before it reads the file
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()  # Starlette keeps it: the endpoint reads it again
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
    if given is None or not hmac.compare_digest(given.encode(), str(expected).encode()):
        raise CsrfRefused("the form's security token does not match")
