"""The web tests' programme: a SQLite database with the DK2020 workflow and a case for
every organisation, a few of them moved on, and clients signed in as each role.

``client_as("secretariat")`` is a ``TestClient`` whose cookie is a real session of a
real account (made through the service, as ``dk2020flow users add`` and the sign-in
link would); ``post_form`` sends a form with the page's CSRF token, as a browser does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from dk2020_data import DK2020_STAFF_ROLES as STAFF_ROLES
from dk2020flow.bundled import workflow_path
from dk2020flow.clock import ManualClock
from dk2020flow.service.core import Service, open_service
from dk2020flow.settings import load_settings
from dk2020flow.web.app import create_app
from dk2020flow.web.config import CSRF_COOKIE, SESSION_COOKIE, WebConfig

OPENED_AT = dt.datetime(2020, 8, 3, 9, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2021, 12, 1, 9, 0, tzinfo=dt.UTC)
"""The web tests' clock: round 2's decisions are due; round 1 is in guidance."""

ROUND2_SYDDANMARK = ("Odense", "Svendborg", "Vejle")
ROUND1 = ("Aarhus", "Aalborg", "København")


def _decide(service: Service, organisation: str, cohort: str, at: dt.datetime) -> None:
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


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def programme_url(sqlite_url: str) -> str:
    """The DK2020 workflow with a case for each of the 98 organisations (invited), three
    decided for round 1 and three in Syddanmark for round 2."""
    with open_service(sqlite_url, clock=ManualClock(OPENED_AT), settings=load_settings()) as svc:
        svc.load_workflow(workflow_path("dk2020"), now=OPENED_AT)
        svc.open_cases("dk2020", None, actor="setup", role="secretariat", now=OPENED_AT)
        for name in ROUND1:
            _decide(svc, name, "round1", OPENED_AT + dt.timedelta(days=10))
        for name in ROUND2_SYDDANMARK:
            _decide(svc, name, "round2", OPENED_AT + dt.timedelta(days=300))
    return sqlite_url


@pytest.fixture
def app_config(programme_url: str, clock: ManualClock) -> WebConfig:
    # Sign-in mail stays in the outbox (the tests read it there); tests/web/test_sign_in.py
    # turns immediate delivery on into a folder of its own.
    return WebConfig(database_url=programme_url, clock=clock, threads=4, deliver_sign_in_mail=False)


@pytest.fixture
def client(app_config: WebConfig) -> Iterator[TestClient]:
    """An anonymous browser."""
    with TestClient(create_app(app_config), follow_redirects=False) as anonymous:
        yield anonymous


def web_service(client: TestClient) -> Service:
    """The service behind the app (for setting up accounts and checking what changed)."""
    app: Any = client.app
    service: Service = app.state.web.service
    return service


def sign_in(client: TestClient, roles: tuple[str, ...], *, email: str | None = None) -> None:
    """Make an account with ``roles`` and put a session of it in the client's cookies."""
    service = web_service(client)
    address = email or f"{'-'.join(roles) or 'none'}@staff.example.dk"
    known = {u.email: u for u in service.accounts.list_users()}
    if address not in known:
        service.accounts.add_user(address, f"Test {' '.join(roles)}", list(roles), actor="test")
    token = service.accounts.open_session(
        address, method="test", client="testclient", user_agent="pytest"
    )
    client.cookies.set(SESSION_COOKIE, token)


@pytest.fixture
def client_as(client: TestClient) -> Callable[..., TestClient]:
    """``client_as("secretariat")``: the client, signed in with those roles."""

    def signed(*roles: str, email: str | None = None) -> TestClient:
        assert all(role in STAFF_ROLES for role in roles), roles
        sign_in(client, roles, email=email)
        return client

    return signed


def csrf_of(client: TestClient) -> str:
    """The CSRF token the client's pages carry (fetched once, as a browser would)."""
    token = client.cookies.get(CSRF_COOKIE)
    if token is None:
        client.get("/tilgaengelighed")
        token = client.cookies.get(CSRF_COOKIE)
    assert token
    return str(token)


def post_form(client: TestClient, url: str, data: dict[str, Any] | None = None) -> Response:
    """POST a form as the browser would, with the CSRF token."""
    return client.post(url, data={**(data or {}), "csrf_token": csrf_of(client)})
