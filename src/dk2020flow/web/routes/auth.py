"""Sign-in, sign-out, the user's own sessions, and the users' administration.

The sign-in link's GET only shows a button: mail scanners (Outlook Safe Links) fetch
every link in a mail, and a token consumed on GET would be burnt before the person
clicks. The POST consumes it. Every rule (rate limits, lifetimes, who may sign in) is
in ``service/accounts.py``; the admin pages call the same methods as ``dk2020flow users``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dk2020flow.errors import Dk2020flowError, NotFoundError
from dk2020flow.service.accounts import (
    PARTICIPANT,
    AccountInputError,
    Accounts,
    RateLimitedError,
    SignInError,
    SignInProblem,
)
from dk2020flow.service.links import CASE_LINK_PATH, CaseLinkError, CaseLinkSignIn
from dk2020flow.service.roles import ACCOUNT_ROLES, ADMIN
from dk2020flow.web.auth import Principal, anyone, require_roles, signed_in
from dk2020flow.web.config import SESSION_COOKIE
from dk2020flow.web.context import WebContext, web_context
from dk2020flow.web.routes.pages import safe_next

log = logging.getLogger("dk2020flow.web")

router = APIRouter()

Anyone = Annotated[Principal | None, Depends(anyone)]
SignedIn = Annotated[Principal, Depends(signed_in)]
Admin = Annotated[Principal, Depends(require_roles(ADMIN))]
Field = Annotated[str, Form()]

PROBLEM_STATUS: dict[SignInProblem, int] = {
    "unknown": 400,
    "expired": 410,
    "used": 410,
    "wrong_code": 400,
}


def accounts(ctx: WebContext) -> Accounts:
    """The service's accounts with the web's configured lifetimes."""
    return Accounts(
        ctx.service,
        link_lifetime=ctx.config.sign_in_link_lifetime,
        session_lifetime=ctx.config.session_lifetime,
    )


def _render(
    request: Request,
    template: str,
    values: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A page of this area (``nav`` marks no menu item unless given)."""
    return web_context(request).renderer.render(
        request, template, {"nav": "", **values}, status_code=status_code, headers=headers
    )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:300]


def _minutes(ctx: WebContext) -> int:
    return round(ctx.config.sign_in_link_lifetime.total_seconds() / 60)


# ---------------------------------------------------------------------- sign-in


@router.get("/sign-in")
def sign_in_page(
    request: Request,
    _user: Anyone,
    next: str = "/",
    email: str = "",
) -> Response:
    """The sign-in form (``email`` fills it in: an expired case link leads here)."""
    return _render(
        request, "auth/sign_in.html", {"next": safe_next(next), "email": email.strip()[:320]}
    )


@router.post("/sign-in")
def request_link(
    request: Request,
    _user: Anyone,
    email: Field = "",
    next: Field = "/",
) -> Response:
    """Send a link (known, active address) or nothing (any other): the same page for both."""
    ctx = web_context(request)
    target = safe_next(next)
    base_url = ctx.config.base_url or str(request.base_url)
    try:
        message_id = accounts(ctx).request_sign_in(
            email, client=_client(request), base_url=base_url, next_path=target
        )
    except RateLimitedError as limited:
        return _limited(request, limited)
    # Sent after the response (the page is the same whether or not there is a mail).
    task = None
    if message_id is not None and ctx.config.deliver_sign_in_mail:
        task = BackgroundTask(deliver_now, ctx, message_id)
    response = _check_mail(request, email.strip(), target)
    response.background = task
    return response


def deliver_now(ctx: WebContext, message_id: int) -> None:
    """Try to send one sign-in mail now; if that fails it stays pending for the daemon."""
    from dk2020flow.notify.transports import MailSettings, transport_from_settings
    from dk2020flow.runtime.delivery import adeliver_message

    service = ctx.service
    try:
        mail = MailSettings()
        transport = transport_from_settings(mail)
        asyncio.run(
            adeliver_message(
                service.store,
                transport,
                message_id,
                now=ctx.config.clock.now(),
                settings=service.settings,
                rng=random.Random(),
                sender=(mail.mail_sender_name, mail.mail_sender),
            )
        )
    except Exception as exc:  # the daemon sends it later; never fail the page for it
        log.warning(
            "sign-in mail left for the daemon: %s",
            type(exc).__name__,
            extra={"action": "sign_in_mail_deferred", "fields": {"outbox_id": message_id}},
        )


def _check_mail(
    request: Request, email: str, target: str, *, error: str = "", status: int = 200
) -> Response:
    ctx = web_context(request)
    return _render(
        request,
        "auth/check_mail.html",
        {"email": email, "next": target, "minutes": _minutes(ctx), "error": error},
        status_code=status,
    )


def _limited(request: Request, limited: RateLimitedError) -> Response:
    minutes = max(1, round(limited.retry_after.total_seconds() / 60))
    return _render(
        request,
        "auth/problem.html",
        {"title_key": "auth.limited.title", "text_key": "auth.limited", "minutes": minutes},
        status_code=429,
        headers={"Retry-After": str(int(limited.retry_after.total_seconds()))},
    )


def _problem(request: Request, problem: SignInProblem) -> Response:
    return _render(
        request,
        "auth/problem.html",
        {
            "title_key": f"auth.problem.{problem}.title",
            "text_key": f"auth.problem.{problem}",
            "minutes": 0,
        },
        status_code=PROBLEM_STATUS[problem],
    )


@router.get("/sign-in/link")
def link_page(
    request: Request,
    _user: Anyone,
    token: str = "",
    next: str = "/",
) -> Response:
    """A button that signs in (the GET consumes nothing: mail scanners fetch links)."""
    ctx = web_context(request)
    problem = accounts(ctx).link_problem(token) if token else "unknown"
    if problem is not None:
        return _problem(request, problem)
    return _render(request, "auth/link.html", {"token": token, "next": safe_next(next)})


PORTAL = "/portal"


def landing(kind: str, target: str) -> str:
    """Where a new session goes: a participant to the portal (the console's pages are
    not theirs), unless the link asked for a page of it."""
    if kind != PARTICIPANT or target == PORTAL or target.startswith(PORTAL + "/"):
        return target
    return PORTAL


def _signed_in(request: Request, token: str, target: str) -> Response:
    ctx = web_context(request)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(ctx.config.session_lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-in/link")
def use_link(
    request: Request,
    _user: Anyone,
    token: Field = "",
    next: Field = "/",
) -> Response:
    ctx = web_context(request)
    try:
        cookie, user = accounts(ctx).sign_in_with_link(
            token, client=_client(request), user_agent=_user_agent(request)
        )
    except SignInError as refused:
        return _problem(request, refused.problem)
    return _signed_in(request, cookie, landing(user.kind, safe_next(next)))


# ---------------------------------------------------------------------- case links in mail


def case_links(ctx: WebContext) -> CaseLinkSignIn:
    """Sign-in by a case link (``service/links.py``) with the web's session lifetime."""
    return CaseLinkSignIn(ctx.service, session_lifetime=ctx.config.session_lifetime)


def _case_link_problem(request: Request, refused: CaseLinkError) -> Response:
    """An expired link leads to the sign-in page (the address filled in, the case
    next); any other shows why, with the way to the sign-in page."""
    if refused.problem == "expired":
        ctx = web_context(request)
        return RedirectResponse(case_links(ctx).sign_in_page(refused.target), status_code=303)
    return _render(
        request,
        "auth/problem.html",
        {"title_key": "case_link.unknown.title", "text_key": "case_link.unknown", "minutes": 0},
        status_code=400,
    )


@router.get(CASE_LINK_PATH)
def case_link_page(request: Request, user: Anyone, token: str = "") -> Response:
    """A button that signs in and opens the case; the GET signs nobody in (mail
    scanners fetch links). Someone signed in already as the link's person goes
    straight to the case."""
    ctx = web_context(request)
    signing = case_links(ctx)
    try:
        target = signing.check(token[:200])
    except CaseLinkError as refused:
        return _case_link_problem(request, refused)
    if user is not None and user.email == target.email:
        return RedirectResponse(signing.landing(user.kind, target.case_id), status_code=303)
    return _render(request, "auth/case_link.html", {"token": token, "email": target.email})


@router.post(CASE_LINK_PATH)
def use_case_link(request: Request, _user: Anyone, token: Field = "") -> Response:
    ctx = web_context(request)
    signing = case_links(ctx)
    try:
        cookie, user, target = signing.sign_in(
            token[:200], client=_client(request), user_agent=_user_agent(request)
        )
    except CaseLinkError as refused:
        return _case_link_problem(request, refused)
    return _signed_in(request, cookie, signing.landing(user.kind, target.case_id))


@router.post("/sign-in/code")
def use_code(
    request: Request,
    _user: Anyone,
    email: Field = "",
    code: Field = "",
    next: Field = "/",
) -> Response:
    ctx = web_context(request)
    target = safe_next(next)
    try:
        cookie, user = accounts(ctx).sign_in_with_code(
            email, code, client=_client(request), user_agent=_user_agent(request)
        )
    except RateLimitedError as limited:
        return _limited(request, limited)
    except SignInError as refused:
        tr = ctx.renderer.translator(request)
        text = tr.t(f"auth.problem.{refused.problem}")
        return _check_mail(request, email.strip(), target, error=text, status=400)
    return _signed_in(request, cookie, landing(user.kind, target))


@router.post("/sign-out")
def sign_out(request: Request, _user: Anyone) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        web_context(request).service.accounts.sign_out(token)
    # To the front page (which, signed out, leads to the sign-in page with next=/).
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


# ---------------------------------------------------------------------- the account page


@router.get("/account")
def account_page(request: Request, user: SignedIn) -> Response:
    ctx = web_context(request)
    return _render(
        request,
        "account/sessions.html",
        {
            "sessions": ctx.service.accounts.sessions(user.user_id),
            "revoked": request.query_params.get("revoked") == "1",
        },
    )


@router.post("/account/sessions/{session_id}/revoke")
def revoke_session(request: Request, session_id: int, user: SignedIn) -> Response:
    web_context(request).service.accounts.revoke_session(user.user_id, session_id)
    if session_id == user.session_id:
        return sign_out(request, user)
    return RedirectResponse("/account?revoked=1", status_code=303)


# ---------------------------------------------------------------------- users (admin)


def _users_page(
    request: Request,
    *,
    error: AccountInputError | None = None,
    form: dict[str, Any] | None = None,
    notice: tuple[str, str] | None = None,
    status: int = 200,
) -> Response:
    ctx = web_context(request)
    accounts = ctx.service.accounts
    return _render(
        request,
        "admin/users.html",
        {
            "nav": "nav.users",
            "users": accounts.list_users(),
            # The loaded workflows' roles (titled as they title them), then admin, read_only.
            "workflow_roles": accounts.workflow_role_titles(),
            "account_roles": ACCOUNT_ROLES,
            "error": error,
            "form": form or {"email": "", "name": "", "roles": [], "language": ""},
            "notice": notice,
        },
        status_code=status,
    )


@router.get("/admin/users")
def users_page(request: Request, _user: Admin) -> Response:
    notice = None
    for key in ("added", "disabled"):
        if request.query_params.get(key):
            message = "users.added" if key == "added" else "users.disabled_done"
            notice = (message, request.query_params[key])
    return _users_page(request, notice=notice)


@router.post("/admin/users")
def add_user(
    request: Request,
    user: Admin,
    email: Field = "",
    name: Field = "",
    roles: Annotated[list[str] | None, Form()] = None,
    language: Field = "",
) -> Response:
    try:
        added = web_context(request).service.accounts.add_user(
            email, name, roles or [], actor=user.email, language=language or None
        )
    except AccountInputError as bad:
        form = {"email": email, "name": name, "roles": roles or [], "language": language}
        return _users_page(request, error=bad, form=form, status=422)
    return RedirectResponse(f"/admin/users?added={quote(added.email)}", status_code=303)


@router.post("/admin/users/{user_id}/disable")
def disable_user(request: Request, user_id: int, user: Admin) -> Response:
    service = web_context(request).service
    found = next((u for u in service.accounts.list_users() if u.id == user_id), None)
    if found is None:
        raise NotFoundError(f"there is no user {user_id}")
    if found.id == user.user_id:
        raise Dk2020flowError("you cannot disable your own account here; ask another admin")
    service.accounts.disable_user(found.email, actor=user.email)
    return RedirectResponse(f"/admin/users?disabled={quote(found.email)}", status_code=303)
