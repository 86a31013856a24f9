"""``OverviewTx``: the console's programme overview, counted and limited in SQL.

Every query here groups or limits in the database, so the overview costs the same
on 98 cases as on 100 000: counts per (workflow, state, round, region), the deadline
arms that may be late grouped by (definition, state, timer) — whether they are is
``engine.timers.is_late``, which the service applies per group — the first of them
by deadline, and the pending deadlines of a window.
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


def _current_deadline_rows() -> Select[Any]:
    """Deadline rows of open cases at the case's current state entry that are the
    latest armed for their (case, timer, epoch) and not discarded — the rows
    ``sql.timers.latest_deadline_arms`` gives, restricted to where a case waits now."""
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
            _tm.kind == _DEADLINE,
            _c.closed == false(),
            _tm.status != TimerStatus.DISCARDED.value,
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
        rows = _current_deadline_rows().where(_tm.deadline_at < at).subquery()
        query = select(
            rows.c.definition_id, rows.c.state, rows.c.timer, func.count().label("n")
        ).group_by(rows.c.definition_id, rows.c.state, rows.c.timer)
        return [
            LateGroup(definition_id=r.definition_id, state=r.state, timer=r.timer, count=r.n)
            for r in self._conn.execute(query)
        ]

    def passed_deadlines(
        self, at: dt.datetime, groups: Sequence[LateGroup], limit: int
    ) -> list[DeadlineLine]:
        if not groups:
            return []
        chosen: list[ColumnElement[bool]] = [
            and_(_c.definition_id == g.definition_id, _c.state == g.state, _tm.timer == g.timer)
            for g in groups
        ]
        query = (
            _current_deadline_rows()
            .where(_tm.deadline_at < at, or_(*chosen))
            .order_by(_tm.deadline_at, _tm.case_id, _tm.timer)
            .limit(limit)
        )
        return [_line(r) for r in self._conn.execute(query)]

    def pending_deadlines_between(
        self, start: dt.datetime, end: dt.datetime, limit: int
    ) -> tuple[int, list[DeadlineLine]]:
        window = _current_deadline_rows().where(
            _tm.status == TimerStatus.PENDING.value,
            _tm.deadline_at >= start,
            _tm.deadline_at <= end,
        )
        total = self._conn.execute(select(func.count()).select_from(window.subquery())).scalar()
        rows = self._conn.execute(window.order_by(_tm.deadline_at, _tm.case_id).limit(limit))
        return int(total or 0), [_line(r) for r in rows]
