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

from sqlalchemy import Integer, Select, and_, bindparam, case, func, or_, select, text
from sqlalchemy.engine import Connection

from dk2020flow.engine.records import TimerKind, TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.port import (
    DeadlineArm,
    EventLine,
    LateCandidate,
    OutboxLine,
    OutboxStatus,
    StateCount,
    TimerLine,
    TimerStats,
)
from dk2020flow.store.sql.base import SqlBase
from dk2020flow.store.sql.outbox import outbox_counts as kept_outbox_counts

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
EVENTS_OF_CASES = EVENTS.where(_e.case_id.in_(bindparam("ids", expanding=True)))
SCREENINGS = EVENTS_OF_WORKFLOW.where(
    # A literal, not a parameter: the partial index ``ix_events_checklist`` (migration
    # 0008) is only used when the query's condition is its own.
    text("events.kind = 'checklist'")
).add_columns(_c.state.label("case_state"))
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
    return [_event_line(row) for row in rows]


def events_of(conn: Connection, case_ids: Sequence[int]) -> list[EventLine]:
    if not case_ids:
        return []
    rows = conn.execute(EVENTS_OF_CASES, {"after_id": 0, "ids": list(case_ids)})
    return [_event_line(row) for row in rows]


def case_regions(
    conn: Connection, workflow: str, *, after_id: int, limit: int
) -> list[tuple[int, str]]:
    c, m = t.cases.c, t.organisations.c
    query = (
        select(c.id, m.region)
        .join(t.organisations, m.code == c.organisation_code)
        .where(c.workflow == workflow, c.id > after_id)
        .order_by(c.id)
        .limit(limit)
    )
    return [(int(id_), str(region)) for id_, region in conn.execute(query)]


def _event_line(row: Any) -> EventLine:
    (id_, case_id, seq, at, kind, actor, role, trigger, from_state, to_state) = row[:10]
    comment, data, epoch, code, name = row[10:15]
    return EventLine(
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


def last_event_id(conn: Connection) -> int:
    return int(conn.execute(LAST_EVENT_ID).scalar_one())


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


def outbox_counts(
    conn: Connection, workflow: str | None = None, *, created_by: dt.datetime | None = None
) -> dict[str, int]:
    o = t.outbox.c
    query = select(o.status, func.count()).group_by(o.status)
    if workflow is not None:
        query = query.where(o.case_id.in_(_workflow_cases(workflow)))
    if created_by is not None:
        query = query.where(o.created_at <= created_by)
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


# ------------------------------------------------------------ the programme as it stands
# What ``dk2020flow report`` without ``--at`` reads instead of replaying every case's log
# (report/model.py): each query reads a kept count, an index range or the few rows it
# names, so its cost does not grow with the number of cases (docs/performance.md, scale).

_cc = t.case_counts.c
_IDS_PER_QUERY = 5000


def changed_after(conn: Connection, workflow: str, at: dt.datetime) -> bool:
    """Whether the store holds a change later than ``at``: the newest event or message, or
    a case of ``workflow`` that entered its state after it (each one index entry). With a
    clock that only goes forward, the newest rows are the latest; a test or a simulation
    that writes the past after the future is caught by the cases' entry times."""
    o = t.outbox.c
    newest = (
        select(_e.at).order_by(_e.id.desc()).limit(1).scalar_subquery(),
        select(o.created_at).order_by(o.id.desc()).limit(1).scalar_subquery(),
        select(func.max(_c.entered_at)).where(_c.workflow == workflow).scalar_subquery(),
    )
    return any(v is not None and _aware(v) > at for v in conn.execute(select(*newest)).one())


def case_totals(conn: Connection) -> dict[str, int]:
    """Cases per workflow, from the kept ``case_counts`` (workflows without a case left out)."""
    n = func.sum(_cc.n)
    query = select(_cc.workflow, n).group_by(_cc.workflow).having(n != 0)
    return {str(workflow): int(total) for workflow, total in conn.execute(query)}


def state_counts(conn: Connection, workflow: str) -> list[StateCount]:
    """The workflow's cases per (state, cohort, region), from the kept ``case_counts``."""
    n = func.sum(_cc.n)
    query = (
        select(_cc.state, _cc.cohort, _cc.region, n.label("n"))
        .where(_cc.workflow == workflow)
        .group_by(_cc.state, _cc.cohort, _cc.region)
        .having(n != 0)
    )
    return [
        StateCount(
            workflow=workflow,
            state=r.state,
            cohort=r.cohort or None,
            region=r.region,
            count=int(r.n),
        )
        for r in conn.execute(query)
    ]


def screenings(conn: Connection, workflow: str) -> tuple[list[EventLine], dict[int, str]]:
    """The workflow's checklist events in id order (through ``ix_events_checklist``),
    and the current state of each case they belong to."""
    lines: list[EventLine] = []
    states: dict[int, str] = {}
    for row in conn.execute(SCREENINGS, {"after_id": 0, "workflow": workflow}):
        line = _event_line(row)
        lines.append(line)
        states[line.case_id] = row.case_state
    return lines, states


def late_candidates(conn: Connection, workflow: str | None, at: dt.datetime) -> list[LateCandidate]:
    """The open cases (of ``workflow``, or all) whose earliest deadline they can be late on
    (``cases.deadline_at``, kept by the store) passed before ``at``: a range of
    ``ix_cases_workflow_deadline_at`` (``ix_cases_deadline_at`` for all workflows).
    A case late on any of its deadlines is among them (that one passed, so the earliest
    did); whether it is late on which is the caller's ``is_late`` on their arms."""
    c, m = t.cases.c, t.organisations.c
    query = (
        select(c.id, c.state, c.epoch, m.name, m.region)
        .join(t.organisations, m.code == c.organisation_code)
        .where(c.deadline_at < at, c.closed.is_(False))
    )
    if workflow is not None:
        query = query.where(c.workflow == workflow)
    return [
        LateCandidate(
            case_id=r.id, state=r.state, epoch=r.epoch, organisation_name=r.name, region=r.region
        )
        for r in conn.execute(query)
    ]


def deadline_arms_of(conn: Connection, case_ids: Sequence[int]) -> list[DeadlineArm]:
    """The deadline each of these cases waits on per state entry
    (``sql.timers.latest_deadline_arms`` of these cases only)."""
    tm = t.timers.c
    latest = (
        select(func.max(tm.id))
        .where(
            tm.kind == TimerKind.DEADLINE.value,
            tm.case_id.in_(bindparam("ids", expanding=True)),
        )
        .group_by(tm.case_id, tm.timer, tm.epoch)
    )
    query = select(tm.case_id, tm.timer, tm.epoch, tm.deadline_at, tm.status).where(
        tm.id.in_(latest), tm.status != TimerStatus.DISCARDED.value
    )
    ids = sorted(set(case_ids))
    return [
        DeadlineArm(
            case_id=r.case_id,
            timer=r.timer,
            epoch=r.epoch,
            deadline_at=r.deadline_at,
            status=TimerStatus(r.status),
        )
        for start in range(0, len(ids), _IDS_PER_QUERY)
        for r in conn.execute(query, {"ids": ids[start : start + _IDS_PER_QUERY]})
    ]


def _state_changing(conn: Connection, workflow: str) -> Any:
    """Events of ``workflow``'s cases that move a case to another state (its history);
    every event's when it is the only workflow with cases (no join with the cases)."""
    e = _e
    of_workflow = (
        e.case_id.in_(_workflow_cases(workflow))
        if set(case_totals(conn)) != {workflow}
        else e.case_id.is_not(None)
    )
    return and_(
        of_workflow,
        e.to_state.is_not(None),
        e.to_state != "",
        or_(e.from_state.is_(None), e.from_state != e.to_state),
    )


def first_move(conn: Connection, workflow: str) -> dt.datetime | None:
    """The earliest move of the workflow's cases between states (a case opened); None."""
    first = conn.execute(select(func.min(_e.at)).where(_state_changing(conn, workflow))).scalar()
    return _aware(first) if first is not None else None


def moves(
    conn: Connection, workflow: str, instants: Sequence[dt.datetime]
) -> dict[tuple[int, str | None, str], int]:
    """How the workflow's cases moved between states, counted per period: ``(i, from,
    to)`` → the moves from ``from`` (None: opened) to ``to`` at or before ``instants[i]``
    and after ``instants[i - 1]`` (``i == len(instants)``: after the last)."""
    e = _e
    if not instants:
        return {}
    period = case(
        *(
            (e.at <= bindparam(f"instant_{i}", instant, type_=e.at.type), i)
            for i, instant in enumerate(instants)
        ),
        else_=len(instants),
    ).label("period")
    query = (
        select(period, e.from_state, e.to_state, func.count().label("n"))
        .where(_state_changing(conn, workflow))
        .group_by(period, e.from_state, e.to_state)
    )
    return {(int(r.period), r.from_state, str(r.to_state)): int(r.n) for r in conn.execute(query)}


def workflow_mail_counts(
    conn: Connection, workflow: str, *, created_by: dt.datetime | None = None
) -> dict[str, int]:
    """Messages per status of ``workflow``'s cases (queued by ``created_by`` when given).
    Of all time, when it is the only workflow with cases: the kept ``outbox_counts`` less
    the messages of no case (an index range), not a count over every message."""
    o = t.outbox.c
    if created_by is not None or set(case_totals(conn)) != {workflow}:
        return outbox_counts(conn, workflow, created_by=created_by)
    counts = {str(status): n for status, n in kept_outbox_counts(conn).items()}
    without_case = select(o.status, func.count()).where(o.case_id.is_(None)).group_by(o.status)
    for status, n in conn.execute(without_case):
        counts[str(status)] -= int(n)
    return {status: n for status, n in counts.items() if n}


class SqlReportsTx(SqlBase):
    """``port.ReportsTx`` over the transaction's connection."""

    def report_events(self, workflow: str | None = None, after_id: int = 0) -> list[EventLine]:
        """Every event (of ``workflow``'s cases) with an id above ``after_id``, in id order."""
        return events(self._conn, workflow, after_id)

    def last_event_id(self) -> int:
        return last_event_id(self._conn)

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

    def report_changed_after(self, workflow: str, at: dt.datetime) -> bool:
        return changed_after(self._conn, workflow, at)

    def report_case_totals(self) -> dict[str, int]:
        return case_totals(self._conn)

    def report_state_counts(self, workflow: str) -> list[StateCount]:
        return state_counts(self._conn, workflow)

    def report_screenings(self, workflow: str) -> tuple[list[EventLine], dict[int, str]]:
        return screenings(self._conn, workflow)

    def report_late_candidates(self, workflow: str | None, at: dt.datetime) -> list[LateCandidate]:
        return late_candidates(self._conn, workflow, at)

    def report_deadline_arms_of(self, case_ids: Sequence[int]) -> list[DeadlineArm]:
        return deadline_arms_of(self._conn, case_ids)

    def report_first_move(self, workflow: str) -> dt.datetime | None:
        return first_move(self._conn, workflow)

    def report_moves(
        self, workflow: str, instants: Sequence[dt.datetime]
    ) -> dict[tuple[int, str | None, str], int]:
        return moves(self._conn, workflow, instants)

    def report_mail_counts(
        self, workflow: str, *, created_by: dt.datetime | None = None
    ) -> dict[str, int]:
        return workflow_mail_counts(self._conn, workflow, created_by=created_by)

    def report_case_regions(
        self, workflow: str, *, after_id: int, limit: int
    ) -> list[tuple[int, str]]:
        return case_regions(self._conn, workflow, after_id=after_id, limit=limit)

    def report_events_of(self, case_ids: Sequence[int]) -> list[EventLine]:
        return events_of(self._conn, case_ids)

    def pending_deadlines(self, workflow: str | None = None) -> list[TimerLine]:
        return pending_deadlines(self._conn, workflow)

    def timer_stats(
        self, now: dt.datetime, *, overdue_before: dt.datetime | None = None
    ) -> TimerStats:
        return timer_stats(self._conn, now, overdue_before=overdue_before)
