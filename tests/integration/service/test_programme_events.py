"""Programme events (start conference, workshops) mail every case of the cohort in the named states."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.service import Service
from dk2020flow.store.port import Contact
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
DK2020 = ROOT / "workflows" / "dk2020.yaml"
JUNE = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def sql_store(sqlite_url: str) -> Iterator[SqlStore]:
    store = SqlStore(sqlite_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def service(sql_store: SqlStore) -> Service:
    store = sql_store
    svc = Service(store, clock=ManualClock(JUNE))
    svc.load_workflow(DK2020)
    with store.transaction() as tx:
        contacts = [
            Contact(
                organisation_code=m.code,
                role="contact_person",
                name=f"Kontakt {m.name}",
                email=f"klima@{m.code}.example.dk",
                language="da",
            )
            for m in tx.organisations()
        ]
        tx.replace_participants(tx.organisations(), contacts)
    return svc


def _aarhus_waits_for_the_round1_start(service: Service) -> None:
    service.open_case(
        "dk2020",
        "Aarhus",
        actor="KL",
        role="follow_up",
        cohort="round1",
        state="onboarding",
        reason="test: joins for the start",
    )


def test_start_conference_invites_the_waiting_cases_of_its_round(service: Service) -> None:
    for name in ("Aarhus", "Odense"):
        service.open_case(
            "dk2020",
            name,
            actor="KL",
            role="follow_up",
            cohort="round1",
            state="onboarding",
            reason="test: joins for the start",
        )
    service.open_case(
        "dk2020",
        "Vejle",
        actor="KL",
        role="follow_up",
        cohort="round2",
        state="onboarding",
        reason="test: other round",
    )
    invite_at = dt.datetime(2020, 11, 5, 9, 0, tzinfo=dt.UTC)  # 21 days before 26 November
    result = service.fire_due(invite_at)
    assert result.programme >= 1
    with service.store.read() as tx:
        invitations = [m for m in tx.outbox(limit=500) if m.template == "event_invitation"]
    assert sorted(m.to[0][1] for m in invitations) == [
        "klima@461.example.dk",
        "klima@751.example.dk",
    ]
    ics = invitations[0].ics or ""
    assert "BEGIN:VEVENT" in ics and "TZID=Europe/Copenhagen" in ics
    assert "UID:event-dk2020-round1-start_conference@dk2020flow" in ics
    assert service.fire_due(invite_at).programme == 0  # never twice


def test_preview_shows_what_would_be_sent(service: Service) -> None:
    service.open_case("dk2020", "Aarhus", actor="KL", role="follow_up")
    previews = service.preview("Aarhus", "decision_reminder")
    assert previews
    assert "31. august 2020" in previews[0].mail.text
    english = service.preview("Aarhus", "decision_reminder", language="en")
    assert "31 August 2020" in english[0].mail.text


def test_a_changed_event_sends_an_update_with_the_same_uid(
    service: Service, tmp_path: Path
) -> None:
    _aarhus_waits_for_the_round1_start(service)
    invite_at = dt.datetime(2020, 11, 5, 9, 0, tzinfo=dt.UTC)
    service.fire_due(invite_at)
    # Version 2020.2 moves the start conference to Nyborg and raises its sequence.
    changed = tmp_path / "workflows" / "dk2020.yaml"
    changed.parent.mkdir()
    (tmp_path / "notifications").symlink_to(ROOT / "notifications")
    (tmp_path / "workflows" / "data").symlink_to(ROOT / "workflows" / "data")
    text = DK2020.read_text(encoding="utf-8").replace('version: "2020.1"', 'version: "2020.2"')
    text = text.replace(
        'location: "Online (link følger)"\n        states:',
        'location: "Nyborg Strand"\n        sequence: 1\n        states:',
    )
    changed.write_text(text, encoding="utf-8")
    assert isinstance(service.clock, ManualClock)
    service.clock.set(invite_at)
    _, created = service.load_workflow(changed)
    assert created
    service.fire_due(invite_at + dt.timedelta(minutes=1))
    with service.store.read() as tx:
        mails = [m for m in tx.outbox(limit=500) if m.template == "event_invitation"]
        pending = tx.programme_timers()
    first, update = sorted(mails, key=lambda m: m.id)
    uid = "UID:event-dk2020-round1-start_conference@dk2020flow"
    assert uid in (first.ics or "") and uid in (update.ics or "")
    assert "SEQUENCE:1" in (update.ics or "") and "Nyborg Strand" in (update.ics or "")
    # Unchanged events are not armed twice: one pending row per firing, all of the new version.
    keys = [(p.cohort, p.event, p.kind, p.index) for p in pending]
    assert len(keys) == len(set(keys))
    assert {p.definition_id for p in pending} == {2}


def _version_without_round1_start(tmp_path: Path) -> Path:
    """dk2020.yaml as version 2020.2, without round 1's start conference."""
    changed = tmp_path / "workflows" / "dk2020.yaml"
    changed.parent.mkdir()
    (tmp_path / "notifications").symlink_to(ROOT / "notifications")
    (tmp_path / "workflows" / "data").symlink_to(ROOT / "workflows" / "data")
    text = DK2020.read_text(encoding="utf-8").replace('version: "2020.1"', 'version: "2020.2"')
    start = text.index('      start_conference:\n        title: {da: "Startkonference for runde 1"')
    end = text.index("      workshop_1_hovedstaden:")
    changed.write_text(text[:start] + text[end:], encoding="utf-8")
    return changed


def test_a_removed_event_whose_invitation_went_out_is_cancelled(
    service: Service, tmp_path: Path
) -> None:
    _aarhus_waits_for_the_round1_start(service)
    invite_at = dt.datetime(2020, 11, 5, 9, 0, tzinfo=dt.UTC)
    service.fire_due(invite_at)
    assert isinstance(service.clock, ManualClock)
    service.clock.set(invite_at)
    _, created = service.load_workflow(_version_without_round1_start(tmp_path))
    assert created
    result = service.fire_due(invite_at + dt.timedelta(minutes=1))
    assert result.programme == 1
    with service.store.read() as tx:
        mails = sorted(
            (m for m in tx.outbox(limit=500) if m.template == "event_invitation"),
            key=lambda m: m.id,
        )
        pending = tx.programme_timers()
    invitation, cancellation = mails
    uid = "UID:event-dk2020-round1-start_conference@dk2020flow"
    assert uid in (invitation.ics or "") and uid in (cancellation.ics or "")
    assert "METHOD:CANCEL" in (cancellation.ics or "")
    assert "STATUS:CANCELLED" in (cancellation.ics or "")
    assert "SEQUENCE:1" in (cancellation.ics or "")
    assert cancellation.to == invitation.to
    # The reminders of the removed event are gone with it, and nothing is sent twice.
    assert not [p for p in pending if p.event == "start_conference" and p.cohort == "round1"]
    assert service.fire_due(invite_at + dt.timedelta(minutes=2)).programme == 0


def test_a_removed_event_not_yet_announced_sends_nothing(service: Service, tmp_path: Path) -> None:
    _aarhus_waits_for_the_round1_start(service)
    before_invitation = dt.datetime(2020, 10, 1, 9, 0, tzinfo=dt.UTC)
    assert isinstance(service.clock, ManualClock)
    service.clock.set(before_invitation)
    service.load_workflow(_version_without_round1_start(tmp_path))
    service.fire_due(dt.datetime(2020, 11, 30, 9, 0, tzinfo=dt.UTC))
    with service.store.read() as tx:
        events = [m for m in tx.outbox(limit=500) if m.template == "event_invitation"]
    assert all("start_conference" not in (m.ics or "") for m in events)


# --------------------------------------------------------------- missed events (#15.7)

START_CONFERENCE = dt.datetime(2020, 11, 26, 9, 0, tzinfo=dt.UTC)  # 10:00 local


def _round1_start_rows(service: Service) -> list[tuple[str, int, dt.datetime]]:
    with service.store.read() as tx:
        return sorted(
            (p.kind, p.index, p.due_at)
            for p in tx.programme_timers()
            if p.cohort == "round1" and p.event == "start_conference"
        )


def test_loading_arms_events_as_of_the_given_now(sql_store: SqlStore) -> None:
    """A rehearsal loads with --now: the reminders are armed as of then, not the machine's clock."""
    service = Service(sql_store, clock=ManualClock(dt.datetime(2026, 1, 5, tzinfo=dt.UTC)))
    service.load_workflow(DK2020, now=JUNE)
    assert _round1_start_rows(service) == [
        ("event", 0, dt.datetime(2020, 11, 5, 9, 0, tzinfo=dt.UTC)),
        ("event_reminder", 1, dt.datetime(2020, 11, 19, 9, 0, tzinfo=dt.UTC)),
        ("event_reminder", 2, dt.datetime(2020, 11, 25, 9, 0, tzinfo=dt.UTC)),
    ]


def test_an_event_already_held_at_loading_is_not_armed(sql_store: SqlStore) -> None:
    service = Service(sql_store, clock=ManualClock(JUNE))
    service.load_workflow(DK2020, now=START_CONFERENCE + dt.timedelta(minutes=1))
    assert _round1_start_rows(service) == []


def test_an_event_to_come_whose_invitation_time_passed_is_invited_at_loading(
    sql_store: SqlStore,
) -> None:
    """Loaded between the invitation time and the event: invited at once, past reminders dropped."""
    service = Service(sql_store, clock=ManualClock(JUNE))
    loaded_at = START_CONFERENCE - dt.timedelta(days=3)
    service.load_workflow(DK2020, now=loaded_at)
    assert _round1_start_rows(service) == [
        ("event", 0, dt.datetime(2020, 11, 5, 9, 0, tzinfo=dt.UTC)),
        ("event_reminder", 2, dt.datetime(2020, 11, 25, 9, 0, tzinfo=dt.UTC)),
    ]


def test_an_invitation_missed_until_the_event_was_held_is_never_sent(service: Service) -> None:
    """The scheduler did not run between the invitation time and the event: no invitation
    to the past, no reminders for it; each is written off with the reason."""
    _aarhus_waits_for_the_round1_start(service)
    after = START_CONFERENCE + dt.timedelta(hours=1)
    service.fire_due(after)
    with service.store.read() as tx:
        mails = [m for m in tx.outbox(limit=500) if m.template == "event_invitation"]
    assert not [m for m in mails if "start_conference" in (m.ics or "")]
    assert _round1_start_rows(service) == []  # written off, not left pending


def test_an_invitation_late_but_before_the_event_is_sent(service: Service) -> None:
    _aarhus_waits_for_the_round1_start(service)
    late = START_CONFERENCE - dt.timedelta(days=2)  # after the P7D reminder, before the event
    service.fire_due(late)
    with service.store.read() as tx:
        mails = [
            m
            for m in tx.outbox(limit=500)
            if m.template == "event_invitation" and "start_conference" in (m.ics or "")
        ]
    assert len(mails) == 1  # the invitation; the P7D reminder due with it is superseded
    assert _round1_start_rows(service) == [
        ("event_reminder", 2, dt.datetime(2020, 11, 25, 9, 0, tzinfo=dt.UTC))
    ]
