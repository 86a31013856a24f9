"""``Service.overview``: the numbers of the console's home page, on SQLite and PostgreSQL,
against a hand-built programme (a small workflow with two rounds and an event)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.definition.durations import parse_duration
from dk2020flow.service import Service
from dk2020flow.store.port import OutboxStatus
from dk2020flow.store.repository import SqlStore

MINI = Path(__file__).parents[2] / "data" / "mini"
OPENED = dt.datetime(2021, 3, 1, 9, 0, tzinfo=dt.UTC)
"""The cases open on 1 March; ``submit_by`` is due ten days later at 12:00 local."""
AT = OPENED + dt.timedelta(days=12)
"""The overview's instant: the draft deadlines passed two days ago."""

COHORTS = """
cohorts:
  round_a:
    title: {da: Runde A, en: Round A}
    application_deadline: 2021-01-15
    start: 2021-02-01
    planned_end: 2022-06-30
    events:
      kickoff:
        title: {da: Opstartsmøde, en: Kick-off}
        at: 2021-03-25T10:00
        location: Vejle
        states: [draft, submitted]
        mail: {template: note, to: contact_person}
      later:
        title: {da: Senere møde, en: A later meeting}
        at: 2021-05-20T10:00
        states: [draft]
        mail: {template: note, to: contact_person}
  round_b:
    title: {da: Runde B, en: Round B}
    application_deadline: 2021-03-24T23:59
    start: 2021-06-01
    planned_end: 2023-06-30
"""


@pytest.fixture
def service(store: SqlStore, tmp_path: Path) -> Service:
    folder = tmp_path / "mini"
    (folder / "workflows").mkdir(parents=True)
    (folder / "notifications").mkdir()
    (folder / "notifications" / "mini").symlink_to(MINI / "notifications" / "mini")
    text = (MINI / "workflows" / "mini.yaml").read_text(encoding="utf-8")
    text = text.replace("states:\n  draft:", COHORTS.lstrip() + "states:\n  draft:", 1)
    path = folder / "workflows" / "mini.yaml"
    path.write_text(text, encoding="utf-8")
    svc = Service(store, clock=ManualClock(OPENED))
    svc.load_workflow(path, now=OPENED)
    for name, cohort in (
        ("Aarhus", "round_a"),
        ("Odense", "round_a"),
        ("Vejle", "round_b"),
        ("Svendborg", "round_b"),
        ("Aalborg", None),
    ):
        svc.open_case("mini", name, actor="setup", role="secretariat", cohort=cohort, now=OPENED)
    # Odense has submitted: its `review` timer has passed too, but it is no deadline.
    svc.fire("Odense", "submit", actor="o", role="contact_person", now=OPENED)
    # Vejle's deadline moved a week: not late, and due within the next 14 days.
    svc.extend(
        "Vejle",
        "submit_by",
        actor="s",
        role="secretariat",
        reason="test",
        by=parse_duration("P7D"),
        now=OPENED,
    )
    return svc


def test_counts_per_state_round_and_region(service: Service) -> None:
    found = service.overview(AT)
    counts = {(c.state, c.cohort, c.region): c.count for c in found.counts}
    assert counts == {
        ("draft", "round_a", "Midtjylland"): 1,
        ("submitted", "round_a", "Syddanmark"): 1,
        ("draft", "round_b", "Syddanmark"): 2,
        ("draft", None, "Nordjylland"): 1,
    }
    assert {c.workflow for c in found.counts} == {"mini"}
    assert found.workflows["mini"].states["draft"].title == {"da": "Kladde", "en": "Draft"}


def test_late_is_the_one_definition_of_late(service: Service) -> None:
    found = service.overview(AT)
    late = service.late_deadlines(AT)
    assert found.late_total == len(late) == 3
    assert [(d.organisation, d.timer) for d in found.late] == [
        (d.case.organisation_name, d.timer) for d in late
    ]
    assert {d.organisation for d in found.late} == {"Aarhus", "Svendborg", "Aalborg"}
    assert all(d.deadline_at < AT for d in found.late)
    # The list is limited; the count is not.
    short = service.overview(AT, limit=1)
    assert short.late_total == 3 and len(short.late) == 1
    assert short.late[0] == found.late[0]
    # Before the deadline nobody is late.
    assert service.overview(OPENED + dt.timedelta(days=1)).late_total == 0


def test_the_next_14_days(service: Service) -> None:
    found = service.overview(AT)
    assert found.until == AT + dt.timedelta(days=14)
    assert found.deadlines_total == 1
    (vejle,) = found.deadlines
    assert (vejle.organisation, vejle.timer) == ("Vejle", "submit_by")
    assert AT <= vejle.deadline_at <= found.until
    dates = [(d.cohort, d.kind, d.name) for d in found.dates]
    assert dates == [  # by time: 24 March 23:59, then 25 March 10:00
        ("round_b", "application_deadline", "application_deadline"),
        ("round_a", "event", "kickoff"),
    ]
    kickoff = found.dates[1]
    assert kickoff.location == "Vejle" and kickoff.ends_at is not None
    # The kick-off's invitation (21 days before, on 4 March) is due before AT.
    assert all(AT <= m.due_at <= found.until for m in found.mailings)
    # From the opening day, the invitation is among the mailings of the next 14 days.
    early = service.overview(OPENED)
    assert [(m.event, m.kind) for m in early.mailings] == [("kickoff", "event")]
    assert early.deadlines_total == 4  # every draft deadline is within 14 days then


def test_mail_waiting_for_an_operator(service: Service) -> None:
    found = service.overview(AT)
    # No contacts were imported: the mail to contact persons is parked.
    assert found.outbox[OutboxStatus.PARKED] > 0
    assert found.outbox[OutboxStatus.DEAD] == 0
