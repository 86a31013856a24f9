"""The participants' portal: sign-in by a contact's address, "my cases", one case, its
actions, documents and events (over the web tests' programme, SQLite)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from dk2020flow.service.filetypes import sample
from dk2020flow.store import tables as t

from .conftest import post_form, web_service
from .portal_world import (
    AARHUS,
    ANNA,
    ODENSE,
    add_contacts,
    case_id,
    link_of,
    sign_in_as_participant,
)


@pytest.fixture
def portal(client: TestClient, programme_url: str) -> TestClient:
    add_contacts(programme_url)
    return client


def _outbox_text(client: TestClient, email: str) -> str:
    service = web_service(client)
    with service.store.read() as tx:
        mails = [m for m in tx.outbox(limit=1000) if any(a == email for _, a in m.to)]
    assert mails, f"no mail to {email}"
    return mails[-1].text if mails[-1].id > mails[0].id else mails[0].text


def test_a_contact_signs_in_by_link_and_lands_on_the_portal(portal: TestClient) -> None:
    response = post_form(portal, "/sign-in", {"email": ANNA.upper()})
    assert response.status_code == 200
    service = web_service(portal)
    with service.store.read() as tx:
        [mail] = [m for m in tx.outbox(limit=1000) if m.template == "sign_in"]
        user = tx.find_user(ANNA)
    assert user is not None and user.kind == "participant" and user.roles == ()
    assert mail.language == "en" and mail.subject == "Sign in to dk2020flow"
    token = link_of(mail.text)
    assert portal.get(f"/sign-in/link?token={token}").status_code == 200
    signed = post_form(portal, "/sign-in/link", {"token": token, "next": "/"})
    assert signed.status_code == 303 and signed.headers["location"] == "/portal"
    page = portal.get("/portal")
    assert page.status_code == 200
    assert "Aarhus" in page.text and "Odense" not in page.text
    assert "Submit the application" in page.text or "application" in page.text.lower()


def test_an_unknown_address_gets_the_same_answer_and_no_account(portal: TestClient) -> None:
    known = post_form(portal, "/sign-in", {"email": ANNA})
    unknown = post_form(portal, "/sign-in", {"email": "nobody@example.dk"})
    assert unknown.status_code == known.status_code == 200
    assert unknown.text.replace("nobody@example.dk", ANNA) == known.text
    with web_service(portal).store.read() as tx:
        assert tx.find_user("nobody@example.dk") is None


def test_staff_and_participants_keep_to_their_own_side(
    portal: TestClient, client_as: object
) -> None:
    sign_in_as_participant(portal, web_service(portal), ANNA)
    for url in ("/", "/cases", "/account", f"/cases/{case_id_of(portal, AARHUS)}"):
        assert portal.get(url).status_code == 403, url


def case_id_of(client: TestClient, code: str) -> int:
    service = web_service(client)
    with service.store.read() as tx:
        [case] = tx.find_cases_by_ref(code, None)
    return case.id or 0


def test_the_case_page_shows_the_path_actions_deadlines_and_mail(portal: TestClient) -> None:
    sign_in_as_participant(portal, web_service(portal), ANNA)
    aarhus = case_id_of(portal, AARHUS)
    page = portal.get(f"/portal/cases/{aarhus}")
    assert page.status_code == 200, page.text
    text = page.text
    assert 'aria-current="step"' in text
    assert "form-fire-submit_application" in text
    assert 'name="commitment_signed"' in text
    assert "form-upload-application" in text
    assert 'enctype="multipart/form-data"' in text
    # staff-only actions are not offered
    assert "accept_application" not in text


def test_submitting_the_application_with_its_document(portal: TestClient) -> None:
    service = web_service(portal)
    sign_in_as_participant(portal, service, ANNA)
    aarhus = case_id_of(portal, AARHUS)
    url = f"/portal/cases/{aarhus}"
    fields = {"commitment_signed": "true", "staff_hours_per_week": "30"}
    # Without the document the engine refuses, and nothing changes.
    refused = post_form(portal, f"{url}/fire/submit_application", fields)
    assert refused.status_code in (409, 422), refused.text
    assert "application" in refused.text
    # A file of the wrong type is refused with a clear message.
    token = portal.cookies.get("dk2020flow_csrf") or ""
    wrong = portal.post(
        f"{url}/documents/application",
        data={"csrf_token": _csrf(portal)},
        files={"file": ("letter.pdf", b"not a pdf at all", "application/pdf")},
    )
    assert wrong.status_code == 422, wrong.text
    del token
    uploaded = portal.post(
        f"{url}/documents/application",
        data={"csrf_token": _csrf(portal)},
        files={"file": ("ansoegning.pdf", sample("pdf"), "application/pdf")},
    )
    assert uploaded.status_code == 303, uploaded.text
    page = portal.get(url)
    assert "ansoegning.pdf" in page.text
    with service.store.read() as tx:
        [document] = tx.documents_of(aarhus)
    download = portal.get(f"{url}/documents/{document.id}")
    assert download.status_code == 200 and download.content == sample("pdf")
    done = post_form(portal, f"{url}/fire/submit_application", fields)
    assert done.status_code == 303, done.text
    with service.store.read() as tx:
        case = tx.load_case(aarhus)
        events = tx.history(aarhus)
    assert case.state == "application_submitted"
    assert events[-1].record.actor == ANNA or any(e.record.actor == ANNA for e in events)
    after = portal.get(url)
    assert "Application received" in after.text or "application_submitted" not in after.text


def test_a_role_the_person_does_not_hold_is_refused(portal: TestClient) -> None:
    sign_in_as_participant(portal, web_service(portal), ANNA)
    aarhus = case_id_of(portal, AARHUS)
    response = post_form(
        portal, f"/portal/cases/{aarhus}/fire/accept_application", {"_role": "secretariat"}
    )
    assert response.status_code == 403


def test_the_language_follows_the_contact_row(portal: TestClient) -> None:
    sign_in_as_participant(portal, web_service(portal), ANNA)
    assert "My cases" in portal.get("/portal").text


def _csrf(client: TestClient) -> str:
    from .conftest import csrf_of

    return csrf_of(client)


def test_an_event_calendar_of_the_round(portal: TestClient, programme_url: str) -> None:
    sign_in_as_participant(portal, web_service(portal), ANNA)
    odense = case_id(programme_url, ODENSE)
    assert odense
    aarhus = case_id_of(portal, AARHUS)
    # Round 1's events are past at the tests' clock; the .ics of one is still served.
    service = web_service(portal)
    with service.store.read() as tx:
        case = tx.load_case(aarhus)
        wf = service.compiled(tx, case.definition_id)
    [name, *_] = wf.workflow.cohorts["round1"].events
    response = portal.get(f"/portal/cases/{aarhus}/events/round1.{name}.ics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    assert "BEGIN:VCALENDAR" in response.text
    assert portal.get(f"/portal/cases/{aarhus}/events/round2.{name}.ics").status_code == 404
    assert t.contacts is not None
