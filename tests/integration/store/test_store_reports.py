"""The read-only queries of reports and the simulator (``ReportsTx``: ``store/sql/reports.py``)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import replace

import pytest

from dk2020flow.engine.records import EventKind
from dk2020flow.store.port import EventLine, ProgrammeTimer
from dk2020flow.store.repository import SqlStore

from .conftest import Build

UTC = dt.UTC
T0 = dt.datetime(2020, 8, 1, 12, 0, tzinfo=UTC)


def _hours(n: int) -> dt.datetime:
    return T0 + dt.timedelta(hours=n)


class rq:  # noqa: N801 - read as the module the reads once were
    """The report reads, each in a read transaction of its own (``Store.read()``)."""

    @staticmethod
    def events(
        store: SqlStore, *, workflow: str | None = None, after_id: int = 0
    ) -> list[EventLine]:
        with store.read() as tx:
            return tx.report_events(workflow=workflow, after_id=after_id)

    @staticmethod
    def last_event_id(store: SqlStore) -> int:
        with store.read() as tx:
            return tx.last_event_id()

    @staticmethod
    def next_work(store: SqlStore) -> tuple[dt.datetime | None, dt.datetime | None]:
        with store.read() as tx:
            return tx.next_work()


def test_events_after_an_id_in_id_order_with_the_organisation(
    store: SqlStore, build: Build
) -> None:
    assert rq.events(store) == []
    assert rq.last_event_id(store) == 0
    aarhus = build.open(store, "751")
    first = rq.last_event_id(store)
    copenhagen = build.open(store, "101")
    with store.transaction() as tx:
        case = tx.load_case(aarhus)
        tx.apply(
            build.decision(
                replace(case, state="deciding", version=case.version + 1),
                [
                    build.event(EventKind.TRANSITION, from_state="invited", to_state="deciding"),
                    build.event(EventKind.DATA_SET, to_state=None, data={"n": 4}),
                ],
            ),
            [],
            expected_version=case.version,
        )
    lines = rq.events(store)
    assert [(e.case_id, e.seq, e.kind) for e in lines] == [
        (aarhus, 1, "opened"),
        (copenhagen, 1, "opened"),
        (aarhus, 2, "transition"),
        (aarhus, 3, "data_set"),
    ]
    assert [e.id for e in lines] == sorted(e.id for e in lines)
    assert (lines[0].organisation_code, lines[0].organisation_name) == ("751", "Aarhus")
    assert (lines[1].organisation_code, lines[1].organisation_name) == ("101", "København")
    assert lines[3].data == {"n": 4} and lines[3].at == lines[0].at and lines[3].at.tzinfo is UTC
    assert rq.last_event_id(store) == lines[-1].id
    assert rq.events(store, after_id=first) == lines[1:]
    assert rq.events(store, after_id=lines[-1].id) == []
    assert rq.events(store, workflow="dk2020", after_id=first) == lines[1:]
    assert rq.events(store, workflow="other") == []


def test_next_work_is_the_earliest_timer_and_the_moment_mail_may_go(
    store: SqlStore, build: Build
) -> None:
    assert rq.next_work(store) == (None, None)
    build.open(store, arm=[build.arm(due=_hours(5))])
    assert rq.next_work(store) == (_hours(5), None)
    with store.transaction() as tx:
        tx.arm_programme_timers(
            build.definition_id,
            [
                ProgrammeTimer(
                    id=0,
                    definition_id=build.definition_id,
                    cohort="round1",
                    event="workshop",
                    kind="event",
                    index=0,
                    due_at=_hours(4),
                )
            ],
        )
        (held,) = tx.queue_mail([build.mail(not_before=_hours(8))])
    assert rq.next_work(store) == (_hours(4), _hours(8))
    with store.transaction() as tx:  # a retry due before the office opens waits for it
        tx.mark_retry(held, _hours(6), "421 try later")
    timers_at, mail_at = rq.next_work(store)
    assert (timers_at, mail_at) == (_hours(4), _hours(8))
    assert timers_at is not None and timers_at.tzinfo is UTC
    with store.transaction() as tx:
        tx.mark_retry(held, _hours(9), "421 try later")
    assert rq.next_work(store) == (_hours(4), _hours(9))


@pytest.mark.parametrize("backend", ["sqlite"])
def test_report_reads_answer_while_a_writer_holds_the_lock(
    db_url: str, store: SqlStore, build: Build
) -> None:
    case_id = build.open(store, arm=[build.arm(due=_hours(5))])
    before = rq.events(store)
    writer = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE timers SET due_at = '2020-08-01 13:00:00.000000'")
        writer.execute(
            "INSERT INTO events (case_id, seq, at, kind, actor, comment, data, epoch) "
            "VALUES (?, 2, '2020-08-01 12:00:00.000000', 'data_set', 'x', '', '{}', 1)",
            (case_id,),
        )
        # No lock taken, no wait: the committed state, read in one statement.
        assert rq.next_work(store) == (_hours(5), None)
        assert rq.events(store) == before
        assert rq.last_event_id(store) == before[-1].id
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert rq.next_work(store) == (_hours(1), None)
    assert [e.seq for e in rq.events(store)] == [1, 2]
