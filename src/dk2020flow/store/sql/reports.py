"""``ReportsTx``: the whole programme at once, for reports, the simulator and the probe.

The other concerns answer one case at a time; reports and the simulator read the
whole programme. Each method is read-only and returns frozen records, never rows.
The statements the simulator runs at every instant are built once with bound
parameters: building a statement and computing its cache key costs many times
what SQLite takes to answer it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, Select, bindparam, case, func, select
from sqlalchemy.engine import Connection

from dk2020flow.engine.records import TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.port import (
    DeadlineArm,
    EventLine,
    OutboxLine,
    OutboxStatus,
    TimerLine,
    TimerStats,
)
from dk2020flow.store.sql.base import SqlBase
from dk2020flow.store.sql.timers import latest_deadline_arms

PENDING = TimerStatus.PENDING.value

_e, _c, _m = t.events.c, t.cases.c, t.organisations.c
EVENTS = (
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
    .join(t.organisations, _m.code == _c.organisation_code)
    .where(_e.id > bindparam("after_id", type_=Integer))
    .order_by(_e.id)
)
EVENTS_OF_WORKFLOW = EVENTS.where(_c.workflow == bindparam("workflow"))
LAST_EVENT_ID = select(func.coalesce(func.max(_e.id), 0))

_o, _tm, _pt = t.outbox.c, t.timers.c, t.programme_timers.c
NEXT_WORK = select(
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


def _workflow_cases(workflow: str) -> Select[Any]:
    return select(t.cases.c.id).where(t.cases.c.workflow == workflow)


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def events(conn: Connection, workflow: str | None = None, after_id: int = 0) -> list[EventLine]:
    if workflow is None:
        rows = conn.execute(EVENTS, {"after_id": after_id})
    else:
        rows = conn.execute(EVENTS_OF_WORKFLOW, {"after_id": after_id, "workflow": workflow})
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
            organisation_code=code,
            organisation_name=name,
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


def last_event_id(conn: Connection) -> int:
    return int(conn.execute(LAST_EVENT_ID).scalar_one())


def deadline_arms(conn: Connection, workflow: str | None = None) -> list[DeadlineArm]:
    """The deadline each case waits on per state entry (``sql.timers.latest_deadline_arms``)."""
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
    conn: Connection, workflow: str | None = None, statuses: Sequence[str] = ()
) -> list[TimerLine]:
    tm, c, m = t.timers.c, t.cases.c, t.organisations.c
    query = (
        select(
            t.timers,
            c.epoch.label("case_epoch"),
            c.state.label("case_state"),
            m.name.label("mname"),
            m.country,
            m.subdivision,
        )
        .join(t.cases, c.id == tm.case_id)
        .join(t.organisations, m.code == c.organisation_code)
        .order_by(tm.due_at, tm.id)
    )
    if workflow is not None:
        query = query.where(c.workflow == workflow)
    if statuses:
        query = query.where(tm.status.in_(list(statuses)))
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
            organisation_name=r.mname,
            country=r.country,
            subdivision=r.subdivision,
        )
        for r in conn.execute(query)
    ]


def outbox_lines(conn: Connection, workflow: str | None = None) -> list[OutboxLine]:
    o, c, m = t.outbox.c, t.cases.c, t.organisations.c
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
        .outerjoin(t.organisations, m.code == c.organisation_code)
        .order_by(o.id)
    )
    if workflow is not None:
        query = query.where(c.workflow == workflow)
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
            organisation_name=r.mname or "",
        )
        for r in conn.execute(query)
    ]


def outbox_counts(conn: Connection, workflow: str | None = None) -> dict[str, int]:
    o = t.outbox.c
    query = select(o.status, func.count()).group_by(o.status)
    if workflow is not None:
        query = query.where(o.case_id.in_(_workflow_cases(workflow)))
    return {str(status): int(n) for status, n in conn.execute(query)}


def next_work(conn: Connection) -> tuple[dt.datetime | None, dt.datetime | None]:
    case_timer, programme, mail = conn.execute(NEXT_WORK).one()
    timers_at = [_aware(v) for v in (case_timer, programme) if v is not None]
    return (min(timers_at) if timers_at else None), (_aware(mail) if mail is not None else None)


def pending_deadlines(conn: Connection, workflow: str | None = None) -> list[TimerLine]:
    return [
        line
        for line in timers(conn, workflow=workflow, statuses=(PENDING,))
        if line.kind == "deadline" and line.epoch == line.case_epoch
    ]


def timer_stats(
    conn: Connection, now: dt.datetime, *, overdue_before: dt.datetime | None = None
) -> TimerStats:
    """Read through the ``(status, due_at)`` indexes; none scans the cases."""
    overdue_before = overdue_before or now
    due_now = overdue = 0
    oldest: list[dt.datetime] = []
    upcoming: list[dt.datetime] = []
    for table in (t.timers, t.programme_timers):
        c = table.c
        pending = c.status == PENDING
        count, first = conn.execute(
            select(func.count(), func.min(c.due_at)).where(pending, c.due_at <= now)
        ).one()
        due_now += int(count)
        if first is not None:
            oldest.append(first)
        overdue += int(
            conn.execute(
                select(func.count()).where(pending, c.due_at < overdue_before)
            ).scalar_one()
        )
        later = conn.execute(select(func.min(c.due_at)).where(pending, c.due_at > now)).scalar()
        if later is not None:
            upcoming.append(later)
    return TimerStats(
        due_now=due_now,
        overdue=overdue,
        oldest_unfired=min(oldest) if oldest else None,
        next_due=min(upcoming) if upcoming else None,
    )


class SqlReportsTx(SqlBase):
    """``port.ReportsTx`` over the transaction's connection."""

    def report_events(self, workflow: str | None = None, after_id: int = 0) -> list[EventLine]:
        """Every event (of ``workflow``'s cases) with an id above ``after_id``, in id order."""
        return events(self._conn, workflow, after_id)

    def last_event_id(self) -> int:
        return last_event_id(self._conn)

    def report_deadline_arms(self, workflow: str | None = None) -> list[DeadlineArm]:
        return deadline_arms(self._conn, workflow)

    def report_timers(
        self, workflow: str | None = None, statuses: Sequence[str] = ()
    ) -> list[TimerLine]:
        return timers(self._conn, workflow, statuses)

    def report_outbox_lines(self, workflow: str | None = None) -> list[OutboxLine]:
        return outbox_lines(self._conn, workflow)

    def report_outbox_counts(self, workflow: str | None = None) -> dict[str, int]:
        return outbox_counts(self._conn, workflow)

    def next_work(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        return next_work(self._conn)

    def pending_deadlines(self, workflow: str | None = None) -> list[TimerLine]:
        return pending_deadlines(self._conn, workflow)

    def timer_stats(
        self, now: dt.datetime, *, overdue_before: dt.datetime | None = None
    ) -> TimerStats:
        return timer_stats(self._conn, now, overdue_before=overdue_before)
