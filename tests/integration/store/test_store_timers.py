"""Case timers and programme timers: claims, finishing, the next due time."""

from __future__ import annotations

import datetime as dt

import pytest

from dk2020flow.engine.records import TimerKind, TimerStatus
from dk2020flow.errors import ConflictError
from dk2020flow.store.port import ProgrammeTimer
from dk2020flow.store.repository import SqlStore

from .conftest import Build

UTC = dt.UTC
T0 = dt.datetime(2020, 8, 1, 12, 0, tzinfo=UTC)


def _hours(n: int) -> dt.datetime:
    return T0 + dt.timedelta(hours=n)


def test_claim_due_timers_takes_due_pending_ones_earliest_first(
    store: SqlStore, build: Build
) -> None:
    a = build.open(store, "101", arm=[build.arm("r", due=_hours(3)), build.arm("d", due=_hours(1))])
    b = build.open(store, "147", arm=[build.arm("r", due=_hours(2)), build.arm("x", due=_hours(9))])

    with store.transaction() as tx:
        claimed = tx.claim_due_timers(_hours(3), limit=10)
    assert [(t.case_id, t.timer, t.due_at) for t in claimed] == [
        (a, "d", _hours(1)),
        (b, "r", _hours(2)),
        (a, "r", _hours(3)),
    ]
    assert claimed[0].kind is TimerKind.DEADLINE
    assert claimed[0].deadline_at == _hours(1)

    with store.transaction() as tx:
        assert [t.due_at for t in tx.claim_due_timers(_hours(3), limit=2)] == [_hours(1), _hours(2)]


def test_a_claim_changes_nothing_until_the_timer_is_finished(store: SqlStore, build: Build) -> None:
    case_id = build.open(store, arm=[build.arm(due=_hours(1))])

    class CrashError(Exception):
        pass

    def fire_then_crash() -> None:
        with store.transaction() as tx:
            (timer,) = tx.claim_due_timers(_hours(1), limit=10)
            tx.finish_timer(timer.id, TimerStatus.FIRED, _hours(1))
            raise CrashError(timer.id)  # the daemon dies mid-batch: the rollback releases it

    with pytest.raises(CrashError) as crash:
        fire_then_crash()
    timer_id = crash.value.args[0]

    with store.transaction() as tx:
        (again,) = tx.claim_due_timers(_hours(1), limit=10)
        assert again.id == timer_id
        tx.finish_timer(again.id, TimerStatus.FIRED, _hours(2), note="sent reminder")

    with store.transaction() as tx:
        assert tx.claim_due_timers(_hours(5), limit=10) == []
        (done,) = tx.timers_of(case_id, pending_only=False)
    assert (done.status, done.fired_at, done.note) == (
        TimerStatus.FIRED,
        _hours(2),
        "sent reminder",
    )


def test_a_timer_cannot_be_finished_twice(store: SqlStore, build: Build) -> None:
    build.open(store, arm=[build.arm(due=_hours(1))])
    with store.transaction() as tx:
        (timer,) = tx.claim_due_timers(_hours(1), limit=1)
        tx.finish_timer(timer.id, TimerStatus.SKIPPED, _hours(1), note="older than the window")
    with (
        pytest.raises(ConflictError, match=f"timer {timer.id} is not pending"),
        store.transaction() as tx,
    ):
        tx.finish_timer(timer.id, TimerStatus.FIRED, _hours(2))


def test_next_due_at_is_the_earliest_of_timers_programme_timers_and_mail(
    store: SqlStore, build: Build
) -> None:
    with store.read() as tx:
        assert tx.next_due_at() is None
    build.open(store, arm=[build.arm(due=_hours(5))])
    with store.read() as tx:
        assert tx.next_due_at() == _hours(5)
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
                ),
            ],
        )
    with store.read() as tx:
        assert tx.next_due_at() == _hours(4)
    with store.transaction() as tx:
        tx.queue_mail([build.mail(not_before=_hours(3))])
    with store.read() as tx:
        assert tx.next_due_at() == _hours(3)
        assert tx.next_due_at().tzinfo is UTC  # type: ignore[union-attr]


def test_programme_timers_are_armed_once_and_claimed_once(store: SqlStore, build: Build) -> None:
    rows = [
        ProgrammeTimer(
            id=0,
            definition_id=build.definition_id,
            cohort="round1",
            event="start",
            kind="event",
            index=0,
            due_at=_hours(10),
        ),
        ProgrammeTimer(
            id=0,
            definition_id=build.definition_id,
            cohort="round1",
            event="start",
            kind="event_reminder",
            index=0,
            due_at=_hours(1),
        ),
    ]
    with store.transaction() as tx:
        tx.arm_programme_timers(build.definition_id, rows)
    with store.transaction() as tx:  # re-arming is idempotent
        tx.arm_programme_timers(build.definition_id, rows)
        assert len(tx.programme_timers(build.definition_id)) == 2

    with store.transaction() as tx:
        (due,) = tx.claim_programme_timers(_hours(2), limit=10)
        assert (due.event, due.kind, due.due_at) == ("start", "event_reminder", _hours(1))
        tx.finish_programme_timer(due.id, _hours(2), note="mailed 3 cases")
    with store.transaction() as tx:
        assert tx.claim_programme_timers(_hours(2), limit=10) == []
        with pytest.raises(ConflictError):
            tx.finish_programme_timer(due.id, _hours(3))
    with store.transaction() as tx:  # arming again does not revive a fired row
        tx.arm_programme_timers(build.definition_id, rows)
        assert [p.kind for p in tx.claim_programme_timers(_hours(20), limit=10)] == ["event"]
