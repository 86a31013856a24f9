"""The store's bulk statements (``store/driver.py``) write every row they are given and
report the row count, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection

from dk2020flow.engine.records import EventKind, EventRecord
from dk2020flow.store import tables as t
from dk2020flow.store.chain import GENESIS, chain
from dk2020flow.store.driver import BulkStatement
from dk2020flow.store.repository import SqlStore
from dk2020flow.store.rows import event_values, outbox_values
from dk2020flow.store.sql.cases import APPEND_EVENT_ROWS, INSERT_EVENT_ROWS, UPDATE_CASE
from dk2020flow.store.sql.outbox import INSERT_OUTBOX, reserve_outbox_ids
from dk2020flow.store.sql.timers import INSERT_TIMER_ROWS

from .conftest import T0, Build

CPH = dt.timezone(dt.timedelta(hours=2), "CEST")
Rows = Callable[[Connection, int], list[dict[str, Any]]]


def _events(conn: Connection, case_id: int) -> list[dict[str, Any]]:
    records = [
        EventRecord(
            kind=EventKind.DATA_SET,
            at=T0 + dt.timedelta(minutes=n),
            actor="secretariat@example.dk",
            data={"n": n, "navn": "Ærø"},
            comment="" if n % 2 else "a comment",
        )
        for n in range(3)
    ]
    rows = [{**event_values(case_id, rec, 1), "seq": 10 + n} for n, rec in enumerate(records)]
    chain(rows, GENESIS)
    return rows


def _appended(conn: Connection, case_id: int) -> list[dict[str, Any]]:
    rows = [{**row, "b_case": case_id} for row in _events(conn, case_id)]
    for row in rows:
        del row["seq"]
    return rows


def _timers(conn: Connection, case_id: int) -> list[dict[str, Any]]:
    due = dt.datetime(2020, 8, 31, 23, 59, tzinfo=CPH)
    return [
        {
            "case_id": case_id,
            "timer": f"reply{n}",
            "kind": "deadline",
            "idx": n,
            "due_at": due,
            "deadline_at": due,
            "epoch": 1,
            "status": "pending",
            "fired_at": None,
            "note": "",
            "claimed_by": None,
        }
        for n in range(3)
    ]


def _outbox(build: Build) -> Rows:
    def rows(conn: Connection, case_id: int) -> list[dict[str, Any]]:
        mails = [build.mail(case_id=case_id, subject=f"Invitation {n}") for n in range(2)]
        ids = reserve_outbox_ids(conn, len(mails))
        return [outbox_values(mail, row_id) for mail, row_id in zip(mails, ids, strict=True)]

    return rows


def _case_update(conn: Connection, case_id: int) -> list[dict[str, Any]]:
    return [
        {
            "b_id": case_id,
            "b_expected": 1,
            "version": 2,
            "definition_id": conn.execute(select(t.cases.c.definition_id)).scalar_one(),
            "state": "decided",
            "epoch": 2,
            "cohort": "round1",
            "data": {"decision": "ja"},
            "checklists": {"plan": {"draft": {"status": "done", "comment": ""}}},
            "entered_at": dt.datetime(2020, 10, 25, 2, 30, tzinfo=CPH),
            "closed": False,
        }
    ]


def _written(
    store: SqlStore, statement: BulkStatement, rows: Rows, case_id: int, table: Any
) -> tuple[int, int, list[tuple[Any, ...]]]:
    """Run ``statement`` on ``rows`` in a transaction that is rolled back: the row count
    it returned, how many rows it was given, and what the table held then (every column
    but the ids a sequence hands out, which a rollback does not give back on PostgreSQL)."""
    with store.transaction() as tx:
        conn = tx.connection
        given = rows(conn, case_id)
        count = statement.execute(conn, given)
        columns = [c for c in table.columns if c.key not in ("id", "message_id")]
        found = [tuple(r) for r in conn.execute(select(*columns).order_by(*columns))]
        conn.rollback()
    return count, len(given), found


STATEMENTS: Sequence[tuple[str, BulkStatement, Any]] = (
    ("events", INSERT_EVENT_ROWS, t.events),
    ("appended events", APPEND_EVENT_ROWS, t.events),
    ("timers", INSERT_TIMER_ROWS, t.timers),
    ("outbox", INSERT_OUTBOX, t.outbox),
    ("case update", UPDATE_CASE, t.cases),
)


@pytest.mark.parametrize(("name", "statement", "table"), STATEMENTS, ids=[s[0] for s in STATEMENTS])
def test_a_bulk_statement_writes_every_row_it_is_given(
    store: SqlStore,
    build: Build,
    name: str,
    statement: BulkStatement,
    table: Any,
) -> None:
    case_id = build.open(store)
    rows = {
        "events": _events,
        "appended events": _appended,
        "timers": _timers,
        "outbox": _outbox(build),
        "case update": _case_update,
    }[name]
    count, given, found = _written(store, statement, rows, case_id, table)
    assert count == given
    assert found
