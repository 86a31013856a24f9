"""The API tests' programme: the DK2020 workflow with a case for each organisation (a
few moved on), the web application over it, and real tokens made through the service
(``Service.tokens.create``, as ``dk2020flow tokens create`` makes them).

``api_as("secretariat")`` is a ``TestClient`` that sends a token of that role as
``Authorization: Bearer …``; ``api_with(secret)`` one that sends a given secret.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Mount

from dk2020_data import DK2020_PROGRAMME_ROLES
from dk2020flow.bundled import workflow_path
from dk2020flow.clock import ManualClock
from dk2020flow.service.core import Service, open_service
from dk2020flow.settings import load_settings
from dk2020flow.web.api.context import ApiContext
from dk2020flow.web.api.ratelimit import SlidingWindowLimiter
from dk2020flow.web.app import create_app
from dk2020flow.web.config import WebConfig

OPENED_AT = dt.datetime(2020, 8, 3, 9, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2021, 12, 1, 9, 0, tzinfo=dt.UTC)
"""The clock of the API tests (as the web tests'): round 2's decisions are due."""
ROUND1 = ("Aarhus", "Aalborg", "København")
ROUND2_SYDDANMARK = ("Odense", "Svendborg", "Vejle")


def decide(service: Service, organisation: str, cohort: str, at: dt.datetime) -> None:
    service.fire(
        organisation,
        "decide_participate",
        actor="kl@example.dk",
        role="follow_up",
        data={
            "cohort": cohort,
            "decision_date": at.date().isoformat(),
            "contact_person_name": f"Kontakt {organisation}",
            "contact_person_email": "kontakt@example.dk",
        },
        workflow="dk2020",
        now=at,
    )


def build_programme(url: str) -> None:
    """DK2020 with a case for each of the 98 organisations (invited), three decided for
    round 1 and three in Syddanmark for round 2."""
    with open_service(url, clock=ManualClock(OPENED_AT), settings=load_settings()) as svc:
        svc.load_workflow(workflow_path("dk2020"), now=OPENED_AT)
        svc.open_cases("dk2020", None, actor="setup", role="secretariat", now=OPENED_AT)
        for name in ROUND1:
            decide(svc, name, "round1", OPENED_AT + dt.timedelta(days=10))
        for name in ROUND2_SYDDANMARK:
            decide(svc, name, "round2", OPENED_AT + dt.timedelta(days=300))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def programme_url(sqlite_url: str) -> str:
    build_programme(sqlite_url)
    return sqlite_url


@pytest.fixture
def app(programme_url: str, clock: ManualClock) -> Iterator[FastAPI]:
    config = WebConfig(
        database_url=programme_url, clock=clock, threads=4, deliver_sign_in_mail=False
    )
    application = create_app(config)
    with TestClient(application):  # runs the lifespan: the service is closed afterwards
        yield application


def service_of(app: FastAPI) -> Service:
    service: Service = app.state.web.service
    return service


def api_app(app: FastAPI) -> FastAPI:
    """The API's own application, mounted at /api."""
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/api":
            found: Any = route.app
            return found  # type: ignore[no-any-return]
    raise AssertionError("the API is not mounted at /api")


def limit_requests(app: FastAPI, limit: int, window: dt.timedelta, clock: ManualClock) -> None:
    """Give the API a rate limiter of ``limit`` per ``window`` on ``clock``."""
    api = api_app(app)
    context: ApiContext = api.state.api
    api.state.api = replace(context, limiter=SlidingWindowLimiter(limit, window, clock))


@pytest.fixture
def service(app: FastAPI) -> Service:
    return service_of(app)


def new_token(service: Service, *roles: str, name: str | None = None, **kw: Any) -> str:
    """A real token with ``roles``, made as ``dk2020flow tokens create`` makes it (with
    ``--every-case`` for a participant's role)."""
    kw.setdefault("every_case", not set(roles) <= set(DK2020_PROGRAMME_ROLES))
    created = service.tokens.create(
        name or f"test-{'-'.join(roles).replace('_', '-')}", list(roles), created_by="test", **kw
    )
    return created.secret


def client_with(app: FastAPI, secret: str | None) -> TestClient:
    client = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
    if secret is not None:
        client.headers["Authorization"] = f"Bearer {secret}"
    return client


@pytest.fixture
def api_with(app: FastAPI) -> Callable[[str | None], TestClient]:
    """A client that sends ``secret`` as its bearer token (None: no token)."""

    def make(secret: str | None) -> TestClient:
        return client_with(app, secret)

    return make


@pytest.fixture
def api_as(app: FastAPI, service: Service) -> Callable[..., TestClient]:
    """``api_as("secretariat")``: a client with a token of those roles (one per roles)."""
    made: dict[tuple[str, ...], str] = {}

    def make(*roles: str) -> TestClient:
        if roles not in made:
            made[roles] = new_token(service, *roles)
        return client_with(app, made[roles])

    return make


def case_id(service: Service, organisation: str) -> int:
    return service.case(organisation, "dk2020").id or 0
