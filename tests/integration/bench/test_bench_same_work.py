"""The bench's raw limit does the work dk2020flow does (issue 17: "the limit of the same
work"): the same rows — the case moved on, two events, the mail with the same subject,
text and HTML rendered from the same template, the timer retired — and the console-count
triggers it drops are those of migration 0004. No timing here (speed goes in bench/)."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
N = 5


@pytest.fixture
def bench_modules() -> Iterator[dict[str, Any]]:
    sys.path.insert(0, str(BENCH))
    try:
        import dispatch
        import raw
        import workload

        yield {"raw": raw, "workload": workload, "dispatch": dispatch}
    finally:
        sys.path.remove(str(BENCH))


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            "events": conn.execute(
                "SELECT case_id, seq, at, kind, actor, role, trigger, from_state, to_state, "
                "comment, data, epoch, transition FROM events ORDER BY case_id, seq"
            ).fetchall(),
            "mail": conn.execute(
                "SELECT case_id, template, language, to_addresses, subject, text, html, status, "
                "urgent FROM outbox ORDER BY case_id"
            ).fetchall(),
            "cases": conn.execute(
                "SELECT id, state, epoch, version, entered_at FROM cases ORDER BY id"
            ).fetchall(),
            "timers": conn.execute(
                "SELECT id, status, fired_at FROM timers ORDER BY id"
            ).fetchall(),
            "counts": conn.execute("SELECT * FROM case_counts ORDER BY 1").fetchall(),
        }
    finally:
        conn.close()


def test_raw_limit_writes_the_rows_and_mail_dk2020flow_writes(
    tmp_path: Path, bench_modules: dict[str, Any]
) -> None:
    from dk2020flow.clock import ManualClock
    from dk2020flow.service import Service
    from dk2020flow.settings import Settings
    from dk2020flow.store.repository import SqlStore

    raw, workload = bench_modules["raw"], bench_modules["workload"]
    ours, theirs = tmp_path / "dk2020flow.db", tmp_path / "raw.db"
    for path in (ours, theirs):
        workload.prepare(f"sqlite:///{path}", N)
    store = SqlStore(f"sqlite:///{ours}")
    try:
        service = Service(store, clock=ManualClock(workload.FIRE_AT), settings=Settings())
        assert service.fire_due(workload.FIRE_AT).fired == N
    finally:
        store.close()
    fired, _seconds = raw.run_sqlite(f"sqlite:///{theirs}", 2)
    assert fired == N

    mine, limit = _rows(ours), _rows(theirs)
    assert limit == mine
    assert len(mine["events"]) == 3 * N  # opened, and the two a firing writes
    assert {row[1] for row in mine["timers"]} == {"fired"}


def test_the_dropped_triggers_are_the_console_counts(
    tmp_path: Path, bench_modules: dict[str, Any]
) -> None:
    workload, dispatch = bench_modules["workload"], bench_modules["dispatch"]
    path = tmp_path / "bench.db"
    workload.prepare(f"sqlite:///{path}", 1)
    conn = sqlite3.connect(path)
    before = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    conn.close()
    dropped = dispatch.drop_console_triggers(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    after = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    conn.close()
    assert dropped == len(before - after) > 0
    assert all(name.startswith(("cases_", "outbox_", "organisations_")) for name in before - after)


def test_a_batch_reads_its_organisations_once_not_once_a_mail(
    tmp_path: Path, bench_modules: dict[str, Any]
) -> None:
    """The mail shows the organisation (its titles, kind …): the dispatch reads the
    batch's organisations in one query, as it reads their contacts."""
    from sqlalchemy import event

    from dk2020flow.clock import ManualClock
    from dk2020flow.service import Service
    from dk2020flow.settings import Settings
    from dk2020flow.store.repository import SqlStore

    workload = bench_modules["workload"]
    path = tmp_path / "dk2020flow.db"
    workload.prepare(f"sqlite:///{path}", 20)
    store = SqlStore(f"sqlite:///{path}")
    reads: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM organisations" in statement:
            reads.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        service = Service(store, clock=ManualClock(workload.FIRE_AT), settings=Settings())
        assert service.fire_due(workload.FIRE_AT).fired == 20
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
        store.close()
    assert len(reads) == 1, reads
