"""Migrating running cases keeps per-case deadline extensions and never re-sends a firing (#15.4)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.definition.durations import parse_duration
from dk2020flow.engine.records import EventKind, TimerStatus
from dk2020flow.service import Service
from dk2020flow.store.port import Contact
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
NOTES = ROOT / "tests" / "data" / "mini" / "notifications" / "mini"
OPENED = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)

WORKFLOW = """\
workflow: late
version: "{version}"
title: {{da: Sen, en: Late}}
timezone: Europe/Copenhagen
languages: [da, en]
office_hours: {{days: every_day, opens: "00:00", closes: "23:59"}}
links: {{programme: "https://late.example.dk", help_email: "help@late.example.dk", help_name: "Sekretariatet"}}
roles:
  contact_person: {{title: {{da: Kontaktperson, en: Contact person}}, receives_mail: true}}
  secretariat:
    title: {{da: Sekretariatet, en: Secretariat}}
    receives_mail: true
    name: Sekretariatet
    email: sekretariat@late.example.dk
fields:
  note: {{type: text}}
states:
  waiting:
    initial: true
    title: {{da: Venter, en: Waiting}}
    timers:
      reply_by:
        due: {{after: P30D, time: "12:00"}}
        extend_roles: [secretariat]
        reminders:
          before: [P7D]
          mail: {{template: note, to: contact_person}}
        on_due:
          mail: {{template: note, to: contact_person}}
        repeat:
          every: P7D
          times: {repeats}
          mail: {{template: note, to: contact_person}}
        escalate:
          after: P{escalate}D
          to: secretariat
          mail: {{template: note, to: secretariat}}
  done:
    terminal: true
    title: {{da: Færdig, en: Done}}
transitions:
  - trigger: reply
    from: waiting
    to: done
    roles: [contact_person]
"""


def _write(tmp_path: Path, version: str, *, repeats: int, escalate: int) -> Path:
    path = tmp_path / version / "workflows" / "late.yaml"
    path.parent.mkdir(parents=True)
    (tmp_path / version / "notifications").mkdir()
    (tmp_path / version / "notifications" / "late").symlink_to(NOTES)
    path.write_text(
        WORKFLOW.format(version=version, repeats=repeats, escalate=escalate), encoding="utf-8"
    )
    return path


@pytest.fixture
def service(store: SqlStore, tmp_path: Path) -> Service:
    svc = Service(store, clock=ManualClock(OPENED))
    svc.load_workflow(_write(tmp_path, "1", repeats=2, escalate=10))
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
                )
            ],
        )
    return svc


def _local(year: int, month: int, day: int, hour: int) -> dt.datetime:
    # Summer time in Copenhagen: UTC+2.
    return dt.datetime(year, month, day, hour - 2, 0, tzinfo=dt.UTC)


def test_migration_keeps_the_extension_and_never_re_arms_a_fired_firing(
    service: Service, store: SqlStore, tmp_path: Path
) -> None:
    case = service.open_case("late", "Aarhus", actor="tester", role="secretariat")
    assert case.id is not None
    extended_to = _local(2020, 7, 30, 12)  # the version says 20 July 12:00; moved ten days
    service.extend(
        "Aarhus",
        "reply_by",
        actor="sekretariatet",
        role="secretariat",
        reason="the council meets late",
        by=parse_duration("P10D"),
        now=OPENED + dt.timedelta(days=1),
    )
    # Reminder 23 July, deadline 30 July, repeats 6 and 13 August, escalation 9 August.
    assert service.fire_due(_local(2020, 8, 15, 9)).fired == 5
    with store.read() as tx:
        sent_before = len(tx.outbox(case_id=case.id, limit=1000))

    # Version 2: one more repeat, the escalation four days later.
    service.load_workflow(_write(tmp_path, "2", repeats=3, escalate=14))
    at = _local(2020, 8, 15, 10)
    plan = service.migrate("late", state_map={}, actor="tester", dry_run=True, now=at)
    (item,) = plan.items
    assert item.kept_deadlines == [("reply_by", extended_to)]
    assert sorted(key for _, key, _ in item.not_rearmed) == [
        "deadline.0",
        "escalation.0",
        "reminder.1",
        "repeat.1",
        "repeat.2",
    ]
    assert item.timers == [("reply_by", "repeat", _local(2020, 8, 20, 12))]
    assert not plan.applied

    plan = service.migrate("late", state_map={}, actor="tester", dry_run=False, now=at)
    assert plan.applied
    with store.read() as tx:
        pending = tx.timers_of(case.id)
    assert [(t.kind, t.index, t.deadline_at) for t in pending] == [("repeat", 3, extended_to)]
    # Nothing already sent goes out again; the new repeat quotes the extended deadline.
    assert service.fire_due(at + dt.timedelta(minutes=1)).fired == 0
    with store.read() as tx:
        assert len(tx.outbox(case_id=case.id, limit=1000)) == sent_before
    assert service.fire_due(_local(2020, 8, 20, 13)).fired == 1
    with store.read() as tx:
        after = tx.timers_of(case.id, pending_only=False)
        mails = tx.outbox(case_id=case.id, limit=1000)
    assert len(mails) == sent_before + 1
    assert "30. juli 2020" in max(mails, key=lambda m: m.id).text
    fired = [t for t in after if t.status is TimerStatus.FIRED and t.epoch == case.epoch + 1]
    # The firings done before are carried into the new state entry as fired, not re-armed.
    carried = [t for t in fired if t.note.startswith("fired before the migration from version 1")]
    assert sorted(f"{t.kind}.{t.index}" for t in carried) == [
        "deadline.0",
        "escalation.0",
        "reminder.1",
        "repeat.1",
        "repeat.2",
    ]
    assert {t.deadline_at for t in fired} == {extended_to}
    assert [(t.kind, t.index) for t in fired if t not in carried] == [("repeat", 3)]
    _, events = service.history("Aarhus")
    migrated = [e.record for e in events if e.record.kind is EventKind.MIGRATED]
    assert migrated[0].data["kept_deadlines"] == {"reply_by": extended_to.isoformat()}
    # Still late on the kept deadline (#15.5), and a second migration sends nothing again.
    (late,) = service.late_deadlines(_local(2020, 8, 21, 9))
    assert (late.case.id, late.timer, late.deadline_at) == (case.id, "reply_by", extended_to)
    service.load_workflow(_write(tmp_path, "3", repeats=4, escalate=14))
    plan = service.migrate(
        "late", state_map={}, actor="tester", dry_run=False, now=_local(2020, 8, 21, 9)
    )
    (item,) = plan.items
    assert item.kept_deadlines == [("reply_by", extended_to)]
    assert len(item.not_rearmed) == 6
    assert item.timers == [("reply_by", "repeat", _local(2020, 8, 27, 12))]


def test_a_migration_without_extension_takes_the_new_deadline(
    service: Service, store: SqlStore, tmp_path: Path
) -> None:
    case = service.open_case("late", "Aarhus", actor="tester", role="secretariat")
    assert case.id is not None
    path = _write(tmp_path, "2", repeats=2, escalate=10)
    path.write_text(path.read_text(encoding="utf-8").replace("P30D", "P40D"), encoding="utf-8")
    service.load_workflow(path)
    plan = service.migrate("late", state_map={}, actor="tester", dry_run=False, now=OPENED)
    (item,) = plan.items
    assert item.kept_deadlines == [] and item.not_rearmed == []
    with store.read() as tx:
        deadlines = {t.deadline_at for t in tx.timers_of(case.id)}
    assert deadlines == {_local(2020, 7, 30, 12)}


def test_the_dry_run_on_the_command_line_shows_what_is_kept(
    service: Service, store: SqlStore, tmp_path: Path, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("the command line is the same on both backends")
    service.open_case("late", "Aarhus", actor="tester", role="secretariat")
    service.extend(
        "Aarhus",
        "reply_by",
        actor="sekretariatet",
        role="secretariat",
        reason="the council meets late",
        by=parse_duration("P10D"),
        now=OPENED + dt.timedelta(days=1),
    )
    service.fire_due(_local(2020, 8, 15, 9))
    service.load_workflow(_write(tmp_path, "2", repeats=3, escalate=14))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env["DK2020FLOW_DATABASE_URL"] = store.url
    args = ["dk2020flow", "case", "migrate", "late", "--now", "2020-08-15T10:00+02:00"]
    done = subprocess.run(
        [*args, "--json"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    (item,) = json.loads(done.stdout)["items"]
    assert item["kept_deadlines"] == [["reply_by", "2020-07-30T10:00:00+00:00"]]
    assert len(item["not_rearmed"]) == 5
    table = subprocess.run(
        [*args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert "extended to" in table.stdout and "escalation.0" in table.stdout, table.stdout
    assert "dry run: nothing changed" in table.stdout
