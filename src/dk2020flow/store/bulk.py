"""Writing a dispatch batch with a few bulk statements: one or two per table.

``SqlTx.apply_batch`` hands a list of ``BatchItem`` here. Each item is what the
firing of one case's claimed timers writes — retiring the timer rows and applying
the decisions, in order — and must stay all or nothing (DESIGN.md invariant 1).
The bulk path writes every item at once, inside one savepoint:

1. the claimed timers retired (``UPDATE … WHERE id IN (…) AND status = 'pending'``,
   one per status and note), the row count checked: a timer retired elsewhere is
   caught (exactly once, invariant 3);
2. the case rows updated (``executemany`` of ``… WHERE id = ? AND version = ?``),
   the summed row count checked: a version that moved on is caught (the
   optimistic lock);
3. the pending timers of the cases' earlier epochs discarded (the case left its
   state), compared with the epoch the case rows now hold;
4. the events (numbered on from one ``max(seq)`` query for the batch), the new
   timers and the outbox rows inserted. Outbox ids are reserved first (the
   table's sequence on PostgreSQL, ``max(id)`` under SQLite's write lock), so each
   row is inserted with its stable Message-ID already set (invariant 4): no second
   ``UPDATE`` per message.

If anything in it fails, the savepoint is rolled back and the items are written
again one by one through the ordinary ``finish_timer`` / ``apply`` of the
transaction, each in a savepoint of its own: a conflict or a failure then leaves
out that item alone. Items whose steps depend on their order in a way the grouped
statements would not reproduce (see ``_bulk_ok``) always take that path.

Statements are built once, here and in ``store/sql/``. The ``executemany``
ones are ``driver.BulkStatement``: SQLAlchemy's public ``executemany``, or the
driver fast path when it is switched on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, exc, func, select, update
from sqlalchemy.engine import Connection

from dk2020flow.engine.records import Decision, TimerStatus
from dk2020flow.errors import ConflictError, Dk2020flowError
from dk2020flow.store import tables as t
from dk2020flow.store.chain import GENESIS, chain
from dk2020flow.store.port import (
    BatchItem,
    BatchOutcome,
    DecisionStep,
    NewMail,
    TimerFinish,
    Tx,
)
from dk2020flow.store.rows import case_values, event_values, with_case
from dk2020flow.store.sql.cases import INSERT_EVENT_ROWS, UPDATE_CASE
from dk2020flow.store.sql.outbox import insert_outbox
from dk2020flow.store.sql.timers import (
    INSERT_TIMER_ROWS,
    refresh_deadline_columns,
    timer_values,
)
from dk2020flow.store.sql.webhooks import Told, queue_webhooks

PENDING = TimerStatus.PENDING.value

_tm = t.timers.c
_c = t.cases.c
_e = t.events.c

FINISH_TIMERS = (
    update(t.timers)
    .where(_tm.id.in_(bindparam("ids", expanding=True)), _tm.status == PENDING)
    .values(
        status=bindparam("b_status", type_=_tm.status.type),
        fired_at=bindparam("b_at", type_=_tm.fired_at.type),
        note=bindparam("b_note", type_=_tm.note.type),
    )
)
"""Retire claimed timers with one status and note; the row count says if all were pending."""

DISCARD_EARLIER_EPOCHS = (
    update(t.timers)
    .where(
        _tm.case_id.in_(bindparam("ids", expanding=True)),
        _tm.status == PENDING,
        _tm.epoch < select(_c.epoch).where(_c.id == _tm.case_id).scalar_subquery(),
    )
    .values(status=TimerStatus.DISCARDED.value, note="the case left the state")
)
"""Discard the pending timers of the cases' earlier epochs, once their rows hold the new
epoch (as ``apply`` does for a decision that left the state: ``epoch < new epoch``)."""

_last = t.events.alias("last")
LAST_SEQ = select(_e.case_id, _e.seq, _e.hash).where(
    _e.case_id.in_(bindparam("ids", expanding=True)),
    _e.seq == select(func.max(_last.c.seq)).where(_last.c.case_id == _e.case_id).scalar_subquery(),
)
"""The number and hash of each case's last event: numbering and the hash chain go on
from them (one query for the batch)."""

IN_LIST_MAX = 5000


class _BulkMismatchError(Exception):
    """The bulk write found a row not as expected: redo the batch item by item."""


# --------------------------------------------------------------------------- entry


def apply_batch(tx: Tx, conn: Connection, items: Sequence[BatchItem]) -> BatchOutcome:
    """Write ``items``: in bulk when possible, else (or after a failure) one by one."""
    seen: set[int] = set()
    bulk: list[int] = []
    single: list[int] = []
    for n, item in enumerate(items):
        if item.case_id not in seen and _bulk_ok(item):
            bulk.append(n)
        else:
            single.append(n)
        seen.add(item.case_id)
    if bulk:
        try:
            with conn.begin_nested():
                write_bulk(conn, [items[n] for n in bulk])
        except exc.DBAPIError as error:
            if error.connection_invalidated or conn.invalidated:
                raise  # the connection is gone: end the batch, the claims are released
            single = sorted(single + bulk)
        except (_BulkMismatchError, Dk2020flowError, exc.StatementError):
            # Which item is to blame is not known: redo all of them one by one.
            # A locked database fails there again and ends the transaction
            # (nothing is written; the claims are released).
            single = sorted(single + bulk)
    conflicts: set[int] = set()
    failures: dict[int, str] = {}
    for n in single:
        try:
            with tx.savepoint():
                write_one(tx, items[n])
        except ConflictError:
            conflicts.add(n)
        except Dk2020flowError as error:
            failures[n] = str(error)
        except exc.StatementError as error:
            if isinstance(error, exc.DBAPIError) and not isinstance(
                error, exc.IntegrityError | exc.DataError
            ):
                raise  # the database, not this firing: give up the whole batch
            failures[n] = _statement_error(error)
    return BatchOutcome(conflicts=frozenset(conflicts), failures=failures)


def write_one(tx: Tx, item: BatchItem) -> None:
    """The item's steps in order, through the transaction's ordinary writes."""
    version = item.expected_version
    for step in item.steps:
        if isinstance(step, TimerFinish):
            tx.finish_timer(step.timer_id, step.status, item.at, step.note)
        else:
            tx.apply(step.decision, step.mails, expected_version=version)
            version = step.decision.case.version


def _bulk_ok(item: BatchItem) -> bool:
    """Whether the grouped statements write exactly what ``write_one`` would.

    They retire every timer first, then update the case, then discard the earlier
    epochs' timers, then insert. That is the order of the steps unless a decision
    cancels named timers, a step follows a decision that discards timers, or
    timers are armed before the last decision (which might discard them); such
    items (none come from ``fire_due`` today) are written one by one.
    """
    decisions = [s.decision for s in item.steps if isinstance(s, DecisionStep)]
    version = item.expected_version
    for n, decision in enumerate(decisions):
        if decision.case.id != item.case_id or decision.cancel_timers:
            return False
        if decision.case.version != version + 1:
            return False  # write_one would meet a conflict: let it say so
        version = decision.case.version
        if (decision.cancel_pending or decision.arm) and n != len(decisions) - 1:
            return False
    seen_discard = False
    for step in item.steps:
        if seen_discard:
            return False
        if isinstance(step, DecisionStep) and step.decision.cancel_pending:
            seen_discard = True
    return True


def _statement_error(error: exc.StatementError) -> str:
    orig = getattr(error, "orig", None)
    if isinstance(orig, Dk2020flowError):
        return str(orig)
    return f"database error: {str(orig if orig is not None else error).strip()}"


# ---------------------------------------------------------------------------- bulk


def write_bulk(conn: Connection, items: Sequence[BatchItem]) -> None:
    """Every item's writes, grouped by statement (the caller holds a savepoint)."""
    finishes: dict[tuple[TimerStatus, str], list[int]] = {}
    cases: list[dict[str, Any]] = []
    discards: list[int] = []
    at = items[0].at if items else None
    applied: list[tuple[int, list[Decision], list[NewMail]]] = []
    refresh: list[int] = []  # the cases whose deadline columns may change
    for item in items:
        decisions: list[Decision] = []
        mails: list[NewMail] = []
        for step in item.steps:
            if isinstance(step, TimerFinish):
                if item.at != at:
                    raise _BulkMismatchError("the items of a batch fire at different instants")
                finishes.setdefault((step.status, step.note), []).append(step.timer_id)
                if step.status is TimerStatus.DISCARDED:
                    refresh.append(item.case_id)
            else:
                decisions.append(step.decision)
                mails.extend(step.mails)
        if not decisions:
            continue
        last = decisions[-1].case
        # One UPDATE for the item's decisions: from the version before the first
        # (``_bulk_ok`` checked that each bumps it by one) to that of the last.
        cases.append(
            {
                "b_id": item.case_id,
                "b_expected": item.expected_version,
                "version": last.version,
                **case_values(last),
            }
        )
        if decisions[-1].cancel_pending:  # ``_bulk_ok``: only the last one may discard
            discards.append(item.case_id)
        applied.append((item.case_id, decisions, mails))
        refresh.append(item.case_id)
    for (status, note), all_ids in finishes.items():
        for ids in _chunks(all_ids):
            params = {"ids": ids, "b_status": status.value, "b_at": at, "b_note": note}
            done = conn.execute(FINISH_TIMERS, params).rowcount
            if done != len(ids):
                raise _BulkMismatchError(f"{len(ids) - done} timer(s) not pending any more")
    if cases:
        # The optimistic lock, for all at once: the summed row count must match.
        done = UPDATE_CASE.execute(conn, cases)
        if done != len(cases):
            raise _BulkMismatchError(f"{len(cases) - done} case(s) changed meanwhile")
    for ids in _chunks(discards):  # after the cases' UPDATE: it compares with their new epoch
        conn.execute(DISCARD_EARLIER_EPOCHS, {"ids": ids})
    _insert_rows(conn, applied)
    # As ``apply`` and ``finish_timer`` do, for the whole batch (after the inserts).
    refresh_deadline_columns(conn, refresh)


def _chunks(ids: list[int]) -> list[list[int]]:
    """``ids`` in slices short enough for an IN list (SQLite binds at most 32,766)."""
    return [ids[n : n + IN_LIST_MAX] for n in range(0, len(ids), IN_LIST_MAX)]


def _insert_rows(
    conn: Connection, applied: Sequence[tuple[int, list[Decision], list[NewMail]]]
) -> None:
    ids = [case_id for case_id, decisions, _ in applied if any(d.events for d in decisions)]
    last: dict[int, tuple[int, str]] = {}
    for chunk in _chunks(ids):
        for case_id, seq, hash_ in conn.execute(LAST_SEQ, {"ids": chunk}):
            last[int(case_id)] = (int(seq), hash_ or GENESIS)
    events: list[dict[str, Any]] = []
    timers: list[dict[str, Any]] = []
    mails: list[NewMail] = []
    told: list[Told] = []  # each decision's events, for its webhook notices
    for case_id, decisions, case_mails in applied:
        seq, prev = last.get(case_id, (0, GENESIS))
        for decision in decisions:
            epoch = decision.case.epoch
            rows = []
            for record in decision.events:
                seq += 1
                rows.append({**event_values(case_id, record, epoch), "seq": seq})
            prev = chain(rows, prev)
            events.extend(rows)
            told.append(Told(case_id, decision.case, decision.events, [r["seq"] for r in rows]))
            timers.extend(timer_values(case_id, arm) for arm in decision.arm)
        mails.extend(with_case(m, case_id) for m in case_mails)
    if events:
        INSERT_EVENT_ROWS.execute(conn, events)
        queue_webhooks(conn, told)  # in the batch's savepoint, with its events
    if timers:
        INSERT_TIMER_ROWS.execute(conn, timers)
    if mails:
        insert_outbox(conn, mails)
