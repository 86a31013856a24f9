"""The authorization matrix: every route of the console and the portal, called as nobody,
as each staff role and as a participant (a contact of Aarhus: 403 on every staff route).

Who may call a route is declared here, in ``ACCESS``, by hand — not read from the app —
so that adding a route without deciding its access fails this test, and so does a route
whose dependency lets in someone the table does not. The routes themselves are found
from the app (``app.routes``): a route missing from the table fails, and so does an
entry of the table that names no route.

For each route and caller:

- nobody, on a route that needs a user: 303 to ``/sign-in?next=<the path>``;
- a role the route does not allow: 403;
- a role it allows (and nobody on a public route): neither 403 nor a redirect to the
  sign-in page; a GET answers below 400 (its path parameters name real things). A POST
  carries a valid CSRF token and no other form data: the handler may refuse it with
  400, 409 or 422 (past the role check) — that is fine here.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, select

from dk2020_data import DK2020_ACTING_ROLES as ACTING
from dk2020_data import DK2020_STAFF_ROLES as STAFF_ROLES
from dk2020flow.service.core import Service
from dk2020flow.service.filetypes import sample
from dk2020flow.service.roles import ADMIN, OPERATIONS_ROLES, READ_ONLY
from dk2020flow.web import auth
from dk2020flow.web.config import CSRF_COOKIE, SESSION_COOKIE

from .conftest import web_service
from .portal_world import AARHUS, ANNA, add_contacts, case_id, participant_session

ANYONE = "anyone"
STAFF = "staff"
PARTICIPANT = "participant"
"""A signed-in participant (a contact of Aarhus here); every staff route refuses them."""
Access = str | frozenset[str]

OPERATORS = frozenset(OPERATIONS_ROLES)
ACTORS = frozenset(ACTING)
"""The roles that act on cases (not ``admin``, not ``read_only``)."""
ADMINS = frozenset({ADMIN})


@dataclass(frozen=True)
class Rule:
    access: Access
    query: str = ""
    """Sent with the request (a GET that needs a parameter to answer 200); ``{name}``
    is filled in as path parameters are."""


ACCESS: dict[tuple[str, str], Rule] = {
    # routes/pages.py
    ("GET", "/language"): Rule(ANYONE, "lang=en&next=/"),
    ("GET", "/tilgaengelighed"): Rule(ANYONE),
    ("GET", "/healthz"): Rule(ANYONE),
    # routes/auth.py
    ("GET", "/sign-in"): Rule(ANYONE),
    ("POST", "/sign-in"): Rule(ANYONE),
    ("GET", "/sign-in/link"): Rule(ANYONE, "token={sign_in_token}"),
    ("POST", "/sign-in/link"): Rule(ANYONE),
    ("POST", "/sign-in/code"): Rule(ANYONE),
    ("GET", "/sign-in/case"): Rule(ANYONE, "token={case_link_token}"),  # a case link in mail
    ("POST", "/sign-in/case"): Rule(ANYONE),
    ("POST", "/sign-out"): Rule(ANYONE),
    # routes/oidc.py (single sign-on is off here: both lead to the sign-in page)
    ("GET", "/sign-in/oidc"): Rule(ANYONE),
    ("GET", "/sign-in/oidc/callback"): Rule(ANYONE),
    ("GET", "/account"): Rule(STAFF),
    ("POST", "/account/sessions/{session_id}/revoke"): Rule(STAFF),
    ("GET", "/admin/users"): Rule(ADMINS),
    ("POST", "/admin/users"): Rule(ADMINS),
    ("POST", "/admin/users/{user_id}/disable"): Rule(ADMINS),
    # routes/overview.py
    ("GET", "/"): Rule(STAFF),
    # routes/cases.py
    ("GET", "/cases"): Rule(STAFF, "round=round2&region=Syddanmark&late=1&sort=-since"),
    ("GET", "/cases.csv"): Rule(STAFF, "state=invited"),
    ("POST", "/cases/views"): Rule(STAFF),
    ("POST", "/cases/views/{view_id}/delete"): Rule(STAFF),
    ("POST", "/bulk"): Rule(ACTORS),
    ("POST", "/bulk/run"): Rule(ACTORS),
    ("GET", "/bulk/{run_id}"): Rule(STAFF),
    ("POST", "/bulk/{run_id}/resume"): Rule(ACTORS),
    # routes/case.py
    ("GET", "/cases/{ref}"): Rule(STAFF),
    ("POST", "/cases/{ref}/fire/{trigger}"): Rule(ACTORS),
    ("POST", "/cases/{ref}/extend/{timer}"): Rule(ACTORS),
    ("POST", "/cases/{ref}/checklists/{checklist}"): Rule(ACTORS),
    ("GET", "/cases/{ref}/documents/{document_id}"): Rule(STAFF),
    ("POST", "/cases/{ref}/documents/{slot}"): Rule(ACTORS),
    # routes/operations.py
    ("GET", "/operations"): Rule(STAFF),
    ("GET", "/operations/outbox"): Rule(STAFF),
    ("POST", "/operations/outbox/{message_id}/retry"): Rule(OPERATORS),
    ("GET", "/operations/scheduler"): Rule(STAFF),
    ("GET", "/operations/workflows"): Rule(STAFF),
    ("GET", "/operations/workflows/{definition_id}"): Rule(STAFF),
    ("GET", "/operations/migrate"): Rule(STAFF),
    ("POST", "/operations/migrate"): Rule(OPERATORS),
    ("POST", "/operations/migrate/apply"): Rule(OPERATORS),
    # routes/portal.py (the caller is a contact of Aarhus; the case is Aarhus's)
    ("GET", "/portal"): Rule(PARTICIPANT),
    ("GET", "/portal/cases/{case_id}"): Rule(PARTICIPANT),
    ("POST", "/portal/cases/{case_id}/fire/{trigger}"): Rule(PARTICIPANT),
    ("GET", "/portal/cases/{case_id}/events/{event}.ics"): Rule(PARTICIPANT),
    ("GET", "/portal/cases/{case_id}/documents/{document_id}"): Rule(PARTICIPANT),
    ("POST", "/portal/cases/{case_id}/documents/{slot}"): Rule(PARTICIPANT),
    ("POST", "/portal/cases/{case_id}/checklists/{checklist}/answers"): Rule(PARTICIPANT),
    # routes/privacy.py (the person's own data)
    ("GET", "/portal/my-data"): Rule(PARTICIPANT),
    ("GET", "/portal/my-data.json"): Rule(PARTICIPANT),
}
"""(method, path as the app declares it) -> who may call it."""

PUBLIC_STATUSES = frozenset({200, 204, 302, 303, 307})


# ----------------------------------------------------------------------------- the app's routes


def app_routes(client: TestClient) -> list[tuple[str, str, APIRoute]]:
    """Every (method, path, route) of the app; the static files' and the API's mounts are
    not routes."""
    found: list[tuple[str, str, APIRoute]] = []
    app: Any = client.app
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            assert context.path and context.methods, route
            for method in sorted(context.methods - {"HEAD"}):
                found.append((method, context.path, route))
        else:
            # The static files, and the REST API: its own app with its own matrix
            # (tests/api/test_authorization.py).
            assert context.path in ("/static", "/api"), f"unexpected route {route!r}"
    assert found
    return found


# ----------------------------------------------------------------------------- callers


@dataclass
class World:
    """The app, a session token per role, and real values for path parameters."""

    client: TestClient
    service: Service
    values: dict[str, str]

    def caller(self, role: str | None) -> TestClient:
        """A fresh browser: nobody, or a new session of the role's own account."""
        app: Any = self.client.app
        csrf = "t" * 32
        cookies = {CSRF_COOKIE: csrf}
        if role == PARTICIPANT:
            cookies[SESSION_COOKIE] = participant_session(self.service, ANNA)
        elif role is not None:
            email = f"matrix-{role.replace('_', '-')}@staff.example.dk"
            if email not in {u.email for u in self.service.accounts.list_users()}:
                self.service.accounts.add_user(email, f"Matrix {role}", [role], actor="test")
            cookies[SESSION_COOKIE] = self.service.accounts.open_session(
                email, method="test", client="testclient", user_agent="pytest"
            )
        browser = TestClient(
            app, follow_redirects=False, cookies=cookies, raise_server_exceptions=False
        )
        browser.headers["x-csrf-token"] = csrf
        return browser

    def url(self, path: str, query: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1).split(":")[0]
            assert name in self.values, f"no value for path parameter {name!r} of {path}"
            return self.values[name]

        filled = re.sub(r"\{([^}]+)\}", value, path)
        asked = re.sub(r"\{([^}]+)\}", value, query)
        return filled + (f"?{asked}" if asked else "")


def _path_values(service: Service, sqlite_url: str) -> dict[str, str]:
    """Something real for each path parameter a route may have."""
    from dk2020flow.store import tables as t

    values: dict[str, str] = {
        "trigger": "decide_decline",  # refused on Aarhus's case (decided): past the role check
        "timer": "reply_deadline",
        "checklist": "capf",
        "slot": "application",
        "event": "round1.start_conference",
    }
    add_contacts(sqlite_url)
    aarhus = case_id(sqlite_url, AARHUS)
    values["case_id"] = str(aarhus)
    values["ref"] = f"%23{aarhus}"  # as the console's links write it (#12); the document's case
    document = service.documents.attach(
        f"#{aarhus}",
        "application",
        io.BytesIO(sample("pdf")),
        filename="matrix.pdf",
        actor=ANNA,
        role="contact_person",
    )
    values["document_id"] = str(document.id)
    with service.store.transaction() as tx:  # Anna's case link, as her mail carries it
        values["case_link_token"] = service.mail.links.token(tx, aarhus, ANNA, service.clock.now())
    other = service.accounts.add_user(
        "matrix-target@staff.example.dk", "Matrix target", ["follow_up"], actor="test"
    )
    values["user_id"] = str(other.id)
    service.accounts.open_session(
        other.email, method="test", client="testclient", user_agent="pytest"
    )
    outbox_id = service.accounts.request_sign_in(
        other.email, client="matrix", base_url="http://testserver"
    )
    engine = create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            values["definition_id"] = str(
                conn.execute(select(t.definitions.c.id).limit(1)).scalar_one()
            )
            message = conn.execute(select(t.outbox.c.id).order_by(t.outbox.c.id).limit(1))
            values["message_id"] = values["outbox_id"] = str(message.scalar_one())
            mail = conn.execute(select(t.outbox.c.text).where(t.outbox.c.id == outbox_id))
            link = re.search(r"token=([A-Za-z0-9_-]+)", mail.scalar_one())
            assert link, "the sign-in mail has no link"
            values["sign_in_token"] = link.group(1)
            sessions = select(t.web_sessions.c.id).where(t.web_sessions.c.user_id == other.id)
            values["session_id"] = str(conn.execute(sessions).scalars().first())
            run = conn.execute(
                insert(t.bulk_runs).values(**_bulk_run(other.id)).returning(t.bulk_runs.c.id)
            )
            values["run_id"] = values["bulk_id"] = str(run.scalar_one())
            view = conn.execute(
                insert(t.saved_views).values(**_saved_view(other.id)).returning(t.saved_views.c.id)
            )
            values["view_id"] = str(view.scalar_one())
    finally:
        engine.dispose()
    return values


WHEN = dt.datetime(2021, 11, 30, 9, 0, tzinfo=dt.UTC)


def _bulk_run(_user_id: int) -> dict[str, Any]:
    return {
        "actor": "matrix-target@staff.example.dk",
        "role": "follow_up",
        "trigger": "decide_decline",
        "comment": "",
        "data": {},
        "query": "state=invited",
        "created_at": WHEN,
        "finished_at": WHEN,
        "total": 0,
    }


def _saved_view(user_id: int) -> dict[str, Any]:
    return {
        "name": "Matrix view",
        "owner_id": user_id,
        "shared_role": None,
        "query": "state=invited",
        "created_at": WHEN,
    }


@pytest.fixture
def world(client: TestClient, sqlite_url: str) -> World:
    service = web_service(client)
    return World(client=client, service=service, values=_path_values(service, sqlite_url))


# ----------------------------------------------------------------------------- the tests


def test_every_route_is_in_the_table_and_every_entry_is_a_route(client: TestClient) -> None:
    declared = set(ACCESS)
    found = {(method, path) for method, path, _ in app_routes(client)}
    missing = sorted(found - declared)
    stale = sorted(declared - found)
    assert not missing, f"routes without a decided access (add them to ACCESS): {missing}"
    assert not stale, f"ACCESS names routes the app does not have: {stale}"


def _auth_dependencies(route: APIRoute) -> list[str]:
    """The ``web.auth`` dependencies a route declares (at any depth)."""
    names: list[str] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        call = dependency.call
        if call is auth.anyone:
            names.append(ANYONE)
        elif call is auth.signed_in:
            names.append(STAFF)
        elif call is auth.participant:
            names.append(PARTICIPANT)
        elif getattr(call, "__qualname__", "") == "require_roles.<locals>.check":
            names.append("require_roles")
        stack.extend(dependency.dependencies)
    return names


def test_every_route_depends_on_one_of_the_auth_dependencies(client: TestClient) -> None:
    without = [
        f"{method} {path}"
        for method, path, route in app_routes(client)
        if not _auth_dependencies(route)
    ]
    assert not without, f"routes without anyone/signed_in/require_roles: {without}"


def test_a_public_route_declares_anyone_and_a_closed_one_does_not(client: TestClient) -> None:
    """The table and the code agree on which routes are open at all, and which are the
    participants' (the calls below check the roles)."""
    wrong = []
    for method, path, route in app_routes(client):
        rule = ACCESS.get((method, path))
        if rule is None:
            continue
        declared = _auth_dependencies(route)
        if (rule.access == ANYONE) != (declared == [ANYONE]) or (rule.access == PARTICIPANT) != (
            declared == [PARTICIPANT]
        ):
            wrong.append(f"{method} {path}: table {rule.access!r}, code {declared}")
    assert not wrong, wrong


CALLERS: tuple[str | None, ...] = (None, *STAFF_ROLES, PARTICIPANT)


def _allowed(access: Access, role: str | None) -> bool:
    if access == ANYONE:
        return True
    if role is None:
        return False
    if access == PARTICIPANT or role == PARTICIPANT:
        return access == role
    if access == STAFF:
        return True
    assert isinstance(access, frozenset)
    return role in access


def _call(browser: TestClient, method: str, url: str) -> Any:
    if method == "GET":
        return browser.get(url)
    return browser.request(method, url, data={"csrf_token": browser.headers["x-csrf-token"]})


def test_every_route_as_every_role_and_as_nobody(world: World, client: TestClient) -> None:
    failures: list[str] = []
    for method, path, _route in app_routes(client):
        rule = ACCESS.get((method, path))
        if rule is None:
            continue  # reported by the table test
        url = world.url(path, rule.query)
        target = url.split("?")[0]
        for role in CALLERS:
            who = role or "nobody"
            response = _call(world.caller(role), method, url)
            status = response.status_code
            location = response.headers.get("location", "")
            # Sent to sign in (as SignInRequired does; signing out ends on /sign-in too).
            to_sign_in = status in (302, 303, 307) and location.startswith("/sign-in?next=")
            if _allowed(rule.access, role):
                if status == 403 or to_sign_in:
                    failures.append(f"{method} {url} as {who}: {status} {location} (should pass)")
                elif method == "GET" and status >= 400:
                    failures.append(f"{method} {url} as {who}: {status} (a page should answer)")
                elif status >= 500:
                    failures.append(f"{method} {url} as {who}: {status}")
            elif role is None:
                if status != 303 or not location.startswith("/sign-in?next="):
                    failures.append(f"{method} {url} as nobody: {status} {location} (sign in!)")
                elif f"next={_quoted(target)}" not in location:
                    failures.append(f"{method} {url} as nobody: next= lost in {location}")
            elif status != 403:
                failures.append(f"{method} {url} as {who}: {status} (should be 403)")
    assert not failures, "\n".join(failures)


def _quoted(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


def test_nobody_deletes_another_users_view_or_ends_their_session(
    world: World, sqlite_url: str
) -> None:
    """Past the role check, the service checks whose the view and the session are."""
    from dk2020flow.store import tables as t

    target_session = world.service.accounts.open_session(
        "matrix-target@staff.example.dk", method="test", client="testclient", user_agent="pytest"
    )
    now = world.service.clock.now()
    session_id = world.service.accounts.session_user(target_session, now)
    assert session_id is not None
    for role in (ADMIN, "secretariat", READ_ONLY):
        browser = world.caller(role)
        for url in (
            f"/cases/views/{world.values['view_id']}/delete",
            f"/account/sessions/{session_id.session_id}/revoke",
        ):
            response = _call(browser, "POST", url)
            assert response.status_code == 404, (role, url, response.status_code)
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            views = conn.execute(select(t.saved_views.c.id)).scalars().all()
    finally:
        engine.dispose()
    assert int(world.values["view_id"]) in views
    assert world.service.accounts.session_user(target_session, now) is not None
