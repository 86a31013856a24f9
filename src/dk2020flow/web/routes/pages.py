"""Pages outside the console's areas: the language switch, the accessibility
statement, and a health probe for the reverse proxy."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from dk2020flow.definition.model import Links, text_in
from dk2020flow.web.auth import Principal, anyone
from dk2020flow.web.config import LANGUAGE_COOKIE
from dk2020flow.web.context import web_context
from dk2020flow.web.i18n import language_of

router = APIRouter()


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go on to (never another site: ``//evil`` and ``https:`` refused)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


@router.get("/language")
def switch_language(
    request: Request,
    lang: str,
    next: str = "/",
    _user: Principal | None = Depends(anyone),
) -> Response:
    """Set the page language (a cookie; nothing is stored on the server) and go back; a
    value that is no language keeps the page's."""
    current = web_context(request).renderer.translator(request).language
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        LANGUAGE_COOKIE,
        language_of(lang, current),
        max_age=365 * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/tilgaengelighed")
def accessibility_statement(
    request: Request, _user: Principal | None = Depends(anyone)
) -> Response:
    """The accessibility statement (tilgængelighedserklæring, which Danish public bodies
    must have): of the programme's console and portal, with its help contact and its
    country's law and enforcement body from the workflow (``links``); none named when
    there is no one programme or its workflow names none."""
    renderer = web_context(request).renderer
    workflow = renderer.programme(request).workflow
    links = workflow.links if workflow is not None else Links()
    language = renderer.translator(request).text_language
    return renderer.render(
        request,
        "accessibility.html",
        {
            "help_name": links.help_name.strip(),
            "help_email": links.help_email.strip(),
            "enforcement": text_in(links.accessibility_enforcement, language).strip(),
        },
    )


@router.get("/healthz")
def health(request: Request, _user: Principal | None = Depends(anyone)) -> Response:
    """For a reverse proxy or systemd: 200 when the database answers."""
    web_context(request).service.daemons()
    return PlainTextResponse("ok")
