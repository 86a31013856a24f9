"""Read-only queries for reports and simulations, over the SqlStore's engine.

The port (``store/port.py``) answers one case at a time; reports and the
simulator read the whole programme at once. These queries stay here, below
the port, with the rest of the project's SQL; each returns frozen records,
never rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Integer, bindparam, case, func, select

from dk2020flow.engine.records import TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.db import READ_ONLY_OPTION, SINGLE_READ_OPTION
from dk2020flow.store.port import DeadlineArm, OutboxStatus
from dk2020flow.store.queries import latest_deadline_arms

PENDING = TimerStatus.PENDING.value
_READ = {READ_ONLY_OPTION: True, SINGLE_READ_OPTION: True}
"""Every query here is one statement: on SQLite it needs no BEGIN (``db.SINGLE_READ_OPTION``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EventLine:
    """One event of a case's log, with the case's municipality."""

    id: int
    case_id: int
    seq: int
    at: dt.datetime
    kind: str
    actor: str
    role: str | None
    trigger: str | None
    from_state: str | None
    to_state: str | None
    comment: str
    data: dict[str, Any]
    epoch: int
    municipality_code: str
    municipality_name: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TimerLine:
    id: int
    case_id: int
    timer: str
    kind: str
    index: int
    due_at: dt.datetime
    deadline_at: dt.datetime
    epoch: int
    status: str
    note: str
    case_epoch: int
    case_state: str
    municipality_name: str


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxLine:
    id: int
    case_id: int | None
    template: str
    status: str
    has_recipient: bool
    reason: str
    last_error: str
    created_at: dt.datetime
    municipality_name: str


def _read(engine: Engine) -> Any:
    """A connection for one reading statement (never takes SQLite's write lock)."""
    return engine.connect().execution_options(**_READ)


def _workflow_cases(workflow: str | None) -> Any:
    query = select(t.cases.c.id)
    if workflow is not None:
        query = query.where(t.cases.c.workflow == workflow)
    return query


# The statements the simulator runs at every instant, built once with bound
# parameters: building a statement and computing its cache key costs many times
# what SQLite takes to answer it.

_e, _c, _m = t.events.c, t.cases.c, t.municipalities.c
_EVENTS = (
    select(
        _e.id,
        _e.case_id,
        _e.seq,
        _e.at,
        _e.kind,
        _e.actor,
        _e.role,
        _e.trigger,
        _e.from_state,
        _e.to_state,
        _e.comment,
        _e.data,
        _e.epoch,
        _m.code,
        _m.name,
    )
    .join(t.cases, _c.id == _e.case_id)
    .join(t.municipalities, _m.code == _c.municipality_code)
    .where(_e.id > bindparam("after_id", type_=Integer))
    .order_by(_e.id)
)
_EVENTS_OF_WORKFLOW = _EVENTS.where(_c.workflow == bindparam("workflow"))
_LAST_EVENT_ID = select(func.coalesce(func.max(_e.id), 0))


def events(engine: Engine, *, workflow: str | None = None, after_id: int = 0) -> list[EventLine]:
    """Every event (of ``workflow``'s cases) with an id above ``after_id``, in id order."""
    with _read(engine) as conn:
        if workflow is None:
            rows = conn.execute(_EVENTS, {"after_id": after_id})
        else:
            rows = conn.execute(_EVENTS_OF_WORKFLOW, {"after_id": after_id, "workflow": workflow})
        return [
            EventLine(
                id=id_,
                case_id=case_id,
                seq=seq,
                at=at,
                kind=kind,
                actor=actor,
                role=role,
                trigger=trigger,
                from_state=from_state,
                to_state=to_state,
                comment=comment,
                data=dict(data or {}),
                epoch=epoch,
                municipality_code=code,
                municipality_name=name,
            )
            for (
                id_,
                case_id,
                seq,
                at,
                kind,
                actor,
                role,
                trigger,
                from_state,
                to_state,
                comment,
                data,
                epoch,
                code,
                name,
            ) in rows
        ]


def last_event_id(engine: Engine) -> int:
    with _read(engine) as conn:
        return int(conn.execute(_LAST_EVENT_ID).scalar_one())


def deadline_arms(engine: Engine, *, workflow: str | None = None) -> list[DeadlineArm]:
    """The deadline each case waits on per state entry (``queries.latest_deadline_arms``):
    the same query ``Tx.deadline_arms`` runs for ``case list --overdue``."""
    with _read(engine) as conn:
        return [
            DeadlineArm(
                case_id=r.case_id,
                timer=r.timer,
                epoch=r.epoch,
                deadline_at=r.deadline_at,
                status=TimerStatus(r.status),
            )
            for r in conn.execute(latest_deadline_arms(workflow))
        ]


def timers(
    engine: Engine, *, workflow: str | None = None, statuses: Sequence[str] = ()
) -> list[TimerLine]:
    """Case timer rows (all, or of the given statuses) with their case's state and epoch."""
    tm, c, m = t.timers.c, t.cases.c, t.municipalities.c
    query = (
        select(
            t.timers,
            c.epoch.label("case_epoch"),
            c.state.label("case_state"),
            m.name.label("mname"),
        )
        .join(t.cases, c.id == tm.case_id)
        .join(t.municipalities, m.code == c.municipality_code)
        .order_by(tm.due_at, tm.id)
    )
    if workflow is not None:
        query = query.where(c.workflow == workflow)
    if statuses:
        query = query.where(tm.status.in_(list(statuses)))
    with _read(engine) as conn:
        return [
            TimerLine(
                id=r.id,
                case_id=r.case_id,
                timer=r.timer,
                kind=r.kind,
                index=r.idx,
                due_at=r.due_at,
                deadline_at=r.deadline_at,
                epoch=r.epoch,
                status=r.status,
                note=r.note,
                case_epoch=r.case_epoch,
                case_state=r.case_state,
                municipality_name=r.mname,
            )
            for r in conn.execute(query)
        ]


def outbox_lines(engine: Engine, *, workflow: str | None = None) -> list[OutboxLine]:
    """Every outbox row (without bodies), with its case's municipality when it has a case."""
    o, c, m = t.outbox.c, t.cases.c, t.municipalities.c
    query = (
        select(
            o.id,
            o.case_id,
            o.template,
            o.status,
            o.to_addresses,
            o.reason,
            o.last_error,
            o.created_at,
            m.name.label("mname"),
        )
        .select_from(t.outbox)
        .outerjoin(t.cases, c.id == o.case_id)
        .outerjoin(t.municipalities, m.code == c.municipality_code)
        .order_by(o.id)
    )
    if workflow is not None:
        query = query.where(c.workflow == workflow)
    with _read(engine) as conn:
        return [
            OutboxLine(
                id=r.id,
                case_id=r.case_id,
                template=r.template,
                status=r.status,
                has_recipient=bool(r.to_addresses),
                reason=r.reason,
                last_error=r.last_error,
                created_at=r.created_at,
                municipality_name=r.mname or "",
            )
            for r in conn.execute(query)
        ]


def outbox_counts(engine: Engine, *, workflow: str | None = None) -> dict[str, int]:
    """Messages per outbox status."""
    o = t.outbox.c
    query = select(o.status, func.count()).group_by(o.status)
    if workflow is not None:
        query = query.where(o.case_id.in_(_workflow_cases(workflow)))
    with _read(engine) as conn:
        return {str(status): int(n) for status, n in conn.execute(query)}


def next_work(engine: Engine) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(earliest pending case or programme timer, earliest moment a pending message may go out).

    A message may go out at the later of its ``not_before`` (office hours) and
    its ``next_attempt_at`` (back-off); ``Service.next_due_at`` reads only the
    latter, which is already past for mail held until the office opens.
    """
    with _read(engine) as conn:
        case_timer, programme, mail = conn.execute(_NEXT_WORK).one()
    timers_at = [_aware(v) for v in (case_timer, programme) if v is not None]
    return (min(timers_at) if timers_at else None), (_aware(mail) if mail is not None else None)


_o, _tm, _pt = t.outbox.c, t.timers.c, t.programme_timers.c
_NEXT_WORK = select(
    select(func.min(_tm.due_at)).where(_tm.status == PENDING).scalar_subquery(),
    select(func.min(_pt.due_at)).where(_pt.status == PENDING).scalar_subquery(),
    select(
        func.min(
            case((_o.not_before > _o.next_attempt_at, _o.not_before), else_=_o.next_attempt_at)
        )
    )
    .where(_o.status == OutboxStatus.PENDING.value)
    .scalar_subquery(),
)
"""One row: the earliest pending case timer, programme timer and ready time of a pending
message (each a ``min`` through its table's ``(status, …)`` index; None when none)."""


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def pending_deadlines(engine: Engine, *, workflow: str | None = None) -> list[TimerLine]:
    """Pending deadline firings at their case's current epoch (the case's live deadlines)."""
    return [
        line
        for line in timers(engine, workflow=workflow, statuses=(PENDING,))
        if line.kind == "deadline" and line.epoch == line.case_epoch
    ]


__all__ = [
    "EventLine",
    "OutboxLine",
    "TimerLine",
    "events",
    "last_event_id",
    "next_work",
    "outbox_counts",
    "outbox_lines",
    "pending_deadlines",
    "timers",
]
