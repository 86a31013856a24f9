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

from sqlalchemy import Engine, case, func, select

from dk2020flow.engine.records import TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.port import OutboxStatus

PENDING = TimerStatus.PENDING.value


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
    """A connection that begins a plain (deferred) transaction, like ``SqlStore.read``."""
    from dk2020flow.store.db import READ_ONLY_OPTION

    return engine.connect().execution_options(**{READ_ONLY_OPTION: True})


def _workflow_cases(workflow: str | None) -> Any:
    query = select(t.cases.c.id)
    if workflow is not None:
        query = query.where(t.cases.c.workflow == workflow)
    return query


def events(engine: Engine, *, workflow: str | None = None, after_id: int = 0) -> list[EventLine]:
    """Every event (of ``workflow``'s cases) with an id above ``after_id``, in id order."""
    e, c, m = t.events.c, t.cases.c, t.municipalities.c
    query = (
        select(t.events, m.code.label("mcode"), m.name.label("mname"))
        .join(t.cases, c.id == e.case_id)
        .join(t.municipalities, m.code == c.municipality_code)
        .where(e.id > after_id)
        .order_by(e.id)
    )
    if workflow is not None:
        query = query.where(c.workflow == workflow)
    with _read(engine) as conn:
        return [
            EventLine(
                id=r.id,
                case_id=r.case_id,
                seq=r.seq,
                at=r.at,
                kind=r.kind,
                actor=r.actor,
                role=r.role,
                trigger=r.trigger,
                from_state=r.from_state,
                to_state=r.to_state,
                comment=r.comment,
                data=dict(r.data or {}),
                epoch=r.epoch,
                municipality_code=r.mcode,
                municipality_name=r.mname,
            )
            for r in conn.execute(query)
        ]


def last_event_id(engine: Engine) -> int:
    with _read(engine) as conn:
        return int(conn.execute(select(func.coalesce(func.max(t.events.c.id), 0))).scalar_one())


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
    o, tm, pt = t.outbox.c, t.timers.c, t.programme_timers.c
    ready = case((o.not_before > o.next_attempt_at, o.not_before), else_=o.next_attempt_at)
    query = select(
        select(func.min(tm.due_at)).where(tm.status == PENDING).scalar_subquery(),
        select(func.min(pt.due_at)).where(pt.status == PENDING).scalar_subquery(),
        select(func.min(ready)).where(o.status == OutboxStatus.PENDING.value).scalar_subquery(),
    )
    with _read(engine) as conn:
        case_timer, programme, mail = conn.execute(query).one()
    timers_at = [_aware(v) for v in (case_timer, programme) if v is not None]
    return (min(timers_at) if timers_at else None), (_aware(mail) if mail is not None else None)


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
