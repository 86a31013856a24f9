"""``OverviewTx``: the console's programme overview, counted and limited in SQL.

Every query here groups or limits in the database, so the overview costs the same
on 98 cases as on 100 000: counts per (workflow, state, round, region), the cases
whose deadline may be late grouped by (definition, state, timer) — whether they are
is ``engine.timers.is_late``, which the service applies per group — the first of them
by deadline, and the pending deadlines of a window. The deadlines are the cases'
``deadline_at`` and ``deadline_timer`` columns (``ix_cases_workflow_deadline_at``),
which the store keeps from the timers (``ix_cases_deadline_at``); the window of
pending deadlines reads the window's timer rows alone (``ix_timers_status_due_at``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select
from sqlalchemy.orm import aliased

from dk2020flow.engine.records import TimerKind, TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.port import DeadlineLine, LateGroup, StateCount
from dk2020flow.store.sql.base import SqlBase

_c = t.cases.c
_m = t.municipalities.c
_tm = t.timers.c
_DEADLINE = TimerKind.DEADLINE.value


def _arm_status() -> ColumnElement[Any]:
    """The status of the timer row the case's deadline columns come from (its latest
    armed ``deadline`` row of that timer at the case's epoch), read through
    ``ix_timers_case_id_epoch_kind``: pending, or fired (or skipped, failed) already."""
    return (
        select(_tm.status)
        .where(
            _tm.case_id == _c.id,
            _tm.epoch == _c.epoch,
            _tm.kind == _DEADLINE,
            _tm.timer == _c.deadline_timer,
        )
        .order_by(_tm.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _current_deadline_rows() -> Select[Any]:
    """Open cases with their earliest current deadline they can be late on — the
    ``cases.deadline_at`` and ``deadline_timer`` the store keeps from the rows
    ``sql.timers.latest_deadline_arms`` gives (``sql.timers.refresh_deadline_columns``).

    One row per case: in a state with two deadline timers it is the earlier deadline.
    A case late on either is late on that one, so the late groups count each late case
    once, and the list of coming deadlines shows a case's earliest deadline only."""
    return (
        select(
            _c.id.label("case_id"),
            _c.deadline_timer.label("timer"),
            _c.deadline_at,
            _arm_status().label("status"),
            _c.definition_id,
            _c.workflow,
            _c.state,
            _c.cohort,
            _m.name.label("municipality"),
            _m.region,
        )
        .join(t.municipalities, _m.code == _c.municipality_code)
        .where(_c.closed == false(), _c.deadline_at.is_not(None))
    )


def _pending_deadline_rows(start: dt.datetime, end: dt.datetime) -> Select[Any]:
    """The pending current deadline rows of open cases due in [start, end]: every
    deadline timer's, a plain timer's too (the list of what is coming), so not from the
    cases' columns. A deadline row is due at its deadline (``engine.timers.schedule``),
    so ``ix_timers_status_due_at`` finds the window's rows, and only those are checked
    for being the latest armed (``sql.timers.latest_deadline_arms``)."""
    newer = aliased(t.timers)
    return (
        select(
            _tm.case_id,
            _tm.timer,
            _tm.deadline_at,
            _tm.status,
            _c.definition_id,
            _c.workflow,
            _c.state,
            _c.cohort,
            _m.name.label("municipality"),
            _m.region,
        )
        .join(t.cases, and_(_c.id == _tm.case_id, _c.epoch == _tm.epoch))
        .join(t.municipalities, _m.code == _c.municipality_code)
        .where(
            _tm.status == TimerStatus.PENDING.value,
            _tm.due_at >= start,
            _tm.due_at <= end,
            _tm.kind == _DEADLINE,
            _tm.deadline_at >= start,
            _tm.deadline_at <= end,
            _c.closed == false(),
            ~exists().where(
                newer.c.case_id == _tm.case_id,
                newer.c.timer == _tm.timer,
                newer.c.epoch == _tm.epoch,
                newer.c.kind == _DEADLINE,
                newer.c.id > _tm.id,
            ),
        )
    )


def _line(row: Any) -> DeadlineLine:
    return DeadlineLine(
        case_id=row.case_id,
        workflow=row.workflow,
        definition_id=row.definition_id,
        municipality=row.municipality,
        region=row.region,
        cohort=row.cohort,
        state=row.state,
        timer=row.timer,
        deadline_at=row.deadline_at,
        fired=row.status != TimerStatus.PENDING.value,
    )


class SqlOverviewTx(SqlBase):
    """``port.OverviewTx`` over the transaction's connection."""

    def state_counts(self) -> list[StateCount]:
        query = (
            select(_c.workflow, _c.state, _c.cohort, _m.region, func.count().label("n"))
            .join(t.municipalities, _m.code == _c.municipality_code)
            .group_by(_c.workflow, _c.state, _c.cohort, _m.region)
        )
        return [
            StateCount(
                workflow=r.workflow, state=r.state, cohort=r.cohort, region=r.region, count=r.n
            )
            for r in self._conn.execute(query)
        ]

    def passed_deadline_groups(self, at: dt.datetime) -> list[LateGroup]:
        query = (
            select(_c.definition_id, _c.state, _c.deadline_timer, func.count().label("n"))
            .where(_c.closed == false(), _c.deadline_at < at)
            .group_by(_c.definition_id, _c.state, _c.deadline_timer)
        )
        return [
            LateGroup(
                definition_id=r.definition_id, state=r.state, timer=r.deadline_timer, count=r.n
            )
            for r in self._conn.execute(query)
        ]

    def passed_deadlines(
        self, at: dt.datetime, groups: Sequence[LateGroup], limit: int
    ) -> list[DeadlineLine]:
        if not groups:
            return []
        chosen: list[ColumnElement[bool]] = [
            and_(
                _c.definition_id == g.definition_id,
                _c.state == g.state,
                _c.deadline_timer == g.timer,
            )
            for g in groups
        ]
        # The page's ids first (through ``ix_cases_deadline_at``), then their rows: the
        # status of each arm is read for the page alone, not for every tie of the sort.
        page = (
            select(_c.id)
            .where(_c.closed == false(), _c.deadline_at < at, or_(*chosen))
            .order_by(_c.deadline_at, _c.id)
            .limit(limit)
        )
        ids = [int(case_id) for case_id in self._conn.execute(page).scalars()]
        if not ids:
            return []
        rows = self._conn.execute(
            _current_deadline_rows().where(_c.id.in_(ids)).order_by(_c.deadline_at, _c.id)
        )
        return [_line(r) for r in rows]

    def pending_deadlines_between(
        self, start: dt.datetime, end: dt.datetime, limit: int
    ) -> tuple[int, list[DeadlineLine]]:
        window = _pending_deadline_rows(start, end)
        total = self._conn.execute(select(func.count()).select_from(window.subquery())).scalar()
        rows = self._conn.execute(window.order_by(_tm.deadline_at, _tm.case_id).limit(limit))
        return int(total or 0), [_line(r) for r in rows]
