"""The statements of the store's hot paths: claims, the daemon's questions, one change.

They are built once, here, with bound parameters (SQLAlchemy then reuses the
compiled form; building a statement per call costs more than SQLite takes to
run it), and each does in one round trip what it can: a claim returns whole
rows, a change numbers its events in the INSERT.

Claims read ``(status, due_at)`` / ``(status, next_attempt_at)`` through their
indexes, so a tick costs in proportion to what is due, not to the number of
cases (DESIGN.md invariant 8). On PostgreSQL they lock the rows they return
with ``FOR UPDATE SKIP LOCKED``, so concurrent daemons never get the same row;
on SQLite (one writer at a time, ``BEGIN IMMEDIATE``) the clause is a no-op.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from dk2020flow.engine.records import TimerArm, TimerKind, TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.driver import DriverStatement
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
        "status": arm.status.value,
        "fired_at": arm.fired_at,
        "note": arm.note,
        "claimed_by": None,
    }


def case_rows() -> Select[Any]:
    """Cases joined with their municipality's name and region."""
    return select(
        t.cases, t.municipalities.c.name.label("municipality_name"), t.municipalities.c.region
    ).join(t.municipalities, t.municipalities.c.code == t.cases.c.municipality_code)


def latest_deadline_arms(workflow: str | None = None) -> Select[Any]:
    """The deadline each case currently waits on, per (case, timer, epoch).

    One row per deadline timer and state entry: its most recently armed deadline row
    (a deadline moved with ``case extend`` is armed anew, so the moved deadline wins),
    whatever its status — pending, or fired with its escalation — unless it was
    discarded. Columns: ``case_id``, ``timer``, ``epoch``, ``deadline_at``, ``status``.
    Whether the case is late on it is :func:`dk2020flow.engine.timers.is_late`.
    """
    tm, c = t.timers.c, t.cases.c
    latest = select(func.max(tm.id)).where(tm.kind == TimerKind.DEADLINE.value)
    if workflow is not None:
        latest = latest.join(t.cases, c.id == tm.case_id).where(c.workflow == workflow)
    latest = latest.group_by(tm.case_id, tm.timer, tm.epoch)
    return select(tm.case_id, tm.timer, tm.epoch, tm.deadline_at, tm.status).where(
        tm.id.in_(latest), tm.status != TimerStatus.DISCARDED.value
    )


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
        # The cases whose current deadline passed (latest_deadline_arms); the service
        # keeps those whose timer is a deadline to meet (engine.timers.is_late).
        arms = latest_deadline_arms(flt.workflow).subquery()
        query = query.where(
            c.closed.is_(False),
            exists().where(
                and_(
                    arms.c.case_id == c.id,
                    arms.c.epoch == c.epoch,
                    arms.c.deadline_at < flt.overdue_at,
                )
            ),
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

_o = t.outbox.c
_c = t.cases.c
_tm = t.timers.c
_pt = t.programme_timers.c

_SENDING = OutboxStatus.SENDING.value
_is_sending = _o.status == _SENDING

# ---------------------------------------------------------------------- claims

DUE_TIMERS = (
    select(t.timers)
    .join(t.cases, _c.id == _tm.case_id)
    .where(_tm.status == PENDING, _tm.due_at <= bindparam("now", type_=_tm.due_at.type))
    .order_by(_tm.due_at, _tm.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True, of=[t.timers, t.cases])
)
"""Pending case timers due at ``now`` (at most ``limit``), earliest first, locked for the
caller, whole rows in the one statement.

The case row is locked with its timers: two daemons never work on one case at
once (on PostgreSQL the second skips it), so neither loses a version check or
deadlocks on the other's case."""

DUE_PROGRAMME_TIMERS = (
    select(t.programme_timers)
    .where(_pt.status == PENDING, _pt.due_at <= bindparam("now", type_=_pt.due_at.type))
    .order_by(_pt.due_at, _pt.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
"""Pending programme timers due at ``now`` (at most ``limit``), earliest first, locked."""

CLAIMABLE_OUTBOX = (
    select(_o.id)
    .where(
        or_(
            and_(_is_sending, _o.lease_until <= bindparam("now", type_=_o.lease_until.type)),
            and_(
                _o.status == OutboxStatus.PENDING.value,
                _o.next_attempt_at <= bindparam("now", type_=_o.next_attempt_at.type),
                _o.not_before <= bindparam("now", type_=_o.not_before.type),
            ),
        )
    )
    .order_by(
        # Expired leases first (their daemon died), by lease_until and id; then the
        # pending messages, urgent ones first, by next_attempt_at and id. The two
        # CASE keys are NULL for every pending row, so they leave its order alone.
        case((_is_sending, 0), else_=1),
        case((_is_sending, _o.lease_until)),
        case((_is_sending, _o.id)),
        _o.urgent.desc(),
        _o.next_attempt_at,
        _o.id,
    )
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
"""The ids of up to ``limit`` messages to send at ``now``: ``sending`` ones whose lease has
expired (a crashed daemon's), then ``pending`` ones that are due; one statement,
through the ``(status, next_attempt_at)`` index for both kinds."""

LEASE_OUTBOX = (
    update(t.outbox)
    .where(_o.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=OutboxStatus.SENDING.value,
        lease_until=bindparam("lease_until", type_=_o.lease_until.type),
        attempts=_o.attempts + 1,
    )
    .returning(*t.outbox.columns)
)
"""Claim the messages ``ids`` until ``lease_until`` (one attempt more each); returns
their rows as they are now (in no particular order)."""

NEXT_DUE = select(
    select(func.min(_tm.due_at)).where(_tm.status == PENDING).scalar_subquery(),
    select(func.min(_pt.due_at)).where(_pt.status == PENDING).scalar_subquery(),
    select(func.min(_o.next_attempt_at))
    .where(_o.status == OutboxStatus.PENDING.value)
    .scalar_subquery(),
    select(func.min(_o.lease_until)).where(_is_sending).scalar_subquery(),
)
"""In one row: the earliest pending case timer, programme timer, pending message and
lease of a message being sent (each None when there is none); every one a
``min`` through a ``(status, …)`` index. The daemon sleeps until the earliest."""

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

MARK_SENT_NOTED = (
    update(t.outbox)
    .where(_o.id == bindparam("b_id"))
    .values(
        status=OutboxStatus.SENT.value,
        sent_at=bindparam("at", type_=_o.sent_at.type),
        lease_until=None,
        last_error=bindparam("b_note", type_=_o.last_error.type),
    )
)
"""Mark the message ``b_id`` sent ``at``, with ``b_note`` (refused recipients) as its
``last_error`` (executemany)."""

OUTBOX_IDS_IN = select(_o.id).where(_o.id.in_(bindparam("ids", expanding=True)))

# ---------------------------------------------------- one change to one case

CASE_BY_ID = case_rows().where(_c.id == bindparam("id"))
"""A case by id (as ``case_rows``)."""

CASE_BY_ID_IN = case_rows().where(_c.id == bindparam("id"), _c.workflow == bindparam("workflow"))
"""A case by id within a workflow (as ``case_rows``)."""

CASE_OF_MUNICIPALITY = select(_c.id).where(
    _c.workflow == bindparam("workflow"), _c.municipality_code == bindparam("code")
)
"""The id of a municipality's case in a workflow (none or one: they are unique together)."""

CASE_EXISTS = select(_c.id).where(_c.id == bindparam("id"))

CASE_EPOCH_FOR_UPDATE = select(_c.epoch).where(_c.id == bindparam("id")).with_for_update()
"""A case's epoch, its row locked: events appended to it are numbered one after another."""

MUNICIPALITY_BY_CODE = select(t.municipalities).where(t.municipalities.c.code == bindparam("code"))

CONTACTS_OF_ONE = (
    select(t.contacts)
    .where(t.contacts.c.municipality_code == bindparam("code"))
    .order_by(t.contacts.c.role, t.contacts.c.id)
)
"""One municipality's contacts, by role."""

CASE_COLUMNS = (
    "definition_id",
    "state",
    "epoch",
    "cohort",
    "data",
    "checklists",
    "entered_at",
    "closed",
)
"""What a change writes of a case row (``repository._case_values``), besides its version."""

UPDATE_CASE_IF_VERSION = update(t.cases).where(
    _c.id == bindparam("b_id"), _c.version == bindparam("b_expected")
)
"""Write a case's new values (the SET columns are the other parameters' keys) if its
version is still ``b_expected``."""

UPDATE_CASE = DriverStatement(
    UPDATE_CASE_IF_VERSION, ("b_id", "b_expected", "version", *CASE_COLUMNS)
)
"""``UPDATE_CASE_IF_VERSION`` for rows of ``b_id``, ``b_expected``, ``version`` and
``CASE_COLUMNS``; returns how many cases it wrote (1 each unless the version moved on)."""

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

FINISH_TIMER = (
    update(t.timers)
    .where(_tm.id == bindparam("b_id"), _tm.status == PENDING)
    .values(
        status=bindparam("b_status", type_=_tm.status.type),
        fired_at=bindparam("b_at", type_=_tm.fired_at.type),
        note=bindparam("b_note", type_=_tm.note.type),
    )
)
"""Close one pending timer; no row when it was closed already."""

EVENT_COLUMNS = (
    "case_id",
    "seq",
    "at",
    "kind",
    "actor",
    "role",
    "trigger",
    "from_state",
    "to_state",
    "comment",
    "data",
    "epoch",
    "transition",
    "hash",
)
TIMER_COLUMNS = (
    "case_id",
    "timer",
    "kind",
    "idx",
    "due_at",
    "deadline_at",
    "epoch",
    "status",
    "fired_at",
    "note",
    "claimed_by",
)

INSERT_EVENT_ROWS = DriverStatement(insert(t.events), EVENT_COLUMNS)
"""Events with their ``seq`` numbered already (a dispatch batch numbers its own)."""

_prior = t.events.alias("prior")
APPEND_EVENT_ROWS = DriverStatement(
    insert(t.events).values(
        seq=select(func.coalesce(func.max(_prior.c.seq), 0) + 1)
        .where(_prior.c.case_id == bindparam("b_case", type_=Integer))
        .scalar_subquery()
    ),
    (*(key for key in EVENT_COLUMNS if key != "seq"), "b_case"),
)
"""Events numbered by the database: each row's ``seq`` is one above the case's last
(``b_case`` is its ``case_id`` again), read through the ``(case_id, seq)`` index as the
row is inserted. The rows go one statement each (``executemany``), so each sees the
one before it, on both backends; no separate ``max(seq)`` query."""

LAST_EVENT_HASH = (
    select(t.events.c.hash)
    .where(t.events.c.case_id == bindparam("b_case"))
    .order_by(t.events.c.seq.desc())
    .limit(1)
)
"""The hash of a case's last event (the chain goes on from it), read through the
``(case_id, seq)`` index; none for a case without events."""

INSERT_TIMER_ROWS = DriverStatement(insert(t.timers), TIMER_COLUMNS)
"""New timer rows (``timer_values``)."""
