"""A migration commits in chunks that a crash does not lose (#17.3).

The failure is real: a database trigger made by the test aborts the update of one
chosen case, in the second chunk.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from dk2020flow.clock import ManualClock
from dk2020flow.engine.records import EventKind
from dk2020flow.service import Service
from dk2020flow.service.migrate import MigrationInterruptedError, migrate
from dk2020flow.store.errors import StoreError
from dk2020flow.store.port import CaseFilter
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
NOTES = ROOT / "tests" / "data" / "mini" / "notifications" / "mini"
OPENED = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)
MIGRATED_AT = OPENED + dt.timedelta(days=2)
CASES = 7
CHUNK = 3

WORKFLOW = """\
workflow: chunked
version: "{version}"
title: {{da: Bidder, en: Chunks}}
timezone: Europe/Copenhagen
languages: [da, en]
office_hours: {{days: every_day, opens: "00:00", closes: "23:59"}}
links: {{programme: "https://chunks.example.dk", help_email: "help@chunks.example.dk", help_name: "Sekretariatet"}}
roles:
  contact_person: {{title: {{da: Kontaktperson, en: Contact person}}, receives_mail: true}}
fields:
  note: {{type: text}}
states:
  waiting:
    initial: true
    title: {{da: Venter, en: Waiting}}
    timers:
      reply_by:
        due: {{after: P{days}D, time: "12:00"}}
        reminders:
          before: [P7D]
          mail: {{template: note, to: contact_person}}
        on_due:
          mail: {{template: note, to: contact_person}}
  done:
    terminal: true
    title: {{da: Færdig, en: Done}}
transitions:
  - trigger: reply
    from: waiting
    to: done
    roles: [contact_person]
"""


def _load(service: Service, tmp_path: Path, version: str, days: int) -> None:
    folder = tmp_path / version
    (folder / "workflows").mkdir(parents=True)
    (folder / "notifications").mkdir()
    (folder / "notifications" / "chunked").symlink_to(NOTES)
    path = folder / "workflows" / "chunked.yaml"
    path.write_text(WORKFLOW.format(version=version, days=days), encoding="utf-8")
    service.load_workflow(path)


@pytest.fixture
def service(store: SqlStore, tmp_path: Path) -> Service:
    """Seven open cases on version 1, and version 2 (a deadline ten days later) loaded."""
    svc = Service(store, clock=ManualClock(OPENED))
    _load(svc, tmp_path, "1", days=30)
    with store.read() as tx:
        names = sorted(o.name for o in tx.organisations())[:CASES]
    for name in names:
        svc.open_case("chunked", name, actor="tester", role=None)
    _load(svc, tmp_path, "2", days=40)
    return svc


def _case_ids(store: SqlStore) -> list[int]:
    with store.read() as tx:
        return sorted(c.id or 0 for c in tx.cases(CaseFilter(workflow="chunked", open_only=True)))


def _versions(store: SqlStore, ids: list[int]) -> dict[int, str]:
    """The definition version each case is on."""
    with store.read() as tx:
        cases = tx.load_cases(ids)
        return {i: tx.definition(cases[i].definition_id).version_label for i in ids}


def _migrated_events(store: SqlStore, ids: list[int]) -> dict[int, int]:
    with store.read() as tx:
        return {i: sum(e.record.kind is EventKind.MIGRATED for e in tx.history(i)) for i in ids}


@pytest.fixture
def commits(store: SqlStore) -> Iterator[list[int]]:
    """Every transaction the store commits from now on (reads roll back)."""
    seen: list[int] = []

    def count(conn: Connection) -> None:
        seen.append(1)

    event.listen(store.engine, "commit", count)
    try:
        yield seen
    finally:
        event.remove(store.engine, "commit", count)


def test_a_migration_commits_chunk_by_chunk_and_moves_every_case_as_planned(
    service: Service, store: SqlStore, commits: list[int]
) -> None:
    ids = _case_ids(store)
    plan = migrate(service, "chunked", state_map={}, actor="tester", dry_run=True, now=MIGRATED_AT)
    assert not commits and not plan.applied and plan.moved == 0
    assert [i.case_id for i in plan.items] == ids

    done = migrate(
        service,
        "chunked",
        state_map={},
        actor="tester",
        dry_run=False,
        now=MIGRATED_AT,
        chunk_size=CHUNK,
    )
    assert done.applied and done.moved == CASES
    assert len(commits) == 3  # 3 + 3 + 1 cases
    # Each case is as the plan (the one decision a one-chunk migration applies) said.
    assert all(i.moved for i in done.items)
    assert [replace(i, moved=False) for i in done.items] == plan.items
    assert set(_versions(store, ids).values()) == {"2"}
    assert _migrated_events(store, ids) == dict.fromkeys(ids, 1)
    with store.read() as tx:
        for item in plan.items:
            pending = [(t.timer, t.kind, t.due_at) for t in tx.timers_of(item.case_id)]
            assert pending == item.timers
    # The new deadline: 40 days after opening, 12:00 in Copenhagen (summer time).
    assert ("reply_by", "deadline", dt.datetime(2020, 7, 30, 10, 0, tzinfo=dt.UTC)) in (
        plan.items[0].timers
    )


def _abort_updates_of(store: SqlStore, case_id: int) -> None:
    """A trigger that makes the database refuse any update of the case ``case_id``."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER boom BEFORE UPDATE ON cases WHEN OLD.id = {case_id} "
                    "BEGIN SELECT RAISE(ABORT, 'boom'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'boom'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER boom BEFORE UPDATE ON cases FOR EACH ROW "
                    f"WHEN (OLD.id = {case_id}) EXECUTE FUNCTION boom()"
                )
            )


def _drop_trigger(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.execute(text("DROP TRIGGER boom"))
        else:
            conn.execute(text("DROP TRIGGER boom ON cases"))
            conn.execute(text("DROP FUNCTION boom()"))


def test_a_failure_in_the_second_chunk_keeps_the_first_and_a_second_run_moves_the_rest(
    service: Service, store: SqlStore
) -> None:
    ids = _case_ids(store)
    first, second, rest = ids[:CHUNK], ids[CHUNK : 2 * CHUNK], ids[2 * CHUNK :]
    _abort_updates_of(store, second[1])

    with pytest.raises(MigrationInterruptedError) as stopped:
        migrate(
            service,
            "chunked",
            state_map={},
            actor="tester",
            dry_run=False,
            now=MIGRATED_AT,
            chunk_size=CHUNK,
        )
    assert isinstance(stopped.value.__cause__, StoreError)
    assert "boom" in str(stopped.value)
    assert (stopped.value.moved, stopped.value.remaining) == (CHUNK, CASES - CHUNK)
    assert "run the migration again" in str(stopped.value)
    # The first chunk committed; the second rolled back whole (its first case too).
    versions = _versions(store, ids)
    assert [versions[i] for i in first] == ["2"] * CHUNK
    assert [versions[i] for i in second + rest] == ["1"] * (CASES - CHUNK)
    assert _migrated_events(store, ids) == {i: int(i in first) for i in ids}

    _drop_trigger(store)
    again = migrate(
        service,
        "chunked",
        state_map={},
        actor="tester",
        dry_run=False,
        now=MIGRATED_AT,
        chunk_size=CHUNK,
    )
    assert again.applied and again.moved == CASES - CHUNK
    assert [i.case_id for i in again.items] == second + rest
    assert set(_versions(store, ids).values()) == {"2"}
    assert _migrated_events(store, ids) == dict.fromkeys(ids, 1)  # none moved twice


def _close_when_moved(store: SqlStore, moved_id: int, closed_id: int) -> None:
    """A trigger that closes case ``closed_id`` when case ``moved_id`` is updated: a change
    committed after the plan was made (with the first chunk), before its chunk comes."""
    close = f"UPDATE cases SET closed = TRUE, state = 'done' WHERE id = {closed_id}"
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER closer AFTER UPDATE ON cases WHEN NEW.id = {moved_id} "
                    f"BEGIN {close}; END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION closer() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN {close}; RETURN NULL; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER closer AFTER UPDATE ON cases FOR EACH ROW "
                    f"WHEN (NEW.id = {moved_id}) EXECUTE FUNCTION closer()"
                )
            )


def test_a_case_closed_after_the_plan_is_left_as_it_is(service: Service, store: SqlStore) -> None:
    ids = _case_ids(store)
    _close_when_moved(store, ids[0], ids[-1])
    done = migrate(
        service,
        "chunked",
        state_map={},
        actor="tester",
        dry_run=False,
        now=MIGRATED_AT,
        chunk_size=CHUNK,
    )
    assert done.applied and done.moved == CASES - 1
    assert [i.case_id for i in done.items if not i.moved] == [ids[-1]]
    assert _versions(store, ids)[ids[-1]] == "1"
    assert _migrated_events(store, ids) == {i: int(i != ids[-1]) for i in ids}


def test_the_command_line_says_what_stayed_moved_when_a_migration_stops(
    service: Service, store: SqlStore
) -> None:
    ids = _case_ids(store)
    _abort_updates_of(store, ids[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env["DK2020FLOW_DATABASE_URL"] = store.url
    done = subprocess.run(
        ["dk2020flow", "case", "migrate", "chunked", "--apply", "--now", "2020-06-22T10:00Z"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "boom" in done.stderr
    assert f"0 case(s) moved before stay moved; {CASES} case(s) are not moved yet" in (
        " ".join(done.stderr.split())
    )
    assert set(_versions(store, ids).values()) == {"1"}

    _drop_trigger(store)
    done = subprocess.run(
        ["dk2020flow", "case", "migrate", "chunked", "--apply", "--now", "2020-06-22T10:00Z"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"migrated {CASES} case(s)" in done.stdout
