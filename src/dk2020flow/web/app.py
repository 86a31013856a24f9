"""``create_app``: the FastAPI application over one database.

One ``Service`` per process serves every request (its connection pool is sized to the
thread pool that runs the ``def`` endpoints). Errors become pages, never tracebacks:
a refused action (``RefusedError``) says why with 409, an unknown case 404, a missing
role 403, a failed CSRF check 403, no session a redirect to the sign-in page; anything
unexpected is logged and answered with a plain 500 page that says nothing changed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from dk2020flow.clock import ShiftedClock, SystemClock, parse_instant
from dk2020flow.errors import ConflictError, Dk2020flowError, NotFoundError, RefusedError
from dk2020flow.web.auth import Forbidden, SignInRequired
from dk2020flow.web.config import WebConfig
from dk2020flow.web.context import WebContext
from dk2020flow.web.rendering import Renderer, is_htmx
from dk2020flow.web.security import CsrfRefused, SecurityHeaders, check_csrf

if TYPE_CHECKING:
    from dk2020flow.settings import Settings

log = logging.getLogger("dk2020flow.web")

STATIC = Path(__file__).parent / "static"


def create_app(config: WebConfig) -> FastAPI:
    """The web application; it opens the database now and closes it on shutdown."""
    from dk2020flow.service.core import open_service
    from dk2020flow.settings import load_settings
    from dk2020flow.web import routes

    settings = load_settings()
    if settings.public_url is None and config.base_url:
        # Links in the mail a web request makes go to this server (docs/portal.md).
        settings = settings.model_copy(update={"public_url": config.base_url})
    service = open_service(
        config.database_url,
        clock=config.clock,
        settings=settings,
        pool_size=config.pool_size or config.threads,
    )
    from dk2020flow.service.timezone import display_timezone

    try:
        timezone = config.timezone or display_timezone(service)
    except BaseException:
        service.close()
        raise
    renderer = Renderer(timezone)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The thread pool that runs the `def` endpoints (and so the requests at work).
        anyio.to_thread.current_default_thread_limiter().total_tokens = config.threads
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="dk2020flow",
        lifespan=lifespan,
        dependencies=[Depends(check_csrf)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.web = WebContext(config=config, service=service, renderer=renderer)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in routes.ROUTERS:
        app.include_router(router)
    # The REST API: its own app (its own OpenAPI document and problem+json errors; no
    # cookies, so no CSRF check), over the same service (web/api/, docs/api.md).
    from dk2020flow.web.api.app import MOUNT, create_api

    app.mount(MOUNT, create_api(service, config.clock))
    _add_error_pages(app, renderer)
    return app


def app_from_environment() -> FastAPI:
    """The application ``dk2020flow serve`` starts in each uvicorn worker (a factory:
    every worker process builds its own service and pool). ``serve`` passes its options
    in the environment: DK2020FLOW_DATABASE_URL, DK2020FLOW_WEB_NOW, DK2020FLOW_BASE_URL.
    A DK2020FLOW_WEB_NOW without an offset is local time in the display zone
    (DK2020FLOW_WEB_TIMEZONE, an older name of the pages' zone, still wins when set)."""
    from dk2020flow.settings import load_settings
    from dk2020flow.web.oidc import oidc_config

    settings = load_settings()
    now = os.environ.get("DK2020FLOW_WEB_NOW", "").strip()
    timezone = os.environ.get("DK2020FLOW_WEB_TIMEZONE", "").strip() or None
    if now and timezone is None:
        timezone = _display_timezone(settings)
    clock = ShiftedClock(parse_instant(now, timezone or "UTC")) if now else SystemClock()
    return create_app(
        WebConfig(
            database_url=settings.database_url,
            clock=clock,
            timezone=timezone,
            base_url=os.environ.get("DK2020FLOW_BASE_URL") or None,
            threads=int(os.environ.get("DK2020FLOW_WEB_THREADS", "40")),
            oidc=oidc_config(settings),
        )
    )


def _display_timezone(settings: Settings) -> str:
    """The display zone of the settings' database, found before the application's own
    service exists (to read a local DK2020FLOW_WEB_NOW)."""
    from dk2020flow.service.core import open_service
    from dk2020flow.service.timezone import display_timezone

    with open_service(settings.database_url, clock=SystemClock(), settings=settings) as service:
        return display_timezone(service)


def _add_error_pages(app: FastAPI, renderer: Renderer) -> None:
    def page(request: Request, status: int, title: str, text: str) -> Response:
        return renderer.render(
            request,
            "error.html",
            {"status": status, "title_key": title, "text": text},
            status_code=status,
        )

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, _error: SignInRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = f"/sign-in?next={quote(target, safe='')}"
        if is_htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": location})
        return RedirectResponse(location, status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, _error: Forbidden) -> Response:
        tr = renderer.translator(request)
        return page(request, 403, "error.forbidden", tr.t("error.forbidden_text"))

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _error: CsrfRefused) -> Response:
        tr = renderer.translator(request)
        return page(request, 403, "error.csrf", tr.t("error.csrf_text"))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if _api_path(request):
            return _api_problem(request, error.status_code)
        tr = renderer.translator(request)
        if error.status_code == 404:
            return page(request, 404, "error.not_found", tr.t("error.not_found_text"))
        return page(request, error.status_code, "error.title", str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in error.errors())
        return page(request, 422, "error.title", f"invalid request: {fields}")

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, error: NotFoundError) -> Response:
        return page(request, 404, "error.not_found", str(error))

    @app.exception_handler(RefusedError)
    async def refused(request: Request, error: RefusedError) -> Response:
        return page(request, 409, "error.refused", str(error))

    @app.exception_handler(ConflictError)
    async def conflict(request: Request, error: ConflictError) -> Response:
        return page(request, 409, "error.refused", str(error))

    @app.exception_handler(Dk2020flowError)
    async def project_error(request: Request, error: Dk2020flowError) -> Response:
        return page(request, 400, "error.title", str(error))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.error(
            "unexpected error on %s %s: %s: %s",
            request.method,
            request.url.path,
            type(error).__name__,
            error,
            extra={"action": "web_error"},
        )
        if _api_path(request):
            return _api_problem(request, 500)
        tr = renderer.translator(request)
        return page(request, 500, "error.title", tr.t("error.server"))


def _api_path(request: Request) -> bool:
    """A path the API's mount did not take (``/api`` itself, one with a line break …):
    answered as the API answers, with a problem, never with a console page."""
    from dk2020flow.web.security import API_PATH

    path = request.url.path
    return path == API_PATH or path.startswith(API_PATH + "/")


def _api_problem(request: Request, status: int) -> Response:
    from dk2020flow.web.api.problems import STATUS_KIND, problem_response

    kind = STATUS_KIND.get(status, "bad-request")
    detail = "there is no such address in the API (/api/v1/docs lists what there is)"
    return problem_response(request, status, kind, detail if status == 404 else "")
