"""The counts the database keeps for the console (migration 0004's triggers): after any
mix of writes — inserts, updates of every counted column, deletes, an organisation moving
to another region, mail changing status, a rolled-back transaction — ``case_counts``,
``deadline_counts``, ``outbox_counts`` and ``cases.organisation_region`` equal a recount
of the tables, on SQLite and PostgreSQL; and on PostgreSQL two writers changing the same
counts never wait for each other."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, func, insert, select, text, update

from dk2020flow.store import tables as t
from dk2020flow.store.port import OutboxStatus
from dk2020flow.store.repository import SqlStore

from .conftest import T0, Build

CODES = ("461", "492", "550", "751", "340", "223")
REGIONS = ("Syddanmark", "Midtjylland", "Hovedstaden")
STATES = ("invited", "drafting", "approved")
COHORTS = (None, "round1", "round2")
TIMERS = (None, "reply", "plan_due")
DEADLINES = (None, T0, T0 + dt.timedelta(days=3), T0 + dt.timedelta(days=3, seconds=1))
WORKFLOWS = ("dk2020", "other")
STATUSES = tuple(status.value for status in OutboxStatus)


class AbortError(Exception):
    """Rolls a generated transaction back."""


def _recount(conn: Connection) -> dict[str, Counter[tuple[Any, ...]]]:
    c, m = t.cases.c, t.organisations.c
    cases = conn.execute(
        select(c.workflow, c.state, c.cohort, m.region, c.organisation_region).join(
            t.organisations, m.code == c.organisation_code
        )
    ).all()
    deadlines = conn.execute(
        select(
            c.workflow,
            c.definition_id,
            c.state,
            c.cohort,
            m.region,
            c.deadline_timer,
            c.deadline_at,
        )
        .join(t.organisations, m.code == c.organisation_code)
        .where(c.closed.is_(False), c.deadline_at.is_not(None), c.deadline_timer.is_not(None))
    ).all()
    return {
        "cases": Counter((w, s, co or "", r) for w, s, co, r, _ in cases),
        "regions": Counter((r, r) for *_, r, _own in cases),
        "own regions": Counter((r, own) for *_, r, own in cases),
        "deadlines": Counter(
            (w, d, s, co or "", r, tm, at) for w, d, s, co, r, tm, at in deadlines
        ),
        "outbox": Counter({(s,): n for s, n in conn.execute(_outbox_recount())}),
    }


def _outbox_recount() -> Any:
    o = t.outbox.c
    return select(o.status, func.count()).group_by(o.status)


def _kept(conn: Connection) -> dict[str, Counter[tuple[Any, ...]]]:
    def summed(table: Any, *key: Any) -> Counter[tuple[Any, ...]]:
        n = func.sum(table.c.n)
        rows = conn.execute(select(*key, n).group_by(*key).having(n != 0))
        return Counter({tuple(row[:-1]): int(row[-1]) for row in rows})

    cc, dc = t.case_counts.c, t.deadline_counts.c
    return {
        "cases": summed(t.case_counts, cc.workflow, cc.state, cc.cohort, cc.region),
        "deadlines": summed(
            t.deadline_counts,
            dc.workflow,
            dc.definition_id,
            dc.state,
            dc.cohort,
            dc.region,
            dc.deadline_timer,
            dc.deadline_at,
        ),
        "outbox": summed(t.outbox_counts, t.outbox_counts.c.status),
    }


def assert_counts_kept(store: SqlStore) -> None:
    with store.read() as tx:
        conn = tx.connection
        recount, kept = _recount(conn), _kept(conn)
        assert kept["cases"] == recount["cases"]
        assert kept["deadlines"] == recount["deadlines"]
        assert kept["outbox"] == recount["outbox"]
        assert recount["own regions"] == recount["regions"]  # cases.organisation_region
        assert tx.outbox_status_counts() == tx.outbox_counts()
        # PostgreSQL: each transaction's change rows were folded in as it committed.
        for table in (t.case_counts, t.deadline_counts, t.outbox_counts):
            left = select(func.count()).select_from(table).where(table.c.tx.is_not(None))
            assert conn.execute(left).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(t.count_folds)).scalar_one() == 0


# ----------------------------------------------------------------------------- writes

case_values = st.fixed_dictionaries(
    {
        "state": st.sampled_from(STATES),
        "cohort": st.sampled_from(COHORTS),
        "closed": st.booleans(),
        "deadline_at": st.sampled_from(DEADLINES),
        "deadline_timer": st.sampled_from(TIMERS),
    }
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.sampled_from(WORKFLOWS), st.sampled_from(CODES), case_values),
        st.tuples(st.just("change"), st.integers(0, 20), case_values),
        st.tuples(st.just("move"), st.integers(0, 20), st.sampled_from(CODES)),
        st.tuples(st.just("close"), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("forget"), st.integers(0, 20)),
        st.tuples(st.just("region"), st.sampled_from(CODES), st.sampled_from(REGIONS)),
        st.tuples(st.just("mail"), st.sampled_from(STATUSES)),
        st.tuples(st.just("status"), st.integers(0, 20), st.sampled_from(STATUSES)),
        st.tuples(st.just("unmail"), st.integers(0, 20)),
    ),
    max_size=12,
)


def _pick(conn: Connection, table: Any, index: int) -> int | None:
    ids = sorted(conn.execute(select(table.c.id)).scalars())
    return ids[index % len(ids)] if ids else None


def _apply(conn: Connection, definition_id: int, op: tuple[Any, ...]) -> None:
    c = t.cases.c
    kind = op[0]
    if kind == "open":
        _, workflow, code, values = op
        taken = conn.execute(
            select(c.id).where(c.workflow == workflow, c.organisation_code == code)
        ).first()
        if taken is None:
            conn.execute(
                insert(t.cases).values(
                    workflow=workflow,
                    definition_id=definition_id,
                    organisation_code=code,
                    epoch=1,
                    data={},
                    checklists={},
                    entered_at=T0,
                    opened_at=T0,
                    version=1,
                    organisation_region="wrong",  # the database sets its own
                    **values,
                )
            )
    elif kind in ("change", "move", "close", "forget"):
        case_id = _pick(conn, t.cases, op[1])
        if case_id is None:
            return
        if kind == "change":
            conn.execute(update(t.cases).where(c.id == case_id).values(**op[2]))
        elif kind == "close":
            conn.execute(update(t.cases).where(c.id == case_id).values(closed=op[2]))
        elif kind == "move":
            workflow = conn.execute(select(c.workflow).where(c.id == case_id)).scalar_one()
            taken = conn.execute(
                select(c.id).where(c.workflow == workflow, c.organisation_code == op[2])
            ).first()
            if taken is None:
                conn.execute(update(t.cases).where(c.id == case_id).values(organisation_code=op[2]))
        else:
            conn.execute(delete(t.outbox).where(t.outbox.c.case_id == case_id))
            conn.execute(delete(t.cases).where(c.id == case_id))
    elif kind == "region":
        conn.execute(
            update(t.organisations).where(t.organisations.c.code == op[1]).values(region=op[2])
        )
    elif kind == "mail":
        conn.execute(
            insert(t.outbox).values(
                case_id=None,
                template="t",
                language="da",
                to_addresses=[],
                cc_addresses=[],
                subject="s",
                text="x",
                html="",
                ics=None,
                message_id=None,
                status=op[1],
                attempts=0,
                next_attempt_at=T0,
                not_before=T0,
                created_at=T0,
                last_error="",
                urgent=False,
                reason="",
            )
        )
    elif kind == "status":
        mail_id = _pick(conn, t.outbox, op[1])
        if mail_id is not None:
            conn.execute(update(t.outbox).where(t.outbox.c.id == mail_id).values(status=op[2]))
    elif kind == "unmail":
        mail_id = _pick(conn, t.outbox, op[1])
        if mail_id is not None:
            conn.execute(delete(t.outbox).where(t.outbox.c.id == mail_id))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(transactions=st.lists(st.tuples(operations, st.booleans()), min_size=1, max_size=4))
def test_the_kept_counts_equal_a_recount_after_any_writes(
    store: SqlStore, build: Build, transactions: list[tuple[list[tuple[Any, ...]], bool]]
) -> None:
    # The database keeps its state from one example to the next: the counts must hold
    # after every transaction, whatever came before.
    for ops, commit in transactions:
        try:
            with store.transaction() as tx:
                for op in ops:
                    _apply(tx.connection, build.definition_id, op)
                if not commit:
                    raise AbortError
        except AbortError:
            pass
        assert_counts_kept(store)


def test_the_store_own_writes_keep_the_counts(store: SqlStore, build: Build) -> None:
    """Cases opened, moved on and closed through the store's own statements."""
    first = build.open(store, "461", arm=[build.arm(due=T0 + dt.timedelta(days=3))])
    build.open(store, "751", cohort=None, mails=[build.mail()])
    assert_counts_kept(store)
    with store.transaction() as tx:
        tx.connection.execute(
            update(t.cases).where(t.cases.c.id == first).values(state="drafting", closed=True)
        )
    assert_counts_kept(store)


# ----------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_two_writers_changing_the_same_counts_do_not_wait(store: SqlStore, build: Build) -> None:
    """Writer A moves a case invited → drafting and holds its transaction open; writer B
    moves another drafting → invited (the same two count rows, the other way round): B
    neither waits for A (``lock_timeout`` would fail it) nor deadlocks, and once both
    commit the counts are right."""
    a_case = build.open(store, "461", state="invited")
    b_case = build.open(store, "492", state="drafting")  # Ærø: Syddanmark, as Odense
    a_done, b_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer_a() -> None:
        try:
            with store.transaction() as tx:
                tx.connection.execute(
                    update(t.cases).where(t.cases.c.id == a_case).values(state="drafting")
                )
                a_done.set()
                assert b_done.wait(10)  # B commits while A still holds its rows
        except BaseException as exc:
            errors.append(exc)
            a_done.set()

    thread = threading.Thread(target=writer_a)
    thread.start()
    assert a_done.wait(10)
    with store.transaction() as tx:
        tx.connection.execute(text("SET LOCAL lock_timeout = '2s'"))
        tx.connection.execute(update(t.cases).where(t.cases.c.id == b_case).values(state="invited"))
    b_done.set()
    thread.join(10)
    assert not errors
    assert_counts_kept(store)
    with store.read() as tx:
        by_state = Counter()
        for count in tx.state_counts():
            by_state[count.state] += count.count
    assert by_state == Counter({"invited": 1, "drafting": 1})


def test_a_transaction_changing_many_cases_updates_each_count_once(
    store: SqlStore, build: Build
) -> None:
    """Many cases moved in one transaction, one statement each (as a migration or a
    dispatch batch writes them): the counts end as one row per key, not a row (or, on
    PostgreSQL, a row version) per case."""
    codes = [m.code for m in _organisations(store)][:40]
    for code in codes:
        build.open(store, code, state="invited")
    with store.transaction() as tx:
        for case_id in tx.connection.execute(select(t.cases.c.id)).scalars():
            tx.connection.execute(
                update(t.cases).where(t.cases.c.id == case_id).values(state="drafting")
            )
    assert_counts_kept(store)
    with store.read() as tx:
        rows = tx.connection.execute(
            select(t.case_counts.c.region, func.count()).group_by(t.case_counts.c.region)
        ).all()
    assert all(count == 1 for _, count in rows)  # one row per key (all in one state)


def _organisations(store: SqlStore) -> list[Any]:
    with store.read() as tx:
        return list(tx.organisations())
