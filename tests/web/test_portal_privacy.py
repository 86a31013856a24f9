"""A person sees only their cases: a contact of Aarhus gets 403, and nothing changes, on
every portal address of Odense's case (GET and POST, documents and events included)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from dk2020flow.service.filetypes import sample
from dk2020flow.web.config import SESSION_COOKIE

from .conftest import csrf_of, web_service
from .portal_world import ANNA, ODENSE, OLE, add_contacts, case_id, participant_session


def _portal_routes(client: TestClient) -> list[tuple[str, str]]:
    app: Any = client.app
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path or ""
        if isinstance(route, APIRoute) and path.startswith("/portal/cases/"):
            found += [(m, path) for m in sorted((context.methods or set()) - {"HEAD"})]
    assert len(found) >= 5, found
    return found


def _snapshot(client: TestClient, case: int) -> tuple[Any, ...]:
    service = web_service(client)
    with service.store.read() as tx:
        return (
            tx.load_case(case).version,
            len(tx.history(case)),
            len(tx.documents_of(case)),
            len(tx.outbox(case_id=case, limit=1000)),
        )


def test_every_portal_url_of_another_organisations_case_is_403(
    client: TestClient, programme_url: str
) -> None:
    add_contacts(programme_url)
    service = web_service(client)
    odense = case_id(programme_url, ODENSE)
    # Odense's own contact uploads a document, so there is a real one to ask for.
    client.cookies.set(SESSION_COOKIE, participant_session(service, OLE))
    own = client.post(
        f"/portal/cases/{odense}/documents/application",
        data={"csrf_token": csrf_of(client)},
        files={"file": ("odense.pdf", sample("pdf"), "application/pdf")},
    )
    with service.store.read() as tx:
        docs = tx.documents_of(odense)
    values = {
        "case_id": str(odense),
        "trigger": "submit_application",
        "document_id": str(docs[0].id) if docs else "1",
        "slot": "application",
        "event": "round2.start_conference",
        "checklist": "capf",
    }
    assert own.status_code == 303, own.text
    client.cookies.set(SESSION_COOKIE, participant_session(service, ANNA))
    before = _snapshot(client, odense)
    failures = []
    for method, path in _portal_routes(client):
        url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
        if method == "GET":
            response = client.get(url)
        else:
            response = client.post(
                url,
                data={
                    "csrf_token": csrf_of(client),
                    "commitment_signed": "true",
                    "staff_hours_per_week": "3",
                },
                files={"file": ("x.pdf", sample("pdf"), "application/pdf")},
            )
        if response.status_code != 403:
            failures.append(f"{method} {url}: {response.status_code}")
        assert "odense.pdf" not in response.text
    assert not failures, failures
    assert _snapshot(client, odense) == before
    # And the same for a case that does not exist.
    assert client.get("/portal/cases/999999").status_code == 403
