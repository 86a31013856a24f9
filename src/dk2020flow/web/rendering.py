"""Pages and page parts from the same templates.

``render(request, "cases/list.html", {...})`` renders a whole page. With
``block="table"`` it renders only that block of the template (jinja2-fragments):
an htmx request (``HX-Request`` header) that asks for part of a page gets exactly
the HTML the full page has there, so a page without JavaScript and one with it show
the same thing. Autoescaping is on for every template: case data is never rendered
unescaped (``tests/web`` checks an organisation named ``<script>…``).

The layout's header and footer name the programme (``programme_name()`` in a
template): the title of the workflow the database holds, read through the service
(``service.programme``) only when a page renders them — once per page, never for a
part of a page — and none when it cannot be read (an error page still renders).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2_fragments import render_block
from starlette.requests import Request
from starlette.responses import HTMLResponse

from dk2020flow.web.auth import current_principal
from dk2020flow.web.config import LANGUAGE_COOKIE
from dk2020flow.web.i18n import Translator, language_of
from dk2020flow.web.security import CSRF_FIELD, csrf_token

TEMPLATES = Path(__file__).parent / "templates"

log = logging.getLogger("dk2020flow.web")

ProgrammeName = Callable[[str], str]
"""The programme's name in a language (``""`` for none): ``service.programme.programme_name``."""


class Renderer:
    def __init__(self, timezone: str, *, programme: ProgrammeName | None = None) -> None:
        from jinja2 import Environment

        self.timezone = timezone
        self.programme = programme
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.globals["urlencode"] = urlencode

    def translator(self, request: Request) -> Translator:
        return Translator(language(request), self.timezone)

    def programme_name(self, language: str) -> Callable[[], str]:
        """The programme's name in ``language``, read when first asked for and then kept
        (a page's header, title and footer ask for it several times)."""
        found: list[str] = []

        def name() -> str:
            if not found:
                found.append(self._read_programme(language))
            return found[0]

        return name

    def _read_programme(self, language: str) -> str:
        if self.programme is None:
            return ""
        try:
            return self.programme(language)
        except Exception as error:  # the page (an error page, too) renders without it
            log.warning(
                "the programme's name could not be read: %s: %s",
                type(error).__name__,
                error,
                extra={"action": "web_programme_name"},
            )
            return ""

    def context(self, request: Request, values: Mapping[str, Any]) -> dict[str, Any]:
        tr = self.translator(request)
        return {
            "request": request,
            "user": current_principal(request),
            "tr": tr,
            "t": tr.t,
            # The page's texts' language (da or en: English for a reader of any other,
            # whose dates and numbers `tr` still writes in theirs): <html lang>, the
            # programme's titles and the language switch follow the texts.
            "lang": tr.text_language,
            "programme_name": self.programme_name(tr.text_language),
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


def language(request: Request) -> str:
    """The page's language: the user's choice (cookie), else the account's, else Danish."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen:
        return language_of(chosen)
    principal = current_principal(request)
    return language_of(principal.language if principal else None)
