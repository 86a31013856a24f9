"""Pages and page parts from the same templates.

``render(request, "cases/list.html", {...})`` renders a whole page. With
``block="table"`` it renders only that block of the template (jinja2-fragments):
an htmx request (``HX-Request`` header) that asks for part of a page gets exactly
the HTML the full page has there, so a page without JavaScript and one with it show
the same thing. Autoescaping is on for every template: case data is never rendered
unescaped (``tests/web`` checks an organisation named ``<script>…``).

The pages take the programme's identity from its workflow (``service.programme``):
the layout's header and footer name it (``programme_name``), the tables and forms call
its participants by its noun (``participant()``: "Kommune", "City"; "Organisation"
when it names none), and a reader who has chosen no language reads the programme's
first one. The programme is looked up once per request, through the service (which
keeps it for ``PROGRAMME_LIFETIME``, so a page costs no read transaction for it), and
a page renders without it when it cannot be read (an error page still renders).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2_fragments import render_block
from starlette.requests import Request
from starlette.responses import HTMLResponse

from dk2020flow.definition.model import Workflow, text_in
from dk2020flow.web.auth import current_principal
from dk2020flow.web.config import LANGUAGE_COOKIE
from dk2020flow.web.context import web_context
from dk2020flow.web.i18n import TEXT_FALLBACK, Translator, language_of
from dk2020flow.web.security import CSRF_FIELD, csrf_token

TEMPLATES = Path(__file__).parent / "templates"

log = logging.getLogger("dk2020flow.web")


@dataclass(frozen=True, slots=True)
class PageProgramme:
    """What a page shows of the programme: its one workflow (``None``: several or none)
    and the language a reader who has chosen none reads (``None``: English)."""

    workflow: Workflow | None = None
    language: str | None = None


NO_PROGRAMME = PageProgramme()


class Renderer:
    def __init__(self, timezone: str) -> None:
        """Pages in ``timezone``; the programme is read through the request's service."""
        from jinja2 import Environment

        self.timezone = timezone
        self.read_programme: Callable[[Request], PageProgramme] = _programme_of_service
        """How a request's programme is found (a test may replace it)."""
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.globals["urlencode"] = urlencode
        self.env.globals["text_in"] = text_in  # a workflow's Text (a title) in a language
        self.env.filters["in_sentence"] = in_sentence

    def translator(self, request: Request) -> Translator:
        opens_in = self.programme(request).language or TEXT_FALLBACK
        return Translator(language(request, opens_in), self.timezone)

    def programme(self, request: Request) -> PageProgramme:
        """The request's programme, looked up once per request."""
        found = getattr(request.state, "programme", None)
        if not isinstance(found, PageProgramme):
            try:
                found = self.read_programme(request)
            except Exception as error:  # the page (an error page, too) renders without it
                log.warning(
                    "the programme could not be read: %s: %s",
                    type(error).__name__,
                    error,
                    extra={"action": "web_programme"},
                )
                found = NO_PROGRAMME
            request.state.programme = found
        return found

    def context(self, request: Request, values: Mapping[str, Any]) -> dict[str, Any]:
        tr = self.translator(request)
        workflow = self.programme(request).workflow
        name = "" if workflow is None else text_in(workflow.title, tr.text_language).strip()

        def participant(of: Workflow | None = None) -> str:
            """The noun for a participant of ``of`` (a case's workflow), else of the
            programme, in the page's language."""
            return participant_noun(of or workflow, tr)

        return {
            "request": request,
            "user": current_principal(request),
            "tr": tr,
            "t": tr.t,
            # The page's texts' language (da or en: English for a reader of any other,
            # whose dates and numbers `tr` still writes in theirs): <html lang>, the
            # programme's titles and the language switch follow the texts.
            "lang": tr.text_language,
            "programme_name": name,
            "participant": participant,
            "csrf_field": CSRF_FIELD,
            "csrf_token": csrf_token(request),
            "is_htmx": is_htmx(request),
            "nav": "",  # the menu item to mark; none unless the page says (error pages)
            **values,
        }

    def render(
        self,
        request: Request,
        template: str,
        values: Mapping[str, Any] | None = None,
        *,
        block: str | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        context = self.context(request, values or {})
        if block is not None:
            html = render_block(self.env, template, block, context)
        else:
            html = self.env.get_template(template).render(context)
        return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (it then swaps in a part of the page)."""
    return request.headers.get("hx-request") == "true"


def language(request: Request, opens_in: str = TEXT_FALLBACK) -> str:
    """The page's language: the user's choice (cookie), else the account's, else
    ``opens_in`` (the programme's first language)."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen:
        return language_of(chosen, opens_in)
    principal = current_principal(request)
    return language_of(principal.language if principal else None, opens_in)


def participant_noun(workflow: Workflow | None, tr: Translator) -> str:
    """What ``workflow`` calls a participant (``participant: {da: Kommune, en:
    Municipality}``) in the page's language, as a column header writes it; the
    console's word ("Organisation") when there is no workflow or it names none."""
    noun = "" if workflow is None else text_in(workflow.participant, tr.text_language).strip()
    return noun or tr.t("common.participant")


def in_sentence(noun: str) -> str:
    """A header's noun as a Danish or English sentence writes it: ``Kommune`` →
    ``kommune``, ``City`` → ``city``; one whose second letter is a capital (``EU city``)
    is left as it is."""
    if len(noun) > 1 and noun[0].isupper() and noun[1].islower():
        return noun[0].lower() + noun[1:]
    return noun


def _programme_of_service(request: Request) -> PageProgramme:
    from dk2020flow.service.programme import programme, programme_language

    service = web_context(request).service
    return PageProgramme(workflow=programme(service), language=programme_language(service))
