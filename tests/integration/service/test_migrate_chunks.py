"""A migration commits in chunks that a crash does not lose (#17.3).

The failure is real: a database trigger made by the test aborts the update of one
chosen case, in the second chunk.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from dk2020flow.clock import ManualClock
from dk2020flow.engine.records import EventKind
from dk2020flow.service import Service
from dk2020flow.service.migrate import MigrationInterruptedError, MigrationPlan, migrate
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


def _apply_in_chunks(service: Service, **options: Any) -> MigrationPlan:
    """``case migrate chunked --apply`` at ``MIGRATED_AT``, ``CHUNK`` cases a chunk."""
    return migrate(
        service,
        "chunked",
        state_map={},
        actor="tester",
        dry_run=False,
        now=MIGRATED_AT,
        chunk_size=CHUNK,
        **options,
    )


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

    done = _apply_in_chunks(service)
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
        _apply_in_chunks(service)
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
    again = _apply_in_chunks(service)
    assert again.applied and again.moved == CASES - CHUNK
    assert [i.case_id for i in again.items] == second + rest
    assert set(_versions(store, ids).values()) == {"2"}
    assert _migrated_events(store, ids) == dict.fromkeys(ids, 1)  # none moved twice


def _when_updated(store: SqlStore, name: str, moved_id: int, statement: str) -> None:
    """A trigger ``name`` that runs ``statement`` after case ``moved_id`` is updated: a
    change committed by someone else at that moment of the migration."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} AFTER UPDATE ON cases WHEN NEW.id = {moved_id} "
                    f"BEGIN {statement}; END"
                )
            )
        else:
            conn.execute(
                text(
                    f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN {statement}; RETURN NULL; END $$"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} AFTER UPDATE ON cases FOR EACH ROW "
                    f"WHEN (NEW.id = {moved_id}) EXECUTE FUNCTION {name}()"
                )
            )


def _close_when_moved(store: SqlStore, moved_id: int, closed_id: int) -> None:
    """Case ``closed_id`` closes when case ``moved_id`` is updated: a change committed
    after the plan was made (with the first chunk), before its chunk comes."""
    close = f"UPDATE cases SET closed = TRUE, state = 'done' WHERE id = {closed_id}"
    _when_updated(store, "closer", moved_id, close)


def test_a_case_closed_after_the_plan_is_left_as_it_is(service: Service, store: SqlStore) -> None:
    ids = _case_ids(store)
    _close_when_moved(store, ids[0], ids[-1])
    done = _apply_in_chunks(service)
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


def _bump_version_when_moved(store: SqlStore, moved_id: int, bumped_id: int) -> None:
    """Case ``bumped_id`` changes (its version) when case ``moved_id`` is updated:
    someone else's write to a case of the chunk while the chunk is written."""
    bump = f"UPDATE cases SET version = version + 1 WHERE id = {bumped_id}"
    _when_updated(store, "bumper", moved_id, bump)


def test_a_case_changed_while_its_chunk_is_written_rolls_the_chunk_back(
    service: Service, store: SqlStore
) -> None:
    """The chunk is written in one batch; a case of it changed meanwhile (its version
    moved on) fails the chunk whole, not that case alone."""
    ids = _case_ids(store)
    first, second = ids[:CHUNK], ids[CHUNK : 2 * CHUNK]
    _bump_version_when_moved(store, second[0], second[1])
    with pytest.raises(MigrationInterruptedError) as stopped:
        _apply_in_chunks(service)
    assert f"case {second[1]} was changed by someone else" in str(stopped.value)
    assert (stopped.value.moved, stopped.value.remaining) == (CHUNK, CASES - CHUNK)
    versions = _versions(store, ids)
    assert [versions[i] for i in first] == ["2"] * CHUNK
    assert [versions[i] for i in ids[CHUNK:]] == ["1"] * (CASES - CHUNK)
    assert _migrated_events(store, ids) == {i: int(i in first) for i in ids}


def _statements_of_migrating(store: SqlStore, service: Service, now: dt.datetime) -> int:
    """How many statements a migration of every open ``chunked`` case sends (one chunk)."""
    sent: list[str] = []

    def count(*args: object) -> None:
        sent.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        done = migrate(service, "chunked", state_map={}, actor="tester", dry_run=False, now=now)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert done.applied and done.moved == len(done.items)
    return len(sent)


def test_a_chunk_sends_as_many_statements_for_seven_cases_as_for_two(
    store: SqlStore, tmp_path: Path
) -> None:
    """The plan and the chunk read the chunk's cases and timers in one query each and
    write the chunk in one batch: the statements do not grow with the cases (#17.3;
    one by one it was about ten per case)."""
    service = Service(store, clock=ManualClock(OPENED))
    _load(service, tmp_path, "1", days=30)
    with store.read() as tx:
        names = sorted(o.name for o in tx.organisations())[:CASES]
    for name in names[:2]:
        service.open_case("chunked", name, actor="tester", role=None)
    _load(service, tmp_path, "2", days=40)
    two = _statements_of_migrating(store, service, MIGRATED_AT)
    for name in names[2:]:  # opened on version 2: now seven cases on it
        service.open_case("chunked", name, actor="tester", role=None)
    _load(service, tmp_path, "3", days=50)
    seven = _statements_of_migrating(store, service, MIGRATED_AT + dt.timedelta(hours=1))
    assert len(_case_ids(store)) == CASES
    assert set(_versions(store, _case_ids(store)).values()) == {"3"}
    assert seven - two < CASES - 2, (two, seven)  # fewer than one more per added case


def test_the_command_line_shows_the_first_cases_the_moves_and_every_problem(
    store: SqlStore, tmp_path: Path, backend: str
) -> None:
    """At more than ``MIGRATE_ROWS`` cases the table stops (``--json`` has them all);
    the counts per old → new state and every case with a problem follow."""
    if backend != "sqlite":
        pytest.skip("the command line is the same on both backends")
    from dk2020flow.cli.case import MIGRATE_ROWS

    many = MIGRATE_ROWS + 10
    service = Service(store, clock=ManualClock(OPENED))
    extra = "  note: {{type: text}}\n  extra: {{type: text}}\n"
    folder = tmp_path / "1"
    (folder / "workflows").mkdir(parents=True)
    (folder / "notifications").mkdir()
    (folder / "notifications" / "chunked").symlink_to(NOTES)
    path = folder / "workflows" / "chunked.yaml"
    text_v1 = WORKFLOW.replace("  note: {{type: text}}\n", extra).format(version="1", days=30)
    path.write_text(text_v1, encoding="utf-8")
    service.load_workflow(path)
    with store.read() as tx:
        names = sorted(o.name for o in tx.organisations())[:many]
    for name in names[:-2]:
        service.open_case("chunked", name, actor="tester", role=None)
    for name in names[-2:]:  # the last two: a field version 2 does not have
        service.open_case("chunked", name, actor="tester", role=None, data={"extra": "x"})
    _load(service, tmp_path, "2", days=40)
    ids = _case_ids(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env["DK2020FLOW_DATABASE_URL"] = store.url
    args = ["dk2020flow", "case", "migrate", "chunked", "--now", "2020-06-22T10:00Z"]
    shown = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert shown.returncode == 3, shown.stderr
    lines = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    assert "… 10 more case(s): --json lists every case" in lines
    assert f"{many} case(s), by state (old → new):" in lines
    assert f"waiting → waiting: {many - 2}" in lines
    assert "waiting → ?: 2" in lines
    assert "2 case(s) with a problem:" in lines
    problems = [line for line in lines if line.startswith("case ")]
    assert [line.split()[1] for line in problems] == [str(i) for i in ids[-2:]]
    assert all("the new version has no field extra" in line for line in problems)
    assert "nothing migrated: fix the problems above (e.g. with --map)" in lines
    # The table's rows: the first MIGRATE_ROWS cases, not the rest.
    rows = {
        line.split()[1] for line in lines if line.startswith("│ ") and line.split()[1].isdigit()
    }
    assert rows == {str(i) for i in ids[:MIGRATE_ROWS]}

    every = subprocess.run(
        [*args, "--json"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert every.returncode == 3
    assert [i["case_id"] for i in json.loads(every.stdout)["items"]] == ids


def test_a_migration_asked_for_a_few_items_moves_every_case_and_counts_them_all(
    service: Service, store: SqlStore
) -> None:
    """``items_kept``: the plan holds its first items only (what the command line shows),
    yet moves and counts every case."""
    ids = _case_ids(store)
    done = _apply_in_chunks(service, items_kept=2)
    assert done.applied and done.moved == CASES and done.cases == CASES
    assert [i.case_id for i in done.items] == ids[:2]
    assert all(i.moved for i in done.items)
    assert done.moves == [("waiting", "waiting", CASES)]
    assert set(_versions(store, ids).values()) == {"2"}
    assert _migrated_events(store, ids) == dict.fromkeys(ids, 1)


def test_the_json_of_a_plan_is_written_item_by_item_as_print_json_writes_it_whole(
    service: Service, store: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """``case migrate --json`` streams its items; the text is ``print_json``'s exactly."""
    from dk2020flow.cli.case import print_plan_json
    from dk2020flow.cli.common import print_json

    plan = migrate(service, "chunked", state_map={}, actor="tester", dry_run=True, now=MIGRATED_AT)
    for shown in (plan, replace(plan, items=[]), replace(plan, items=plan.items[:1])):
        print_json(shown)
        whole = capsys.readouterr().out
        print_plan_json(shown)
        streamed = capsys.readouterr().out
        assert streamed == whole
    assert len(json.loads(whole)["items"]) == 1


def _give_unknown_field_when_moved(store: SqlStore, moved_id: int, changed_id: int) -> None:
    """Case ``changed_id`` gets a field version 2 does not have when case ``moved_id`` is
    updated: a change committed with the first chunk."""
    change = f"""UPDATE cases SET data = '{{"bogus": "x"}}' WHERE id = {changed_id}"""
    _when_updated(store, "changer", moved_id, change)


def test_a_case_refused_when_its_chunk_comes_is_among_the_items_kept_or_not(
    service: Service, store: SqlStore
) -> None:
    """A case the plan could move but that is refused when its chunk comes (it changed
    meanwhile) stays where it is, and the plan says why even when it keeps few items."""
    ids = _case_ids(store)
    _give_unknown_field_when_moved(store, ids[0], ids[-1])
    done = _apply_in_chunks(service, items_kept=1)
    assert done.applied and done.moved == CASES - 1
    assert [i.case_id for i in done.items] == [ids[0], ids[-1]]
    assert [(i.case_id, i.moved) for i in done.problems] == [(ids[-1], False)]
    assert "bogus" in done.problems[0].problem
    assert _versions(store, ids)[ids[-1]] == "1"


def test_the_timers_of_a_chunk_are_those_of_each_cases_current_epoch(
    service: Service, store: SqlStore
) -> None:
    """``Tx.epoch_timers_of``, the chunk's one timer query: every status, the current
    epoch only (a migrated case's discarded rows of its old epoch are left out)."""
    ids = _case_ids(store)
    migrate(service, "chunked", state_map={}, actor="tester", dry_run=False, now=MIGRATED_AT)
    with store.read() as tx:
        found = tx.epoch_timers_of([*ids[:3], 999_999])
        for case_id in ids[:3]:
            case = tx.load_case(case_id)
            every = tx.timers_of(case_id, pending_only=False)
            assert {r.epoch for r in every} == {case.epoch - 1, case.epoch}
            assert found[case_id] == [r for r in every if r.epoch == case.epoch]
    assert sorted(found) == ids[:3]
