"""A participant's own data (GDPR's right of access): the page lists what the programme
keeps about them and who looked at it, the JSON download has all of it, both are logged,
and nothing of another person is ever in them."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from dk2020flow.web.config import SESSION_COOKIE

from .conftest import sign_in, web_service
from .portal_world import (
    AARHUS,
    ANNA,
    ODENSE,
    OLE,
    add_contacts,
    case_id,
    participant_session,
    sign_in_as_participant,
)

STAFF = "secretariat@staff.example.dk"


@pytest.fixture
def portal(client: TestClient, programme_url: str) -> TestClient:
    add_contacts(programme_url)
    return client


def _look_around(client: TestClient, programme_url: str) -> None:
    """Staff read Aarhus's and Odense's case pages; Anna and Ole read their own."""
    aarhus, odense = case_id(programme_url, AARHUS), case_id(programme_url, ODENSE)
    sign_in(client, ("secretariat",), email=STAFF)
    assert client.get(f"/cases/{aarhus}").status_code == 200
    assert client.get(f"/cases/{odense}").status_code == 200
    service = web_service(client)
    client.cookies.set(SESSION_COOKIE, participant_session(service, OLE))
    assert client.get(f"/portal/cases/{odense}").status_code == 200
    sign_in_as_participant(client, service, ANNA)
    assert client.get(f"/portal/cases/{aarhus}").status_code == 200


def test_the_page_lists_my_contacts_account_sessions_mail_and_who_looked(
    portal: TestClient, programme_url: str
) -> None:
    _look_around(portal, programme_url)
    page = portal.get("/portal/my-data")
    assert page.status_code == 200, page.text
    html = page.text
    assert "Anna Aarhus" in html  # the contact row (name, role, organisation)
    assert "contact_person" in html
    assert "Aarhus (751)" in html
    assert "Sign in to dk2020flow" in html  # the sign-in mail to her
    assert STAFF in html  # the secretariat looked at her case
    assert "Who looked at your data" in html  # her contact row's language is English
    # Another person's data is never on it: Ole's name, address, his reads of Odense.
    assert OLE not in html
    assert "Ole Odense" not in html
    assert f"case #{case_id(programme_url, ODENSE)}" not in html


def test_the_download_has_all_of_it_and_is_logged(portal: TestClient, programme_url: str) -> None:
    _look_around(portal, programme_url)
    aarhus, odense = case_id(programme_url, AARHUS), case_id(programme_url, ODENSE)
    response = portal.get("/portal/my-data.json")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["content-type"].startswith("application/json")
    data = json.loads(response.text)
    assert data["email"] == ANNA
    assert [(c["organisation_code"], c["role"], c["name"]) for c in data["contacts"]] == [
        (AARHUS, "contact_person", "Anna Aarhus")
    ]
    assert data["account"]["email"] == ANNA
    assert data["account"]["kind"] == "participant"
    assert len(data["sessions"]) >= 1
    assert data["mail"], "the sign-in mail to her"
    assert all(any(a[1] == ANNA for a in m["to"] + m["cc"]) for m in data["mail"])
    # A one-time sign-in link is never written into the file.
    assert all("token=" not in m["text"] for m in data["mail"])
    seen = {(a["actor"], a["via"], a["case_id"]) for a in data["access_log"]}
    assert (STAFF, "console", aarhus) in seen
    assert (ANNA, "portal", aarhus) in seen
    # The download itself is in the log (written before the file was made).
    assert any(a["action"] == "export" and a["subject"] == ANNA for a in data["access_log"])
    # Nothing of Ole, nor of the reads of Odense's case.
    assert OLE not in response.text
    assert "Ole Odense" not in response.text
    assert all(a["case_id"] != odense for a in data["access_log"])
    again = json.loads(portal.get("/portal/my-data.json").text)
    assert sum(a["action"] == "export" for a in again["access_log"]) == 2


def test_every_read_of_a_case_is_one_entry_with_who_when_and_how(
    portal: TestClient, programme_url: str
) -> None:
    _look_around(portal, programme_url)
    service = web_service(portal)
    service.access_log.flush()  # written within a second; a test does not wait for it
    with service.store.read() as tx:
        entries = tx.access_entries("nobody@example.dk", [case_id(programme_url, ODENSE)])
    assert [(e.actor, e.actor_kind, e.via, e.action) for e in entries] == [
        (STAFF, "staff", "console", "read"),
        (OLE, "participant", "portal", "read"),
    ]
    assert all(e.at == service.clock.now() for e in entries)


def test_staff_get_403_and_nobody_signed_in_goes_to_sign_in(
    portal: TestClient, programme_url: str
) -> None:
    assert portal.get("/portal/my-data").status_code == 303
    assert portal.get("/portal/my-data.json").status_code == 303
    sign_in(portal, ("secretariat",), email=STAFF)
    assert portal.get("/portal/my-data").status_code == 403
    assert portal.get("/portal/my-data.json").status_code == 403


def test_after_forgetting_the_console_shows_the_history_with_the_name_replaced(
    portal: TestClient, programme_url: str
) -> None:
    from dk2020flow.service.filetypes import sample
    from dk2020flow.service.privacy import FORGOTTEN, forget

    from .conftest import csrf_of, post_form

    service = web_service(portal)
    aarhus = case_id(programme_url, AARHUS)
    sign_in_as_participant(portal, service, ANNA)
    uploaded = portal.post(
        f"/portal/cases/{aarhus}/documents/application",
        data={"csrf_token": csrf_of(portal)},
        files={"file": ("ansoegning.pdf", sample("pdf"), "application/pdf")},
    )
    assert uploaded.status_code == 303, uploaded.text
    fields = {"commitment_signed": "true", "staff_hours_per_week": "30"}
    done = post_form(portal, f"/portal/cases/{aarhus}/fire/submit_application", fields)
    assert done.status_code == 303, done.text

    plan = forget(service, ANNA, apply=True)
    assert plan.counts.contacts == 1 and plan.counts.users == 1 and plan.counts.documents == 1
    # Her session went with her account: the portal sends her to sign in.
    assert portal.get("/portal").status_code == 303

    sign_in(portal, ("secretariat",), email=STAFF)
    page = portal.get(f"/cases/{aarhus}")
    assert page.status_code == 200
    assert ANNA not in page.text
    assert "Anna Aarhus" not in page.text
    assert FORGOTTEN in page.text  # the history's actor of the application
    # The stored history and its hash chain are as they were.
    [check] = service.verify(f"#{aarhus}")
    assert check.ok, check.problems
