"""The mail a case gets, end to end over a real SQLite store: who it is from, who it
greets, what each step says and which calendar file it carries (issue 15, points 13, 15-17)."""

from __future__ import annotations

import datetime as dt
import email
import io
from collections.abc import Iterator
from email import policy
from pathlib import Path

import icalendar
import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.runtime.delivery import build_email
from dk2020flow.service import Service
from dk2020flow.service.filetypes import sample
from dk2020flow.settings import Settings
from dk2020flow.store.port import Contact, OutboxMessage
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
DK2020 = ROOT / "workflows" / "dk2020.yaml"
STATUS = ROOT / "workflows" / "status_reports.yaml"
JUNE = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)
FALLBACK = ("dk2020flow", "fallback@example.org")
COMMENT = "Forpligtelseserklæringen mangler borgmesterens underskrift."


@pytest.fixture
def sql_store(sqlite_url: str) -> Iterator[SqlStore]:
    store = SqlStore(sqlite_url)
    try:
        yield store
    finally:
        store.close()


def _service(store: SqlStore, settings: Settings | None = None) -> Service:
    svc = Service(store, clock=ManualClock(JUNE), settings=settings)
    svc.load_workflow(DK2020)
    svc.load_workflow(STATUS)
    with store.transaction() as tx:
        aarhus = tx.find_organisation("Aarhus")
        assert aarhus is not None
        tx.replace_participants(
            [aarhus],
            [
                Contact(
                    organisation_code=aarhus.code,
                    role="mayor",
                    name="Jacob Bundsgaard",
                    email="borgmester@aarhus.example.dk",
                    language="da",
                ),
                Contact(
                    organisation_code=aarhus.code,
                    role="contact_person",
                    name="Mette Lindholm",
                    email="mette@aarhus.example.dk",
                    language="da",
                ),
                Contact(
                    organisation_code=aarhus.code,
                    role="regional_advisor",
                    name="Søren Kjær",
                    email="soren@rm.example.dk",
                    language="da",
                ),
            ],
        )
    return svc


@pytest.fixture
def service(sql_store: SqlStore) -> Service:
    return _service(sql_store)


def _outbox(store: SqlStore) -> list[OutboxMessage]:
    with store.read() as tx:
        return sorted(tx.outbox(limit=10_000), key=lambda m: m.id)


def _new(store: SqlStore, seen: int) -> list[OutboxMessage]:
    return [m for m in _outbox(store) if m.id > seen]


def _last_id(store: SqlStore) -> int:
    return max((m.id for m in _outbox(store)), default=0)


def _parsed(row: OutboxMessage) -> email.message.EmailMessage:
    message = build_email(row, sender=FALLBACK, date=JUNE)
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def _decided(service: Service) -> None:
    service.open_case("dk2020", "Aarhus", actor="KL", role="follow_up")
    service.fire(
        "Aarhus",
        "decide_participate",
        actor="Mette Lindholm",
        role="contact_person",
        workflow="dk2020",
        data={
            "cohort": "round1",
            "decision_date": "2020-08-20",
            "contact_person_name": "Mette Lindholm",
            "contact_person_email": "mette@aarhus.example.dk",
        },
    )


def _hand_in(service: Service, document: str) -> None:
    service.documents.attach(
        "Aarhus",
        document,
        io.BytesIO(sample("pdf")),
        filename=f"{document}.pdf",
        actor="Mette Lindholm",
        role="contact_person",
        workflow="dk2020",
    )


def _submitted(service: Service) -> None:
    _decided(service)
    _hand_in(service, "application")
    service.fire(
        "Aarhus",
        "submit_application",
        actor="Mette Lindholm",
        role="contact_person",
        workflow="dk2020",
        data={"commitment_signed": True, "staff_hours_per_week": 40},
    )


# ----------------------------------------------------------------------------- 17: the sender


def test_mail_is_from_the_workflow_s_sender(service: Service, sql_store: SqlStore) -> None:
    service.open_case("dk2020", "Aarhus", actor="KL", role="follow_up")
    service.open_case("status_reports", "Aarhus", actor="KA", role="alliance_secretariat")
    senders = {row.template: _parsed(row)["From"].addresses[0] for row in _outbox(sql_store)}
    dk2020, status = senders["invitation"], senders["welcome"]
    assert (dk2020.display_name, dk2020.addr_spec) == (
        "DK2020-sekretariatet hos CONCITO",
        "dk2020@concito.example.dk",
    )
    assert (status.display_name, status.addr_spec) == (
        "Klimaalliancens sekretariat",
        "status@klimaalliancen.example.dk",
    )
    assert "DK2020" not in status.display_name


def test_a_setting_overrides_the_workflow_s_sender(sql_store: SqlStore) -> None:
    settings = Settings(mail_sender="noreply@kl.example.dk", mail_sender_name="KL")
    service = _service(sql_store, settings)
    service.open_case("status_reports", "Aarhus", actor="KA", role="alliance_secretariat")
    [row] = _outbox(sql_store)
    [sender] = _parsed(row)["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("KL", "noreply@kl.example.dk")


# ------------------------------------------------------------------- 16: one copy per recipient


def test_each_recipient_gets_a_copy_that_greets_them(service: Service, sql_store: SqlStore) -> None:
    _submitted(service)
    seen = _last_id(sql_store)
    service.fire(
        "Aarhus", "accept_application", actor="CONCITO", role="secretariat", workflow="dk2020"
    )
    rows = [r for r in _new(sql_store, seen) if r.template == "application_accepted"]
    assert sorted(r.to for r in rows) == [
        (("Jacob Bundsgaard", "borgmester@aarhus.example.dk"),),
        (("Mette Lindholm", "mette@aarhus.example.dk"),),
    ]
    for row in rows:
        [(name, _)] = row.to
        assert name in row.text.splitlines()[0]


def test_cc_recipients_get_one_copy(service: Service, sql_store: SqlStore) -> None:
    service.open_case(
        "dk2020",
        "Aarhus",
        actor="KL",
        role="follow_up",
        cohort="round1",
        state="onboarding",
        reason="test",
    )
    service.fire(
        "Aarhus",
        "withdraw",
        actor="Mette Lindholm",
        role="contact_person",
        workflow="dk2020",
        data={"withdraw_reason": "Kommunalbestyrelsen har besluttet at udtræde"},
    )
    rows = [r for r in _outbox(sql_store) if r.template == "withdrawal_confirmation"]
    assert len(rows) == 2  # to: [mayor, contact_person]
    copies = [address for r in rows for _, address in r.cc]
    assert copies.count("dk2020@kl.example.dk") == 1


# -------------------------------------------------------------- 15: each step says what happened


def test_asking_for_changes_says_so_and_carries_the_comment(
    service: Service, sql_store: SqlStore
) -> None:
    _submitted(service)
    seen = _last_id(sql_store)
    service.fire(
        "Aarhus",
        "request_application_changes",
        actor="CONCITO",
        role="secretariat",
        workflow="dk2020",
        comment=COMMENT,
    )
    rows = _new(sql_store, seen)
    assert [r.template for r in rows] == ["application_changes_requested"]
    [row] = rows
    assert row.to == (("Mette Lindholm", "mette@aarhus.example.dk"),)
    assert COMMENT in row.text and COMMENT in row.html
    assert "Velkommen" not in row.subject


def test_the_comment_of_a_trigger_reaches_the_mail_of_the_state_it_enters(
    service: Service, sql_store: SqlStore
) -> None:
    service.open_case(
        "dk2020",
        "Aarhus",
        actor="KL",
        role="follow_up",
        cohort="round1",
        state="drafting",
        reason="test",
    )
    _hand_in(service, "draft_plan")
    service.fire(
        "Aarhus",
        "submit_plan",
        actor="Mette Lindholm",
        role="contact_person",
        workflow="dk2020",
        data={"plan_url": "https://aarhus.example.dk/plan.pdf"},
    )
    seen = _last_id(sql_store)
    service.fire(
        "Aarhus",
        "request_revision",
        actor="CONCITO",
        role="secretariat",
        workflow="dk2020",
        comment="Delmål for 2030 mangler i afsnit 4.",
    )
    [row] = [r for r in _new(sql_store, seen) if r.template == "revision_requested"]
    assert "Delmål for 2030 mangler i afsnit 4." in row.text


def test_an_exemption_is_not_announced_as_an_accepted_report(
    service: Service, sql_store: SqlStore
) -> None:
    service.open_case(
        "status_reports",
        "Aarhus",
        actor="KA",
        role="alliance_secretariat",
        state="reporting",
        reason="test",
    )
    seen = _last_id(sql_store)
    service.fire(
        "Aarhus",
        "grant_exemption",
        actor="KA",
        role="alliance_secretariat",
        workflow="status_reports",
        data={"exemption_reason": "Ny kommunalbestyrelse", "next_cycle_opens": "2025-03-01"},
        comment="Vi ses til næste år.",
    )
    templates = [r.template for r in _new(sql_store, seen)]
    assert "exemption_granted" in templates
    assert "report_accepted" not in templates


# ------------------------------------------------------------------------- 13: calendar files


def _calendar(row: OutboxMessage) -> icalendar.Calendar:
    assert row.ics is not None
    return icalendar.Calendar.from_ical(row.ics)


def test_a_deadline_is_titled_in_the_mail_s_language_and_escalations_carry_none(
    service: Service, sql_store: SqlStore
) -> None:
    service.open_case("dk2020", "Aarhus", actor="KL", role="follow_up")
    seen = _last_id(sql_store)
    service.fire_due(dt.datetime(2020, 8, 18, 9, 0, tzinfo=dt.UTC))  # 14 days before
    [reminder] = [r for r in _new(sql_store, seen) if r.template == "decision_reminder"]
    calendar = _calendar(reminder)
    [event] = calendar.walk("VEVENT")
    summary = str(event["SUMMARY"])
    assert "reply_deadline" not in summary
    assert "svar" in summary.lower()
    assert str(event["ORGANIZER"]) == "mailto:dk2020@concito.example.dk"
    seen = _last_id(sql_store)
    service.fire_due(dt.datetime(2020, 9, 2, 9, 0, tzinfo=dt.UTC))  # overdue and escalated
    rows = _new(sql_store, seen)
    [escalation] = [r for r in rows if r.template == "escalation"]
    assert escalation.ics is None
    assert any(r.template == "decision_overdue" and r.ics for r in rows)


def test_an_event_invitation_is_a_request_with_organizer_and_attendees(
    service: Service, sql_store: SqlStore
) -> None:
    service.open_case(
        "dk2020",
        "Aarhus",
        actor="KL",
        role="follow_up",
        cohort="round1",
        state="onboarding",
        reason="test",
    )
    seen = _last_id(sql_store)
    service.fire_due(dt.datetime(2020, 11, 5, 9, 0, tzinfo=dt.UTC))
    rows = [r for r in _new(sql_store, seen) if r.template == "event_invitation"]
    assert rows
    for row in rows:
        calendar = _calendar(row)
        assert calendar["METHOD"] == "REQUEST"
        [event] = calendar.walk("VEVENT")
        organizer = event["ORGANIZER"]
        assert str(organizer) == "mailto:dk2020@concito.example.dk"
        assert organizer.params["CN"] == "DK2020-sekretariatet hos CONCITO"
        attendees = event.get("ATTENDEE")
        attendees = attendees if isinstance(attendees, list) else [attendees]
        expected = {address for _, address in row.to + row.cc}
        assert {str(a).removeprefix("mailto:") for a in attendees} == expected
        for attendee in attendees:
            assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
            assert attendee.params["RSVP"] == "TRUE"
            assert attendee.params["CN"]


def test_the_reviewer_s_comment_reaches_the_organisation(
    service: Service, sql_store: SqlStore
) -> None:
    service.open_case(
        "status_reports",
        "Aarhus",
        actor="KA",
        role="alliance_secretariat",
        state="reporting",
        reason="test",
    )
    service.fire(
        "Aarhus",
        "submit_report",
        actor="Mette Lindholm",
        role="contact_person",
        workflow="status_reports",
        data={
            "report_year": 2024,
            "report_url": "https://aarhus.example.dk/s.pdf",
            "progress": "behind",
        },
    )
    seen = _last_id(sql_store)
    service.fire(
        "Aarhus",
        "request_changes",
        actor="KA",
        role="reviewer",
        workflow="status_reports",
        data={"review_comment": "Målstien for 2030 mangler."},
    )
    [row] = [r for r in _new(sql_store, seen) if r.template == "changes_requested"]
    assert "Målstien for 2030 mangler." in row.text and "Målstien for 2030 mangler." in row.html
