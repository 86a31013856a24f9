"""PostgreSQL: concurrent claims never hand out a row twice; concurrent changes conflict."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from dataclasses import replace

import pytest

from dk2020flow.engine.records import TimerStatus
from dk2020flow.errors import ConflictError
from dk2020flow.store.repository import SqlStore

from .conftest import Build

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("backend", ["postgres"])]
UTC = dt.UTC
T0 = dt.datetime(2020, 8, 1, tzinfo=UTC)


def _arm_many(store: SqlStore, build: Build, per_case: int) -> int:
    codes = ["101", "147", "151", "153", "155", "157", "159", "161"]
    for code in codes:
        build.open(
            store,
            code,
            arm=[build.arm(f"t{n}", due=T0 + dt.timedelta(minutes=n)) for n in range(per_case)],
        )
    return len(codes) * per_case


def test_two_open_claims_get_disjoint_rows(store: SqlStore, build: Build) -> None:
    _arm_many(store, build, per_case=2)
    with store.transaction() as first, store.transaction() as second:
        a = first.claim_due_timers(T0 + dt.timedelta(hours=1), limit=4)
        b = second.claim_due_timers(T0 + dt.timedelta(hours=1), limit=10)
        # The first claim holds four cases (their earliest timers); the second skips
        # those cases entirely and takes both timers of each of the other four.
        assert len(a) == 4
        assert len(b) == 8
        assert not {t.id for t in a} & {t.id for t in b}
        assert not {t.case_id for t in a} & {t.case_id for t in b}
        for tx, claimed in ((first, a), (second, b)):
            for timer in claimed:
                tx.finish_timer(timer.id, TimerStatus.FIRED, T0)


def test_concurrent_daemons_fire_every_timer_exactly_once(store: SqlStore, build: Build) -> None:
    total = _arm_many(store, build, per_case=25)
    fired: Counter[int] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(4)
    until = T0 + dt.timedelta(hours=1)

    def daemon() -> None:
        try:
            start.wait()
            while True:
                with store.transaction() as tx:
                    batch = tx.claim_due_timers(until, limit=7)
                    if not batch:
                        # An empty claim means "nothing I may take now": the rest may sit
                        # on cases another daemon holds. Stop only when nothing is due any
                        # more, as the daemon does (it re-reads next_due_at).
                        due = tx.next_due_at()
                        if due is None or due > until:
                            return
                        continue
                    for timer in batch:
                        tx.finish_timer(timer.id, TimerStatus.FIRED, T0)
                with lock:
                    fired.update(t.id for t in batch)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=daemon) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(fired) == total
    assert set(fired.values()) == {1}


def test_concurrent_changes_to_one_case_the_loser_gets_a_conflict(
    store: SqlStore, build: Build
) -> None:
    case_id = build.open(store)
    with store.transaction() as first, store.transaction() as second:
        one = first.load_case(case_id)
        two = second.load_case(case_id)
        first.apply(
            build.decision(replace(one, state="a", epoch=2)),
            [build.mail()],
            expected_version=one.version,
        )
        # (second waits for first's row lock; commit first by leaving its block early)
        first.connection.commit()
        with pytest.raises(ConflictError, match="changed by someone else"):
            second.apply(
                build.decision(replace(two, state="b", epoch=2)),
                [build.mail()],
                expected_version=two.version,
            )
        second.connection.rollback()
    with store.read() as tx:
        after = tx.load_case(case_id)
        assert (after.state, after.version) == ("a", 2)
        assert len(tx.history(case_id)) == 2
        assert len(tx.outbox()) == 1


def test_outbox_claims_are_disjoint(store: SqlStore, build: Build) -> None:
    with store.transaction() as tx:
        tx.queue_mail([build.mail(not_before=T0) for _ in range(5)])
    lease = T0 + dt.timedelta(minutes=5)
    with store.transaction() as first, store.transaction() as second:
        a = first.claim_outbox(T0, 3, lease)
        b = second.claim_outbox(T0, 3, lease)
    assert len(a) == 3
    assert len(b) == 2
    assert not {m.id for m in a} & {m.id for m in b}
