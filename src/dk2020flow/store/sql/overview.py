"""``OverviewTx``: the console's programme overview, counted and limited in SQL.

Every query here reads counts the database keeps or limits in SQL, so the overview
costs the same on 98 cases as on 100 000: the counts per (workflow, state, round,
region) and per message status are the ``case_counts`` and ``outbox_counts`` the
triggers of migration 0004 keep (a few dozen rows); the cases whose deadline passed,
per (definition, state, timer) — whether they are late is ``engine.timers.is_late``,
which the service applies per group — are the ``deadline_counts`` rows before the
instant (one per distinct deadline and key, not one per case); the first of them by
deadline come from the cases' ``deadline_at`` and ``deadline_timer`` columns
(``ix_cases_deadline_at_id``), and the pending deadlines of a window from the window's
timer rows alone (``ix_timers_status_due_at``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    exists,
    false,
    func,
    select,
    tuple_,
)

from dk2020flow.engine.records import TimerKind, TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.port import DeadlineLine, LateGroup, OutboxStatus, StateCount
from dk2020flow.store.sql.base import SqlBase
from dk2020flow.store.sql.outbox import outbox_counts

_c = t.cases.c
_m = t.organisations.c
_tm = t.timers.c
_cc = t.case_counts.c
_dc = t.deadline_counts.c
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
            _m.name.label("organisation"),
            _m.region,
        )
        .join(t.organisations, _m.code == _c.organisation_code)
        .where(_c.closed == false(), _c.deadline_at.is_not(None))
    )


def _pending_deadline_rows() -> Select[Any]:
    """The pending current deadline rows of open cases due in [``start``, ``end``] (bound
    parameters): every deadline timer's, a plain timer's too (the list of what is
    coming), so not from the cases' columns. A deadline row is due at its deadline
    (``engine.timers.schedule``), so ``ix_timers_status_due_at`` finds the window's rows,
    and only those are checked for being the latest armed
    (``sql.timers.latest_deadline_arms``)."""
    newer = t.timers.alias("newer")
    start = bindparam("start", type_=_tm.due_at.type)
    end = bindparam("end", type_=_tm.due_at.type)
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
            _m.name.label("organisation"),
            _m.region,
        )
        .join(t.cases, and_(_c.id == _tm.case_id, _c.epoch == _tm.epoch))
        .join(t.organisations, _m.code == _c.organisation_code)
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


@cache
def _statements() -> dict[str, Any]:
    """The overview's statements, built once (on first use: not at import) with bound
    parameters, so a request binds values instead of building SQL expressions."""
    window = _pending_deadline_rows()
    limit = bindparam("limit", type_=Integer)
    at = bindparam("at", type_=_c.deadline_at.type)
    groups = tuple_(_c.definition_id, _c.state, _c.deadline_timer).in_(
        bindparam("groups", expanding=True)
    )
    cases = func.sum(_cc.n)
    passed = func.sum(_dc.n)
    return {
        "state_counts": select(_cc.workflow, _cc.state, _cc.cohort, _cc.region, cases.label("n"))
        .group_by(_cc.workflow, _cc.state, _cc.cohort, _cc.region)
        .having(cases != 0),
        "passed_groups": select(_dc.definition_id, _dc.state, _dc.deadline_timer, passed.label("n"))
        .where(_dc.deadline_at < bindparam("at", type_=_dc.deadline_at.type))
        .group_by(_dc.definition_id, _dc.state, _dc.deadline_timer)
        .having(passed != 0),
        "window_count": select(func.count()).select_from(window.subquery()),
        "window": window.order_by(_tm.deadline_at, _tm.case_id).limit(limit),
        # ``ix_cases_deadline_at_id`` gives the page in its order: a page reads about a
        # page of cases, however many share a deadline.
        "late_ids": select(_c.id)
        .where(_c.closed == false(), _c.deadline_at < at, groups)
        .order_by(_c.deadline_at, _c.id)
        .limit(limit),
        "late_rows": _current_deadline_rows()
        .where(_c.id.in_(bindparam("ids", expanding=True)))
        .order_by(_c.deadline_at, _c.id),
    }


def _line(row: Any) -> DeadlineLine:
    return DeadlineLine(
        case_id=row.case_id,
        workflow=row.workflow,
        definition_id=row.definition_id,
        organisation=row.organisation,
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
        query = _statements()["state_counts"]
        return [
            StateCount(
                workflow=r.workflow,
                state=r.state,
                cohort=r.cohort or None,
                region=r.region,
                count=int(r.n),
            )
            for r in self._conn.execute(query)
        ]

    def passed_deadline_groups(self, at: dt.datetime) -> list[LateGroup]:
        query = _statements()["passed_groups"]
        return [
            LateGroup(
                definition_id=r.definition_id, state=r.state, timer=r.deadline_timer, count=int(r.n)
            )
            for r in self._conn.execute(query, {"at": at})
        ]

    def outbox_status_counts(self) -> dict[OutboxStatus, int]:
        return outbox_counts(self._conn)

    def passed_deadlines(
        self, at: dt.datetime, groups: Sequence[LateGroup], limit: int
    ) -> list[DeadlineLine]:
        if not groups:
            return []
        # The page's ids first, then their rows: the status of each arm is read for the
        # page alone.
        chosen = [(g.definition_id, g.state, g.timer) for g in groups]
        sql = _statements()
        ids = [
            int(case_id)
            for case_id in self._conn.execute(
                sql["late_ids"], {"at": at, "groups": chosen, "limit": limit}
            ).scalars()
        ]
        if not ids:
            return []
        return [_line(r) for r in self._conn.execute(sql["late_rows"], {"ids": ids})]

    def pending_deadlines_between(
        self, start: dt.datetime, end: dt.datetime, limit: int
    ) -> tuple[int, list[DeadlineLine]]:
        sql = _statements()
        window = {"start": start, "end": end}
        total = self._conn.execute(sql["window_count"], window).scalar()
        rows = self._conn.execute(sql["window"], {**window, "limit": limit})
        return int(total or 0), [_line(r) for r in rows]
