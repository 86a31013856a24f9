"""The API's authorization matrix: every route, called with no token and with a token of
each role (the staff roles and a workflow role), and tokens that are unknown, revoked or
expired.

As for the console (tests/web/test_authorization.py), who may call a route is declared
here by hand, in ``ACCESS``, and the routes are found from the application: a route
missing from the table fails, and so does an entry that names no route.

- no token, or an unknown, revoked or expired one: 401 with ``WWW-Authenticate: Bearer``,
  and nothing changed;
- a role the route does not allow: 403, and nothing changed (not even a refusal logged);
- a role it allows: past the route's check — a GET answers 200; a change may still be
  refused by the engine (403 with ``reason: role``, logged on the case as the CLI's
  refusal is; 409; 422), never 401 or the route's own 403.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from dk2020_data import DK2020_STAFF_ROLES as STAFF_ROLES
from dk2020flow.service.core import Service
from dk2020flow.service.roles import ADMIN, OPERATIONS_ROLES, READ_ONLY
from dk2020flow.store.port import CaseFilter
from dk2020flow.web.api import auth

from .conftest import api_app, client_with, new_token

PUBLIC = "public"
TOKEN = "token"
ACTING = frozenset(
    {"secretariat", "follow_up", "approver", "regional_advisor", "contact_person", "council"}
)
OPERATORS = frozenset(OPERATIONS_ROLES)
Access = str | frozenset[str]

ACCESS: dict[tuple[str, str], Access] = {
    ("GET", "/v1/docs"): PUBLIC,
    ("GET", "/v1/workflows"): TOKEN,
    ("GET", "/v1/workflows/{name}"): TOKEN,
    ("GET", "/v1/workflows/{name}/versions/{version_id}"): TOKEN,
    ("GET", "/v1/workflows/{name}/versions/{version_id}/diagram.svg"): TOKEN,
    ("GET", "/v1/schema/workflow.json"): TOKEN,
    ("GET", "/v1/organisations"): TOKEN,
    ("GET", "/v1/report"): TOKEN,
    ("GET", "/v1/cases"): TOKEN,
    ("GET", "/v1/cases/{case_id}"): TOKEN,
    ("GET", "/v1/cases/{case_id}/history"): TOKEN,
    ("POST", "/v1/cases/{case_id}/triggers/{trigger}"): ACTING,
    ("POST", "/v1/cases/{case_id}/deadlines/{timer}/extend"): ACTING,
    ("POST", "/v1/cases/{case_id}/checklists/{checklist}"): ACTING,
    ("POST", "/v1/cases/{case_id}/documents/{document}"): ACTING,
    ("GET", "/v1/outbox"): TOKEN,
    ("POST", "/v1/outbox/{message_id}/retry"): OPERATORS,
    ("GET", "/v1/scheduler/health"): TOKEN,
}
"""(method, path under /api) -> who may call it. (The OpenAPI document, a plain
Starlette route, is public: tests/api/test_openapi.py.)"""

BODIES: dict[str, Any] = {
    "triggers": {"data": {}},
    "extend": {"by": "P7D", "reason": "matrix"},
    "checklists": {"items": {"P1.1": {"status": "met"}}},
}
CALLERS: tuple[str | None, ...] = (None, *STAFF_ROLES, "contact_person")


def api_routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    found = []
    for context in iter_route_contexts(api_app(app).routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            assert context.path and context.methods, route
            for method in sorted(context.methods - {"HEAD"}):
                found.append((method, context.path, route))
    assert found
    return found


def test_every_route_is_in_the_table_and_every_entry_is_a_route(app: FastAPI) -> None:
    found = {(method, path) for method, path, _ in api_routes(app)}
    assert sorted(found - set(ACCESS)) == [], "routes without a decided access"
    assert sorted(set(ACCESS) - found) == [], "ACCESS names routes the API does not have"


def _declares_token(route: APIRoute) -> bool:
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if dependency.call is auth.token:
            return True
        stack.extend(dependency.dependencies)
    return False


def test_a_public_route_takes_no_token_and_every_other_one_does(app: FastAPI) -> None:
    wrong = [
        f"{method} {path}"
        for method, path, route in api_routes(app)
        if (ACCESS.get((method, path)) == PUBLIC) == _declares_token(route)
    ]
    assert wrong == []


def _values(service: Service) -> dict[str, str]:
    message = service.outbox(limit=1)
    assert message, "the programme has mail in its outbox"
    definition = service.definitions()[0]
    return {
        "name": definition.name,
        "version_id": str(definition.id),
        "case_id": "1",
        "trigger": "decide_decline",
        "timer": "reply_deadline",
        "checklist": "capf",
        "document": "application",
        "message_id": str(message[0].id),
    }


def _url(path: str, values: dict[str, str]) -> str:
    return "/api" + re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)


def _call(client: Any, method: str, path: str, url: str) -> Any:
    if method == "GET":
        return client.get(url)
    if "/documents/" in path:
        return client.post(url, params={"filename": "a.pdf"}, content=b"%PDF-1.4 matrix")
    kind = next((k for k in BODIES if f"/{k}/" in path or path.endswith(f"/{k}")), None)
    return client.post(url, json=BODIES[kind] if kind else None)


def world(service: Service) -> tuple[object, ...]:
    """What a refused call must leave as it was: every case's version, case 1's history,
    the outbox."""
    versions = tuple((c.id, c.version) for c in service.cases(CaseFilter()))
    _, events = service.history("#1")
    outbox = tuple((m.id, m.status, m.attempts) for m in service.outbox(limit=1000))
    return versions, len(events), outbox


def _allowed(access: Access, role: str | None) -> bool:
    if access == PUBLIC:
        return True
    if role is None:
        return False
    return access == TOKEN or (isinstance(access, frozenset) and role in access)


def test_every_route_with_every_role_and_with_none(app: FastAPI, service: Service) -> None:
    values = _values(service)
    secrets = {role: new_token(service, role) for role in CALLERS if role is not None}
    failures: list[str] = []
    for method, path, _route in api_routes(app):
        access = ACCESS[(method, path)]
        url = _url(path, values)
        for role in CALLERS:
            who = role or "nobody"
            before = world(service)
            response = _call(client_with(app, secrets.get(role or "")), method, path, url)
            status = response.status_code
            body = response.json() if "json" in response.headers.get("content-type", "") else {}
            if _allowed(access, role):
                if status == 401 or (status == 403 and body.get("reason") != "role"):
                    failures.append(f"{method} {url} as {who}: {status} (should pass)")
                elif method == "GET" and status != 200:
                    failures.append(f"{method} {url} as {who}: {status} (should answer)")
                elif status >= 500:
                    failures.append(f"{method} {url} as {who}: {status}")
                continue
            expected = 401 if role is None else 403
            if status != expected:
                failures.append(f"{method} {url} as {who}: {status} (should be {expected})")
            elif expected == 401 and not response.headers.get("www-authenticate", "").startswith(
                "Bearer"
            ):
                failures.append(f"{method} {url} as nobody: no WWW-Authenticate: Bearer")
            elif body.get("status") != expected or body.get("reason"):
                failures.append(f"{method} {url} as {who}: not a plain problem {body}")
            if world(service) != before:
                failures.append(f"{method} {url} as {who}: refused, but something changed")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("how", ["unknown", "revoked", "expired", "malformed", "basic"])
def test_a_bad_token_is_401_everywhere_and_changes_nothing(
    app: FastAPI, service: Service, clock: Any, how: str
) -> None:
    secret = new_token(
        service, "secretariat", name=f"bad-{how}", expires_at=clock.now() + dt.timedelta(days=1)
    )
    if how == "unknown":
        secret = "dkf_" + "x" * 43
    elif how == "revoked":
        service.tokens.revoke(f"bad-{how}")
    elif how == "expired":
        clock.advance(dt.timedelta(days=2))
    elif how == "malformed":
        secret = "not a token at all"
    values = _values(service)
    client = client_with(app, None)
    client.headers["Authorization"] = "Basic dXNlcjpwYXNz" if how == "basic" else f"Bearer {secret}"
    for method, path, _ in api_routes(app):
        if ACCESS[(method, path)] == PUBLIC:
            continue
        before = world(service)
        response = _call(client, method, path, _url(path, values))
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"] == "application/problem+json"
        assert world(service) == before, (method, path)


def test_a_session_cookie_opens_nothing_in_the_api(app: FastAPI, service: Service) -> None:
    """The API never reads cookies: a signed-in browser gets 401 there, and a POST needs
    no CSRF token (there is no cookie authentication to forge)."""
    service.accounts.add_user("cookie@staff.example.dk", "Cookie", [ADMIN], actor="test")
    session = service.accounts.open_session(
        "cookie@staff.example.dk", method="test", client="testclient", user_agent="pytest"
    )
    client = client_with(app, None)
    client.cookies.set("dk2020flow_session", session)
    assert client.get("/api/v1/cases").status_code == 401
    before = world(service)
    refused = client.post("/api/v1/cases/1/triggers/decide_decline", json={"data": {}})
    assert refused.status_code == 401
    assert world(service) == before
    # With a token, no CSRF token is asked for, and no cookie is set.
    with_token = client_with(app, new_token(service, "follow_up"))
    invited = service.case("Esbjerg", "dk2020").id
    done = with_token.post(
        f"/api/v1/cases/{invited}/triggers/decide_decline",
        json={"data": {"decision_date": "2020-08-20"}},
        headers={"Origin": "https://elsewhere.example"},
    )
    assert done.status_code == 200, done.text
    assert "set-cookie" not in done.headers
    assert READ_ONLY in STAFF_ROLES
