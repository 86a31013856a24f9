"""The statements that claim work and answer the daemon's questions.

Claims read ``(status, due_at)`` / ``(status, next_attempt_at)`` through their
indexes, so a tick costs in proportion to what is due, not to the number of
cases (DESIGN.md invariant 8). On PostgreSQL they lock the rows they return
with ``FOR UPDATE SKIP LOCKED``, so concurrent daemons never get the same row;
on SQLite (one writer at a time, ``BEGIN IMMEDIATE``) the clause is a no-op.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Integer, Select, and_, bindparam, exists, func, insert, select, update

from dk2020flow.engine.records import TimerArm, TimerKind, TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.port import CaseFilter, OutboxStatus

PENDING = TimerStatus.PENDING.value


def timer_values(case_id: int, arm: TimerArm) -> dict[str, Any]:
    """The row of a newly armed timer (bound to ``INSERT_TIMER_ROWS``)."""
    return {
        "case_id": case_id,
        "timer": arm.timer,
        "kind": arm.kind.value,
        "idx": arm.index,
        "due_at": arm.due_at,
        "deadline_at": arm.deadline_at,
        "epoch": arm.epoch,
        "status": TimerStatus.PENDING.value,
        "fired_at": None,
        "note": "",
        "claimed_by": None,
    }


def due_timers(now: dt.datetime, limit: int) -> Select[Any]:
    """Pending case timers due at ``now``, earliest first, locked for the caller.

    The case row is locked with its timers: two daemons never work on one case at
    once (on PostgreSQL the second skips it), so neither loses a version check or
    deadlocks on the other's case.
    """
    return (
        select(t.timers.c.id)
        .join(t.cases, t.cases.c.id == t.timers.c.case_id)
        .where(t.timers.c.status == PENDING, t.timers.c.due_at <= now)
        .order_by(t.timers.c.due_at, t.timers.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=[t.timers, t.cases])
    )


def due_programme_timers(now: dt.datetime, limit: int) -> Select[Any]:
    pt = t.programme_timers
    return (
        select(pt.c.id)
        .where(pt.c.status == PENDING, pt.c.due_at <= now)
        .order_by(pt.c.due_at, pt.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def expired_leases(now: dt.datetime, limit: int) -> Select[Any]:
    """Messages a daemon took for sending and never finished (it crashed)."""
    o = t.outbox
    return (
        select(o.c.id)
        .where(o.c.status == OutboxStatus.SENDING.value, o.c.lease_until <= now)
        .order_by(o.c.lease_until, o.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def deliverable(now: dt.datetime, limit: int) -> Select[Any]:
    """Pending messages whose time has come; urgent ones first."""
    o = t.outbox
    return (
        select(o.c.id)
        .where(
            o.c.status == OutboxStatus.PENDING.value,
            o.c.next_attempt_at <= now,
            o.c.not_before <= now,
        )
        .order_by(o.c.urgent.desc(), o.c.next_attempt_at, o.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def next_due_candidates() -> list[Select[Any]]:
    """One ``min(...)`` per kind of work; the daemon sleeps until the earliest."""
    o = t.outbox
    return [
        select(func.min(t.timers.c.due_at)).where(t.timers.c.status == PENDING),
        select(func.min(t.programme_timers.c.due_at)).where(t.programme_timers.c.status == PENDING),
        select(func.min(o.c.next_attempt_at)).where(o.c.status == OutboxStatus.PENDING.value),
        select(func.min(o.c.lease_until)).where(o.c.status == OutboxStatus.SENDING.value),
    ]


def case_rows() -> Select[Any]:
    """Cases joined with their municipality's name and region."""
    return select(
        t.cases, t.municipalities.c.name.label("municipality_name"), t.municipalities.c.region
    ).join(t.municipalities, t.municipalities.c.code == t.cases.c.municipality_code)


def filter_cases(query: Select[Any], flt: CaseFilter) -> Select[Any]:
    c = t.cases.c
    if flt.workflow is not None:
        query = query.where(c.workflow == flt.workflow)
    if flt.state is not None:
        query = query.where(c.state == flt.state)
    if flt.cohort is not None:
        query = query.where(c.cohort == flt.cohort)
    if flt.region is not None:
        query = query.where(t.municipalities.c.region == flt.region)
    if flt.open_only:
        query = query.where(c.closed.is_(False))
    if flt.overdue_at is not None:
        tm = t.timers.c
        query = query.where(
            exists().where(
                and_(
                    tm.case_id == c.id,
                    tm.status == PENDING,
                    tm.kind == TimerKind.DEADLINE.value,
                    tm.epoch == c.epoch,
                    tm.due_at < flt.overdue_at,
                )
            )
        )
    return query.order_by(c.id)


CASES_BY_ID = case_rows().where(t.cases.c.id.in_(bindparam("ids", expanding=True)))
"""Cases (as ``case_rows``) by a list of ids: one query for a dispatch batch."""

CONTACTS_OF = (
    select(t.contacts)
    .where(t.contacts.c.municipality_code.in_(bindparam("codes", expanding=True)))
    .order_by(t.contacts.c.municipality_code, t.contacts.c.role, t.contacts.c.id)
)
"""The contacts of a list of municipalities, in the order of ``SqlTx.contacts``."""

# Statements built once, with bound parameters: SQLAlchemy computes a statement's
# cache key on every execution of a new statement object, which costs more than
# SQLite takes to run these.

_o = t.outbox.c

EXPIRED_LEASES = (
    select(_o.id)
    .where(
        _o.status == OutboxStatus.SENDING.value,
        _o.lease_until <= bindparam("now", type_=_o.lease_until.type),
    )
    .order_by(_o.lease_until, _o.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
"""``expired_leases`` with the parameters ``now`` and ``limit``."""

DELIVERABLE = (
    select(_o.id)
    .where(
        _o.status == OutboxStatus.PENDING.value,
        _o.next_attempt_at <= bindparam("now", type_=_o.next_attempt_at.type),
        _o.not_before <= bindparam("now", type_=_o.not_before.type),
    )
    .order_by(_o.urgent.desc(), _o.next_attempt_at, _o.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
"""``deliverable`` with the parameters ``now`` and ``limit``."""

LEASE_OUTBOX = (
    update(t.outbox)
    .where(_o.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=OutboxStatus.SENDING.value,
        lease_until=bindparam("lease_until", type_=_o.lease_until.type),
        attempts=_o.attempts + 1,
    )
)
"""Claim the messages ``ids`` until ``lease_until`` (one attempt more each)."""

OUTBOX_BY_ID = select(t.outbox).where(_o.id.in_(bindparam("ids", expanding=True)))
"""The outbox rows ``ids``."""

MARK_SENT = (
    update(t.outbox)
    .where(_o.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=OutboxStatus.SENT.value,
        sent_at=bindparam("at", type_=_o.sent_at.type),
        lease_until=None,
    )
)
"""Mark the messages ``ids`` sent ``at``."""

# The statements of one change to one case (``SqlTx.apply`` and what it writes).

_c = t.cases.c
_tm = t.timers.c
_e = t.events.c

CASE_BY_ID = case_rows().where(_c.id == bindparam("id")).order_by(_c.id)
"""A case by id (as ``case_rows``)."""

CASE_BY_ID_IN = (
    case_rows()
    .where(_c.id == bindparam("id"), _c.workflow == bindparam("workflow"))
    .order_by(_c.id)
)
"""A case by id within a workflow (as ``case_rows``)."""

MUNICIPALITY_BY_CODE = select(t.municipalities).where(t.municipalities.c.code == bindparam("code"))

CONTACTS_OF_ONE = (
    select(t.contacts)
    .where(t.contacts.c.municipality_code == bindparam("code"))
    .order_by(t.contacts.c.role, t.contacts.c.id)
)
"""One municipality's contacts, by role."""

UPDATE_CASE_IF_VERSION = update(t.cases).where(
    _c.id == bindparam("b_id"), _c.version == bindparam("b_expected")
)
"""Write a case's new values (the SET columns are the other parameters' keys) if its
version is still ``b_expected``."""

DISCARD_LEFT_STATE = (
    update(t.timers)
    .where(
        _tm.case_id == bindparam("b_case"),
        _tm.status == PENDING,
        _tm.epoch < bindparam("b_epoch"),
    )
    .values(status=TimerStatus.DISCARDED.value, note="the case left the state")
)
"""Discard a case's pending timers of earlier epochs."""

DISCARD_REPLACED = (
    update(t.timers)
    .where(
        _tm.case_id == bindparam("b_case"),
        _tm.status == PENDING,
        _tm.epoch == bindparam("b_epoch"),
        _tm.timer.in_(bindparam("b_timers", expanding=True)),
    )
    .values(status=TimerStatus.DISCARDED.value, note="replaced (deadline moved)")
)
"""Discard a case's pending firings of the named timers at its epoch (deadline moved)."""

LAST_EVENT_SEQ = select(func.coalesce(func.max(_e.seq), 0)).where(
    _e.case_id == bindparam("case_id")
)
"""The number of a case's last event (0 without one)."""

INSERT_EVENT_ROWS = insert(t.events)
INSERT_TIMER_ROWS = insert(t.timers)
