"""Every error under /api is an RFC 9457 problem: unknown routes, wrong methods,
FastAPI's validation, the service's errors, a server failure (without a traceback)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from dk2020flow.store.db import SchemaAheadError
from dk2020flow.store.errors import (
    DatabaseBusyError,
    DatabaseUnavailableError,
    DiskFullError,
    ParticipantsError,
)
from dk2020flow.web.api.problems import add_problem_handlers

from .conftest import client_with

MEMBERS = {"type", "title", "status", "detail", "instance", "errors"}


def _problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert set(body) >= MEMBERS
    assert body["status"] == status
    assert body["type"].startswith("https://dk2020flow.example/problems/")
    assert "set-cookie" not in answer.headers
    return body


@pytest.mark.parametrize(
    "path", ["/api/", "/api/nothing", "/api/v1/nothing", "/api/v2/cases", "/api/v1/a%0Ab"]
)
def test_an_unknown_address_under_api_is_a_404_problem(app: FastAPI, path: str) -> None:
    body = _problem(client_with(app, None).get(path), 404)
    assert body["type"].endswith("/not-found")


def test_api_itself_leads_into_the_api(app: FastAPI) -> None:
    answer = client_with(app, None).get("/api")
    assert (answer.status_code, answer.headers["location"]) == (307, "http://testserver/api/")


def test_a_wrong_method_is_a_405_problem(api_as: Callable[..., TestClient]) -> None:
    answer = api_as("read_only").delete("/api/v1/cases")
    _problem(answer, 405)
    assert "GET" in answer.headers["allow"]


def test_a_request_fastapi_refuses_names_the_member(api_as: Callable[..., TestClient]) -> None:
    client = api_as("secretariat")
    body = _problem(client.post("/api/v1/cases/1/triggers/x", json={"dta": {}}), 422)
    assert [(e["field"], e["location"]) for e in body["errors"]] == [("dta", "body")]
    body = _problem(client.post("/api/v1/cases/1/triggers/x", content=b"{not json"), 422)
    assert body["errors"]
    body = _problem(client.get("/api/v1/cases/0"), 422)
    assert [e["field"] for e in body["errors"]] == ["case_id"]


def test_a_server_failure_is_a_500_problem_without_a_traceback(
    app: FastAPI, api_as: Callable[..., TestClient], programme_url: str
) -> None:
    client = api_as("read_only")
    engine = create_engine(programme_url)
    try:
        with engine.begin() as conn:  # a real fault: the table the page reads is gone
            conn.execute(text("DROP TABLE daemons"))
    finally:
        engine.dispose()
    body = _problem(client.get("/api/v1/scheduler/health"), 500)
    assert "Traceback" not in body["detail"] and "daemons" not in body["detail"]


def test_the_document_holds_the_api_alone_and_its_errors_are_problems(app: FastAPI) -> None:
    client = client_with(app, None)
    document = client.get("/api/v1/openapi.json").json()
    assert document["servers"][0]["url"] == "/api"
    assert all(path.startswith("/v1/") for path in document["paths"])
    assert not any("sign-in" in path or "operations" in path for path in document["paths"])
    assert document["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], (
                        path,
                        method,
                        code,
                    )
            assert "401" in operation["responses"] and "429" in operation["responses"]
    assert client.get("/openapi.json").status_code == 404  # the console has none
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (DatabaseBusyError("the database is busy"), 503, "unavailable"),
        (DatabaseUnavailableError("cannot reach the server"), 503, "unavailable"),
        (DiskFullError("the disk is full"), 500, "server-error"),
        (SchemaAheadError("the database is at 0009"), 500, "server-error"),
        (ParticipantsError("contacts.csv", "line 2: no e-mail"), 400, "bad-request"),
    ],
)
def test_the_stores_errors_are_told_apart_by_their_type(
    error: Exception, status: int, kind: str
) -> None:
    """The store's failures are the server's (5xx), wherever they are defined; a refused
    file is the caller's (400)."""
    app = FastAPI()
    add_problem_handlers(app)

    @app.get("/fails")
    def fails() -> None:
        raise error

    body = _problem(TestClient(app, raise_server_exceptions=False).get("/fails"), status)
    assert body["type"].endswith(f"/{kind}")
