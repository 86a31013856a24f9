"""``cases.deadline_at`` and ``cases.deadline_timer``, kept by the store's writes: after
each kind of write (open, transition, extend, timers fired by dispatch, migration to a
new version, closing) they equal the definition they replace, computed here from the
timers (``sql.timers.latest_deadline_arms``) and the timers the service says a case can
be late on (``service.console.deadline_timers``), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import shutil
from pathlib import Path

from sqlalchemy import select

from dk2020flow.bundled import workflow_path
from dk2020flow.clock import ManualClock
from dk2020flow.service.core import Service
from dk2020flow.service.filetypes import sample
from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore
from dk2020flow.store.sql.timers import latest_deadline_arms

from .conftest import decide_and_decline

OPENED = dt.datetime(2020, 8, 3, 9, 0, tzinfo=dt.UTC)
Columns = dict[int, tuple[dt.datetime | None, str | None]]


def expected_columns(service: Service) -> Columns:
    """The oracle: per case, its earliest current arm (latest armed deadline row of a
    timer at its epoch, not discarded) of a timer it can be late on; ties by name."""
    with service.store.read() as tx:
        conn = tx.connection
        counting = set(service.console.deadline_timers(tx, "dk2020", OPENED))
        cases = {
            row.id: (row.definition_id, row.state, row.epoch)
            for row in conn.execute(
                select(t.cases.c.id, t.cases.c.definition_id, t.cases.c.state, t.cases.c.epoch)
            )
        }
        found: Columns = dict.fromkeys(cases, (None, None))
        best: dict[int, tuple[dt.datetime, str]] = {}
        for arm in conn.execute(latest_deadline_arms()):
            definition_id, state, epoch = cases[arm.case_id]
            if arm.epoch != epoch or (definition_id, state, arm.timer) not in counting:
                continue
            key = (arm.deadline_at, arm.timer)
            if arm.case_id not in best or key < best[arm.case_id]:
                best[arm.case_id] = key
        found.update(best)
    return found


def stored_columns(service: Service) -> Columns:
    with service.store.read() as tx:
        c = t.cases.c
        rows = tx.connection.execute(select(c.id, c.deadline_at, c.deadline_timer))
        return {row.id: (row.deadline_at, row.deadline_timer) for row in rows}


def check(service: Service, step: str) -> Columns:
    expected = expected_columns(service)
    assert stored_columns(service) == expected, step
    return expected


def test_the_columns_follow_every_kind_of_write(store: SqlStore, tmp_path: Path) -> None:
    clock = ManualClock(OPENED)
    service = Service(store, clock=clock)
    service.load_workflow(workflow_path("dk2020"), now=OPENED)
    service.open_cases("dk2020", None, actor="setup", role="secretariat", now=OPENED)
    opened = check(service, "open")
    assert {timer for _, timer in opened.values()} == {"reply_deadline"}

    decided = OPENED + dt.timedelta(days=10)
    decide_and_decline(service, ("Aarhus", "Odense"), "Vejle", decided)
    moved = check(service, "transition")
    assert moved != opened and any(at is None for at, _ in moved.values())  # declined

    later = OPENED + dt.timedelta(days=20)
    service.extend(
        "Aalborg",
        "reply_deadline",
        actor="kl",
        role="follow_up",
        reason="more time",
        to=later + dt.timedelta(days=60),
        workflow="dk2020",
        now=later,
    )
    extended = check(service, "extend")
    assert extended != moved

    # Aarhus submits and is accepted: it waits for its round's start, a timer that moves
    # it on to guidance when dispatch fires it (below).
    submitted = OPENED + dt.timedelta(days=30)
    service.documents.attach(
        "Aarhus",
        "application",
        io.BytesIO(sample("pdf")),
        filename="ansøgning.pdf",
        actor="kontakt@example.dk",
        role="contact_person",
        workflow="dk2020",
        now=submitted,
    )
    service.fire(
        "Aarhus",
        "submit_application",
        actor="kontakt@example.dk",
        role="contact_person",
        data={"commitment_signed": True, "staff_hours_per_week": 20},
        workflow="dk2020",
        now=submitted,
    )
    check(service, "submit")
    service.fire(
        "Aarhus",
        "accept_application",
        actor="sekretariat@example.dk",
        role="secretariat",
        workflow="dk2020",
        now=submitted + dt.timedelta(days=1),
    )
    accepted = check(service, "accept")

    for days in (40, 60, 300, 400):  # reminders, deadlines, escalations; round 2 closes
        at = OPENED + dt.timedelta(days=days)
        clock.set(at)
        result = service.fire_due(at)
        check(service, f"dispatch at day {days}: {result}")
    # Aarhus's start moved it on: dispatch's writes changed its columns.
    fired = stored_columns(service)
    assert {"onboarding_meeting"} <= {fired[k][1] for k in fired if fired[k] != accepted[k]}
    with store.read() as tx:
        closed = tx.connection.execute(
            select(t.cases.c.id).where(t.cases.c.closed.is_(True))
        ).first()
    assert closed is not None  # Vejle's round 2 closed: the closing is among the writes

    # A new version (another title), every open case migrated to it.
    folder = tmp_path / "dk2020"
    source = workflow_path("dk2020")
    shutil.copytree(source.parent.parent, folder, symlinks=False)
    path = folder / source.parent.name / source.name
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("title:", "title:", 1) + "\n# version 2\n", encoding="utf-8")
    service.load_workflow(path, now=clock.now())
    service.migrate("dk2020", state_map={}, actor="setup", dry_run=False, now=clock.now())
    migrated = check(service, "migrate")
    with store.read() as tx:
        versions = set(tx.connection.execute(select(t.cases.c.definition_id)).scalars())
    assert len(versions) == 2  # the open cases moved on; the closed one stayed
    assert any(at is not None for at, _ in migrated.values())
