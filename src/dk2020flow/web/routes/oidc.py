"""Sign-in by OpenID Connect (single sign-on), when ``WebConfig.oidc`` is set.

``GET /sign-in/oidc`` sends the browser to the provider with a fresh state, nonce and PKCE
challenge, kept in an HttpOnly cookie (SameSite=Lax: the provider's redirect back is a
top-level GET, which carries it), signed with a key the service derives from the
database's (``purpose_key``) and, over https, named ``__Host-…`` (Secure, ``Path=/``, no
``Domain``: a sibling subdomain cannot plant one). ``GET /sign-in/oidc/callback`` takes
the provider's answer: the cookie must be signed by that key and its state the answer's
(the cookie is then deleted, so an answer works once), the code is exchanged and the ID token checked (``web/oidc.py``), and
the address it vouches for is matched by the service (``Accounts.sign_in_with_oidc``). The
start is a link, not a form: the Content-Security-Policy's ``form-action 'self'`` would
stop a form's redirect to the provider.

Without the setting both paths lead to the sign-in page.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dk2020flow.service.accounts import OidcRefusedError
from dk2020flow.service.links import purpose_key
from dk2020flow.web.auth import Principal, anyone
from dk2020flow.web.context import web_context
from dk2020flow.web.oidc import (
    PENDING_LIFETIME,
    PENDING_PURPOSE,
    OidcClient,
    OidcError,
    Pending,
    pending_cookie_name,
)
from dk2020flow.web.routes.auth import _client, _render, _signed_in, _user_agent, accounts, landing
from dk2020flow.web.routes.pages import safe_next

log = logging.getLogger("dk2020flow.web")

router = APIRouter()

Anyone = Annotated[Principal | None, Depends(anyone)]

START = "/sign-in/oidc"
CALLBACK = "/sign-in/oidc/callback"

STATUS: dict[str, int] = {
    "state": 400,
    "denied": 403,
    "provider": 502,
    "token": 400,
    "email": 400,
    "unverified": 403,
    "unknown": 403,
    "subject": 403,
}

_clients_lock = threading.Lock()


def oidc_client(request: Request) -> OidcClient | None:
    """The app's client of the configured provider (None: single sign-on is off).

    Made on first use and kept on ``app.state`` (a test may put its own there, with
    another wall clock)."""
    config = web_context(request).config.oidc
    if config is None:
        return None
    state = request.app.state
    with _clients_lock:
        client: OidcClient | None = getattr(state, "oidc_client", None)
        if client is None or client.config != config:
            client = OidcClient(config)
            state.oidc_client = client
    return client


def _redirect_uri(request: Request) -> str:
    base = web_context(request).config.base_url or str(request.base_url)
    return base.rstrip("/") + CALLBACK


def _problem(request: Request, problem: str, *, address: str = "", name: str = "") -> Response:
    response = _render(
        request,
        "auth/oidc_problem.html",
        {
            "title_key": f"oidc.problem.{problem}.title",
            "text_key": f"oidc.problem.{problem}",
            "address": address,
            "provider": name,
        },
        status_code=STATUS[problem],
    )
    _forget(request, response)
    return response


def _pending_key(request: Request) -> bytes:
    return purpose_key(web_context(request).service, PENDING_PURPOSE)


def _forget(request: Request, response: Response) -> None:
    response.delete_cookie(
        pending_cookie_name(request.url.scheme),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def _to_sign_in(next_path: str) -> Response:
    location = "/sign-in" if next_path == "/" else f"/sign-in?next={quote(next_path, safe='')}"
    return RedirectResponse(location, status_code=303)


@router.get(START)
def start(request: Request, _user: Anyone, next: str = "/") -> Response:
    """To the provider's sign-in page."""
    target = safe_next(next)
    client = oidc_client(request)
    if client is None:
        return _to_sign_in(target)
    try:
        url, pending = client.start(_redirect_uri(request), target)
    except OidcError as failed:
        log.warning(
            "OpenID Connect sign-in cannot start: %s",
            failed,
            extra={"action": "oidc_failed", "fields": {"problem": failed.problem}},
        )
        return _problem(request, failed.problem, name=client.config.name)
    response = RedirectResponse(url, status_code=303)
    # No Domain (the host only) and Path=/: what the __Host- prefix requires over https.
    response.set_cookie(
        pending_cookie_name(request.url.scheme),
        pending.to_cookie(_pending_key(request)),
        max_age=PENDING_LIFETIME,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get(CALLBACK)
def callback(
    request: Request,
    _user: Anyone,
    code: str = "",
    state: str = "",
    error: str = "",
) -> Response:
    """The provider's answer: signed in, or a page that says why not."""
    client = oidc_client(request)
    if client is None:
        return _to_sign_in("/")
    name = client.config.name
    if error:  # (not every provider repeats the state in an error answer)
        log.info(
            "OpenID Connect sign-in not given: %s",
            error[:100],
            extra={"action": "oidc_failed", "fields": {"problem": "denied"}},
        )
        return _problem(request, "denied", name=name)
    # Over https only the __Host- cookie is read: a plain-named one may be a sibling's.
    value = request.cookies.get(pending_cookie_name(request.url.scheme))
    pending = Pending.from_cookie(value, _pending_key(request)) if value else None
    if pending is None or not code or not pending.matches(state, client.wall_clock()):
        log.warning(
            "OpenID Connect answer refused: unknown state or pending cookie",
            extra={"action": "oidc_failed", "fields": {"problem": "state"}},
        )
        return _problem(request, "state", name=name)
    try:
        identity = client.finish(pending, code=code, redirect_uri=_redirect_uri(request))
    except OidcError as failed:
        log.warning(
            "OpenID Connect answer refused: %s",
            failed,
            extra={"action": "oidc_failed", "fields": {"problem": failed.problem}},
        )
        return _problem(request, failed.problem, name=name)
    try:
        cookie, user = accounts(web_context(request)).sign_in_with_oidc(
            identity.email,
            identity.subject,
            client=_client(request),
            user_agent=_user_agent(request),
        )
    except OidcRefusedError as refused:
        log.warning(
            "OpenID Connect sign-in refused: %s",
            refused.problem,
            extra={"action": "oidc_refused", "fields": {"problem": refused.problem}},
        )
        return _problem(request, refused.problem, address=refused.address, name=name)
    response = _signed_in(request, cookie, landing(user.kind, safe_next(pending.next)))
    _forget(request, response)
    return response
