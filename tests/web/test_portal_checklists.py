"""The CAPF screening answered in the browser: the reviewer's statuses and comments on the
portal's case page, the contact person's answers by its form, the console showing them,
and the revision loop after it (over the web tests' programme, SQLite)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dk2020flow.engine.records import EventKind
from dk2020flow.service.core import Service
from dk2020flow.service.filetypes import sample

from .conftest import csrf_of, post_form, sign_in, web_service
from .portal_world import AARHUS, ANNA, ODENSE, OLE, add_contacts, sign_in_as_participant

STAFF = "signe@concito.example.dk"
COMMENTS = {
    "P2.3": "Basisårets opgørelse mangler transport.",
    "P3.5": "Angiv effekterne i ton CO2e.",
}


def _upload(service: Service, slot: str, actor: str, role: str) -> None:
    service.documents.attach(
        "Aarhus",
        slot,
        io.BytesIO(sample("pdf", f"Aarhus {slot}")),
        filename=f"{slot}.pdf",
        actor=actor,
        role=role,
        workflow="dk2020",
    )


def _fire(service: Service, trigger: str, role: str, **data: Any) -> None:
    actor = ANNA if role == "contact_person" else STAFF
    service.fire("Aarhus", trigger, actor=actor, role=role, data=data, workflow="dk2020")


def _to_revising(service: Service) -> int:
    """Aarhus (decided for round 1) through the application and the draft plan to a
    screening that asks for a revision of P2.3 and P3.5."""
    _upload(service, "application", ANNA, "contact_person")
    _fire(service, "submit_application", "contact_person", commitment_signed="true",
          staff_hours_per_week="30")  # fmt: skip
    _fire(service, "accept_application", "secretariat")
    _fire(service, "start_round", "secretariat")
    _fire(service, "complete_onboarding", "secretariat", advisor_name="Bo Rådgiver")
    _fire(service, "complete_evidence", "contact_person", inventory_base_year="2019")
    _upload(service, "draft_plan", ANNA, "contact_person")
    _fire(service, "submit_plan", "contact_person", plan_url="https://aarhus.example.dk/plan")
    with service.store.read() as tx:
        [case] = tx.find_cases_by_ref(AARHUS, None)
        wf = service.compiled(tx, case.definition_id)
    items = dict.fromkeys(wf.workflow.checklists["capf"].items, ("met", ""))
    items.update({item: ("not_met", comment) for item, comment in COMMENTS.items()})
    service.check("Aarhus", "capf", items, actor=STAFF, role="secretariat", workflow="dk2020")
    _fire(service, "request_revision", "secretariat")
    return case.id or 0


def _state(service: Service, case: int) -> tuple[Any, ...]:
    with service.store.read() as tx:
        stored = tx.load_case(case)
        return stored.version, len(tx.history(case)), stored.checklists


@pytest.fixture
def revising(client: TestClient, programme_url: str) -> int:
    add_contacts(programme_url)
    return _to_revising(web_service(client))


def test_the_contact_answers_the_comments_and_resubmits(client: TestClient, revising: int) -> None:
    service = web_service(client)
    sign_in_as_participant(client, service, ANNA)
    url = f"/portal/cases/{revising}"
    page = client.get(url)
    assert page.status_code == 200
    # Each item's status and the reviewer's comment; a field for the two to revise.
    assert "2 requirement(s) need revision" in page.text
    for item, comment in COMMENTS.items():
        assert comment in page.text
        assert f'name="answer:{item}"' in page.text
    assert 'name="answer:P1.1"' not in page.text  # met: nothing to answer
    assert page.text.count("Not met") == 2

    # Nothing written: refused with the form's message, nothing changes.
    before = _state(service, revising)
    empty = post_form(client, f"{url}/checklists/capf/answers", {"answer:P2.3": "  "})
    assert empty.status_code == 422
    assert "Write an answer to at least one requirement" in empty.text
    assert _state(service, revising) == before

    answered = post_form(
        client,
        f"{url}/checklists/capf/answers",
        {"answer:P2.3": "Transport er med i bilag B.", "answer:P3.5": ""},
    )
    assert answered.status_code == 303, answered.text
    assert answered.headers["location"].startswith(f"{url}?done=answered")
    with service.store.read() as tx:
        case = tx.load_case(revising)
        last = tx.history(revising)[-1].record
    capf = case.checklists["capf"]
    assert capf["P2.3"].answer == "Transport er med i bilag B."
    assert capf["P2.3"].status == "not_met" and capf["P3.5"].answer == ""
    assert (last.kind, last.actor, last.role) == (
        EventKind.CHECKLIST_ANSWER,
        ANNA,
        "contact_person",
    )
    assert last.data == {"checklist": "capf", "answers": {"P2.3": "Transport er med i bilag B."}}
    shown = client.get(f"{url}?done=answered")
    assert "Thank you, your answers have been recorded." in shown.text
    assert "Transport er med i bilag B." in shown.text

    # The second answer alone; the first stays as it was.
    post_form(
        client,
        f"{url}/checklists/capf/answers",
        {"answer:P2.3": "Transport er med i bilag B.", "answer:P3.5": "Se tabel 4."},
    )
    with service.store.read() as tx:
        capf = tx.load_case(revising).checklists["capf"]
        answers = [e for e in tx.history(revising) if e.record.kind is EventKind.CHECKLIST_ANSWER]
    assert (capf["P2.3"].answer, capf["P3.5"].answer) == (
        "Transport er med i bilag B.",
        "Se tabel 4.",
    )
    assert [e.record.data["answers"] for e in answers][-1] == {"P3.5": "Se tabel 4."}

    # The console's case page shows the answers to the secretariat.
    client.cookies.clear()
    sign_in(client, ("secretariat",), email=STAFF)
    console = client.get(f"/cases/{revising}")
    assert console.status_code == 200
    assert "The participant&#39;s answer" in console.text or "Deltagerens svar" in console.text
    assert "Se tabel 4." in console.text and "Transport er med i bilag B." in console.text

    # The revision loop: the revised plan uploaded and resubmitted, back to screening.
    client.cookies.clear()
    sign_in_as_participant(client, service, ANNA)
    uploaded = client.post(
        f"{url}/documents/draft_plan",
        data={"csrf_token": csrf_of(client)},
        files={"file": ("plan-2.pdf", sample("pdf", "revised"), "application/pdf")},
    )
    assert uploaded.status_code == 303, uploaded.text
    resubmitted = post_form(
        client, f"{url}/fire/resubmit_plan", {"plan_url": "https://aarhus.example.dk/plan-2"}
    )
    assert resubmitted.status_code == 303, resubmitted.text
    with service.store.read() as tx:
        assert tx.load_case(revising).state == "screening"
    # The log (answers included) replays to the stored case and its hash chain holds.
    [checked] = service.verify(f"#{revising}")
    assert not checked.problems, checked.problems


def test_a_contact_of_another_organisation_gets_403_and_nothing_changes(
    client: TestClient, revising: int
) -> None:
    service = web_service(client)
    sign_in_as_participant(client, service, OLE)
    before = _state(service, revising)
    for item in ("P2.3", "P3.5"):
        answered = post_form(
            client, f"/portal/cases/{revising}/checklists/capf/answers", {f"answer:{item}": "x"}
        )
        assert answered.status_code == 403
    assert client.get(f"/portal/cases/{revising}").status_code == 403
    assert _state(service, revising) == before
    # Odense's own case has no screening yet: its page offers no answer form.
    with service.store.read() as tx:
        [odense] = tx.find_cases_by_ref(ODENSE, None)
    assert "answer:" not in client.get(f"/portal/cases/{odense.id}").text


def test_a_role_outside_answered_by_is_refused_and_logged(
    client: TestClient, programme_url: str, revising: int
) -> None:
    """The mayor of Aarhus sees the comments but may not answer: the engine refuses (409),
    the refusal is in the case's log, and the checklist is unchanged."""
    from sqlalchemy import create_engine, insert

    from dk2020flow.store import tables as t

    mayor = "mette@aarhus.example.dk"
    engine = create_engine(programme_url)
    with engine.begin() as conn:
        conn.execute(
            insert(t.contacts),
            [{"organisation_code": AARHUS, "role": "mayor", "name": "Mette", "email": mayor,
              "language": "da"}],
        )  # fmt: skip
    engine.dispose()
    service = web_service(client)
    sign_in_as_participant(client, service, mayor)
    url = f"/portal/cases/{revising}"
    page = client.get(url)
    assert COMMENTS["P2.3"] in page.text and 'name="answer:' not in page.text
    before = _state(service, revising)
    refused = post_form(client, f"{url}/checklists/capf/answers", {"answer:P2.3": "Ja."})
    assert refused.status_code == 409
    assert "may not answer capf" in refused.text
    with service.store.read() as tx:
        case = tx.load_case(revising)
        last = tx.history(revising)[-1].record
    assert case.checklists == before[2] and case.version == before[0]
    assert last.kind is EventKind.REFUSED and last.actor == mayor
