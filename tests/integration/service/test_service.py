"""The service over a real store (SQLite and PostgreSQL): one transaction per change."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.engine.records import EventKind
from dk2020flow.engine.replay import replay
from dk2020flow.errors import ConflictError, RefusedError
from dk2020flow.service import Service
from dk2020flow.store.port import CaseFilter, Contact, OutboxStatus
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
MINI = ROOT / "tests" / "data" / "mini" / "workflows" / "mini.yaml"
START = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def service(store: SqlStore) -> Service:
    svc = Service(store, clock=ManualClock(START))
    svc.load_workflow(MINI)
    with store.transaction() as tx:
        aarhus = tx.find_organisation("Aarhus")
        assert aarhus is not None
        tx.replace_participants(
            tx.organisations(),
            [
                Contact(
                    organisation_code=aarhus.code,
                    role="contact_person",
                    name="Anna Jensen",
                    email="anna@aarhus.example.dk",
                    language="da",
                )
            ],
        )
    return svc


def counts(store: SqlStore, case_id: int) -> tuple[int, int, int]:
    with store.read() as tx:
        return (
            len(tx.history(case_id)),
            len(tx.timers_of(case_id)),
            len(tx.outbox(case_id=case_id, limit=1000)),
        )


def test_loading_an_unchanged_file_is_a_noop(service: Service) -> None:
    stored, created = service.load_workflow(MINI)
    assert not created
    assert [d.id for d in service.definitions()] == [stored.id]


def test_open_fire_and_history(service: Service, store: SqlStore) -> None:
    case = service.open_case("mini", "Aarhus", actor="tester", role="secretariat")
    assert case.id is not None and case.state == "draft"
    assert counts(store, case.id) == (1, 2, 1)  # opened event; reminder + deadline; welcome mail
    moved = service.fire(
        "Aarhus", "submit", actor="anna", role="contact_person", data={"note": "klar"}
    )
    assert moved.state == "submitted"
    _, events = service.history("751")
    assert [e.record.kind for e in events] == [EventKind.OPENED, EventKind.TRANSITION]
    assert events[1].record.actor == "anna" and events[1].record.role == "contact_person"
    with store.read() as tx:
        pending = tx.timers_of(case.id)
    assert {t.timer for t in pending} == {"review"}  # the draft timers were cancelled


def test_refusal_changes_nothing(service: Service, store: SqlStore) -> None:
    case = service.open_case("mini", "Aarhus", actor="tester", role="secretariat")
    assert case.id is not None
    before = counts(store, case.id)
    with pytest.raises(RefusedError):
        service.fire("Aarhus", "accept", actor="x", role="secretariat")
    with pytest.raises(RefusedError):
        service.fire("Aarhus", "submit", actor="x", role="contact_person", data={"nope": "1"})
    assert counts(store, case.id) == before
    assert service.show("Aarhus").case.state == "draft"


def test_role_refusal_is_logged(service: Service) -> None:
    service.open_case("mini", "Aarhus", actor="tester", role="secretariat")
    with pytest.raises(RefusedError):
        service.fire("Aarhus", "submit", actor="mallory", role="secretariat")
    _, events = service.history("Aarhus")
    assert events[-1].record.kind is EventKind.REFUSED
    assert events[-1].record.actor == "mallory"


def test_concurrent_change_conflicts(service: Service, store: SqlStore) -> None:
    case = service.open_case("mini", "Aarhus", actor="tester", role="secretariat")
    assert case.id is not None
    wf = service.compiled_latest("mini")
    from dk2020flow.engine import decide

    first = decide.fire_trigger(
        wf, case, trigger="submit", actor=decide.Actor(name="a", role="contact_person"), now=START
    )
    second = decide.fire_trigger(
        wf, case, trigger="expire", actor=decide.Actor(name="b", role="secretariat"), now=START
    )
    with store.transaction() as tx:
        tx.apply(first, [], expected_version=case.version)
    before = counts(store, case.id)
    with pytest.raises(ConflictError), store.transaction() as tx:
        tx.apply(second, [], expected_version=case.version)
    assert counts(store, case.id) == before
    assert service.show("Aarhus").case.state == "submitted"


def test_timers_fire_once_and_mail_is_queued(service: Service, store: SqlStore) -> None:
    case = service.open_case("mini", "Aarhus", actor="tester", role="secretariat")
    assert case.id is not None
    reminder_at = dt.datetime(2020, 6, 27, 10, 0, tzinfo=dt.UTC)
    result = service.fire_due(reminder_at)
    assert result.fired == 1
    assert service.fire_due(reminder_at).total == 0  # nothing more at the same instant
    deadline = dt.datetime(2020, 6, 30, 10, 0, tzinfo=dt.UTC)
    assert service.fire_due(deadline).fired == 1
    shown = service.show("Aarhus")
    assert shown.case.state == "expired"  # the deadline's trigger moved the case
    with store.read() as tx:
        mails = tx.outbox(case_id=case.id, limit=100)
        history = tx.history(case.id)
    assert {m.status for m in mails} == {OutboxStatus.PENDING}
    assert len(mails) == 3  # welcome, reminder, deadline notice to the secretariat
    rebuilt = replay(service.compiled_latest("mini").workflow, [e.record for e in history])
    assert rebuilt.state == "expired"


def test_stale_timers_are_discarded(service: Service) -> None:
    service.open_case("mini", "Aarhus", actor="tester", role="secretariat")
    service.fire("Aarhus", "submit", actor="anna", role="contact_person")
    result = service.fire_due(START + dt.timedelta(days=60))
    # draft's reminder and deadline were cancelled on leaving; review fires once
    assert result.fired == 1
    assert service.show("Aarhus").case.state == "accepted"


def test_extend_deadline(service: Service) -> None:
    service.open_case("mini", "Aarhus", actor="tester", role="secretariat")
    with pytest.raises(RefusedError):
        service.extend(
            "Aarhus",
            "submit_by",
            actor="anna",
            role="contact_person",
            reason="x",
            to=START + dt.timedelta(days=30),
        )
    service.extend(
        "Aarhus",
        "submit_by",
        actor="sek",
        role="secretariat",
        reason="sick leave",
        to=START + dt.timedelta(days=30),
    )
    shown = service.show("Aarhus")
    deadlines = [t.due_at for t in shown.timers if t.kind == "deadline"]
    assert deadlines == [START + dt.timedelta(days=30)]
    assert service.fire_due(dt.datetime(2020, 6, 30, 11, 0, tzinfo=dt.UTC)).fired == 0


def test_list_filters(service: Service) -> None:
    service.open_case("mini", "Aarhus", actor="t", role="secretariat")
    service.open_case("mini", "Odense", actor="t", role="secretariat")
    assert len(service.list_cases(CaseFilter(workflow="mini"))) == 2
    assert [c.organisation_name for c in service.list_cases(CaseFilter(region="Syddanmark"))] == [
        "Odense"
    ]
    overdue = service.list_cases(CaseFilter(overdue_at=START + dt.timedelta(days=11)))
    assert len(overdue) == 2
    with pytest.raises(RefusedError, match="already has case"):
        service.open_case("mini", "Aarhus", actor="t", role="secretariat")


def test_parked_mail_is_rendered_again_once_a_contact_exists(
    service: Service, store: SqlStore
) -> None:
    case = service.open_case("mini", "Odense", actor="t", role="secretariat")
    assert case.id is not None
    with store.read() as tx:
        (parked,) = tx.outbox(case_id=case.id)
    assert parked.status is OutboxStatus.PARKED
    assert "contact_person" in parked.reason
    done, why = service.retry_message(parked.id)
    assert not done and "no recipient" in why  # still nobody to send it to
    with store.transaction() as tx:
        tx.replace_participants(
            [],
            [
                Contact(
                    organisation_code="461",
                    role="contact_person",
                    name="Ole Hansen",
                    email="ole@odense.example.dk",
                    language="en",
                )
            ],
        )
    assert service.retry_message(parked.id) == (True, "")
    with store.read() as tx:
        again = tx.outbox_message(parked.id)
    assert again is not None
    assert again.status is OutboxStatus.PENDING
    assert again.to == (("Ole Hansen", "ole@odense.example.dk"),)
    assert again.language == "en"
    assert again.message_id == parked.message_id  # the same row, the same Message-ID
    assert "Ole Hansen" in again.text
