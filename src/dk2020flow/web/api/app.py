"""``create_api``: the REST API as its own FastAPI application, mounted at ``/api``.

Its own application, so that its OpenAPI document (``/api/v1/openapi.json``) holds the
API alone (the console has none), every answer under ``/api`` — an unknown path, a
wrong method, a request FastAPI refuses, an error — is a problem (``problems``), and
none of the console's cookie machinery (sessions, the CSRF check) is in its way: the
API reads no cookie and sets none.

The document is FastAPI's, finished here: every error answer of every operation is a
``Problem`` as ``application/problem+json`` (401 with ``WWW-Authenticate``, 429 with
``Retry-After``), so a client (and schemathesis) can rely on it.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.requests import Request
from starlette.responses import HTMLResponse

from dk2020flow import __version__
from dk2020flow.clock import Clock, SystemClock
from dk2020flow.web.api import (
    routes_cases,
    routes_changes,
    routes_operations,
    routes_programme,
)
from dk2020flow.web.api.context import ApiContext
from dk2020flow.web.api.problems import add_problem_handlers, openapi_problem
from dk2020flow.web.api.ratelimit import ApiSettings, SlidingWindowLimiter, load_api_settings
from dk2020flow.web.api.schemas import Problem

if TYPE_CHECKING:
    from dk2020flow.service.core import Service

PREFIX = "/v1"
MOUNT = "/api"
ROUTERS = (
    routes_programme.router,
    routes_cases.router,
    routes_changes.router,
    routes_operations.router,
)
DESCRIPTION = """\
dk2020flow's REST API: the programme's workflows, organisations, cases (their fields,
deadlines, checklists, documents and history), the changes people make to them (firing a
trigger, moving a deadline, recording a checklist, handing in a document), the outbox,
the programme report and the scheduler's health. docs/api.md is the guide.

Authenticate with `Authorization: Bearer <token>` (`dk2020flow tokens create`). Errors are
RFC 9457 problems (`application/problem+json`).
"""


def create_api(
    service: Service,
    clock: Clock,
    *,
    settings: ApiSettings | None = None,
    rate_clock: Clock | None = None,
) -> FastAPI:
    """The API over ``service`` (the console's; the app closes it), judging by ``clock``.
    ``rate_clock`` is the rate limiter's (the machine's by default; a test moves its own)."""
    settings = settings or load_api_settings()
    api = FastAPI(
        title="dk2020flow API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    api.state.api = ApiContext(
        service=service,
        clock=clock,
        limiter=SlidingWindowLimiter(
            settings.per_worker(),
            dt.timedelta(seconds=settings.api_rate_window_seconds),
            rate_clock or SystemClock(),
        ),
    )
    for router in ROUTERS:
        api.include_router(router, prefix=PREFIX)
    add_problem_handlers(api)
    api.openapi = lambda: _openapi(api)  # type: ignore[method-assign]

    @api.get(f"{PREFIX}/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(_docs_page(api, str(request.scope.get("root_path", ""))))

    return api


# ----------------------------------------------------------------------------- the document

UNAUTHORIZED = openapi_problem(
    "No token, or one that is unknown, revoked or expired.",
    {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
)
RATE_LIMITED = openapi_problem(
    "Too many requests with this token: wait the seconds Retry-After says.",
    {"Retry-After": {"schema": {"type": "string"}, "required": True}},
)
ERRORS: dict[str, tuple[str, Any]] = {
    "400": ("The request cannot be served as it is.", None),
    "403": ("The token's roles do not allow this (nothing changed).", None),
    "404": ("No such case, workflow, version or message.", None),
    "409": ("The engine refused the change, or the case changed meanwhile.", None),
    "412": ("The case is not at the version If-Match names (nothing changed).", None),
    "413": ("The upload is larger than the document allows.", None),
    "415": ("The upload is not of a type the document allows.", None),
    "422": ("The request or its data is not valid (errors name the fields).", None),
    "500": ("The server failed; nothing changed.", None),
    "503": ("The database is busy or unavailable; try again (nothing changed).", None),
}
CHANGES_ONLY = frozenset({"409", "412", "413", "415"})
UPLOAD_ONLY = frozenset({"413", "415"})


def _openapi(api: FastAPI) -> dict[str, Any]:
    if api.openapi_schema:
        return api.openapi_schema
    document = get_openapi(
        title=api.title,
        version=api.version,
        description=api.description,
        routes=api.routes,
        servers=[{"url": MOUNT, "description": "where dk2020flow serve mounts the API"}],
    )
    components = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in problem.pop("$defs", {}).items():
        components.setdefault(name, schema)
    components["Problem"] = problem
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in list(responses):
                if code.startswith(("4", "5")):
                    responses[code] = openapi_problem(responses[code].get("description", ""))
            responses["401"] = UNAUTHORIZED
            responses["429"] = RATE_LIMITED
            for code, (description, _) in ERRORS.items():
                if code in CHANGES_ONLY and method != "post":
                    continue
                if code in UPLOAD_ONLY and "/documents/" not in path:
                    continue
                responses.setdefault(code, openapi_problem(description))
    api.openapi_schema = document
    return document


def _docs_page(api: FastAPI, root: str) -> str:
    """A page listing the operations, with a link to the document (no script: the
    console's Content-Security-Policy allows none from elsewhere)."""
    document = api.openapi()
    rows = []
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            rows.append(
                f"<tr><td><code>{html.escape(method.upper())}</code></td>"
                f"<td><code>{html.escape(root + path)}</code></td>"
                f"<td>{html.escape(str(operation.get('summary', '')))}</td></tr>"
            )
    spec = html.escape(f"{root}{PREFIX}/openapi.json")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>dk2020flow API</title></head><body><main>"
        "<h1>dk2020flow API</h1>"
        f'<p>The OpenAPI document: <a href="{spec}">{spec}</a>. Authenticate with '
        "<code>Authorization: Bearer &lt;token&gt;</code> (<code>dk2020flow tokens "
        "create</code>); errors are RFC 9457 problems. The guide is docs/api.md.</p>"
        "<table><thead><tr><th>Method</th><th>Path</th><th>What</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></main></body></html>"
    )
