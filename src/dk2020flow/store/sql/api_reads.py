"""``ApiReadsTx``: what the REST API reads by keyset — pages of cases and of the outbox.

A page of cases is the console's filter (``sql/console.py``: the same *late* and
*deadline* expressions over the columns the store keeps on the case row) in one of the
console's sorts, made total by ending every order with the case's id. The page after
another starts strictly after the sort key of that page's last case: a condition on
the key's columns, not an ``OFFSET``, so page 400 costs what page 1 costs and a walk
over the pages sees each case once while nothing changes (a case that changes meanwhile
is seen where its key is then).

A key that may be NULL (a case's round, its deadline) is ordered NULLS LAST in both
directions: its rows follow every row with a value, as in the console's table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, literal, or_, select, true

from dk2020flow.store import tables as t
from dk2020flow.store.port import (
    CaseKeysetPage,
    CaseKeysetQuery,
    CaseSort,
    CaseTableQuery,
    CaseTableRow,
    KeysetMismatchError,
    KeyValue,
    OutboxMessage,
    OutboxStatus,
)
from dk2020flow.store.rows import snapshot_columns, to_case, to_message
from dk2020flow.store.sql.base import SqlBase
from dk2020flow.store.sql.console import deadline_expression, fold_text, folded, late_expression

_c = t.cases.c
_m = t.organisations.c
_o = t.outbox.c


@dataclass(frozen=True, slots=True)
class _Key:
    """One column of a sort key: its expression, the Python type of its values, and
    whether it may be NULL (then NULLS LAST)."""

    expr: ColumnElement[Any]
    kind: type
    nullable: bool = False


def _table_query(query: CaseKeysetQuery) -> CaseTableQuery:
    """The console's query with the same instant and deadline timers, for its late and
    deadline expressions."""
    return CaseTableQuery(
        workflow=query.workflow or "",
        now=query.now,
        deadline_timers=query.deadline_timers,
    )


def _keys(query: CaseKeysetQuery) -> list[_Key]:
    name, case_id = _Key(_m.name, str), _Key(_c.id, int)
    if query.sort is CaseSort.ORGANISATION:
        return [name, case_id]
    if query.sort is CaseSort.REGION:
        return [_Key(_m.region, str), name, case_id]
    if query.sort is CaseSort.ROUND:
        return [_Key(_c.cohort, str, nullable=True), name, case_id]
    if query.sort is CaseSort.STATE:
        return [_Key(_c.state, str), name, case_id]
    if query.sort is CaseSort.SINCE:
        return [_Key(_c.entered_at, dt.datetime), case_id]
    deadline = deadline_expression(_table_query(query))
    return [_Key(deadline, dt.datetime, nullable=True), name, case_id]


def _checked(keys: Sequence[_Key], after: Sequence[KeyValue]) -> list[KeyValue]:
    if len(after) != len(keys):
        raise KeysetMismatchError(f"the key has {len(after)} parts; this sort has {len(keys)}")
    for key, value in zip(keys, after, strict=True):
        if value is None and not key.nullable:
            raise KeysetMismatchError("the key has an empty part where this sort has none")
        if value is not None and (
            not isinstance(value, key.kind) or (key.kind is int and isinstance(value, bool))
        ):
            raise KeysetMismatchError(f"the key has a {type(value).__name__} for a {key.kind}")
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            raise KeysetMismatchError("the key has a date-time without a UTC offset")
    return list(after)


def _bound(key: _Key, value: KeyValue) -> ColumnElement[Any]:
    return literal(value, type_=key.expr.type)


def _equal(key: _Key, value: KeyValue) -> ColumnElement[bool]:
    return key.expr.is_(None) if value is None else key.expr == _bound(key, value)


def _beyond(key: _Key, value: KeyValue, descending: bool) -> ColumnElement[bool]:
    """Rows whose ``key`` comes strictly after ``value`` (NULLS LAST either way)."""
    if value is None:
        return false()  # nothing comes after NULL in this column: ties go to the next key
    beyond = key.expr < _bound(key, value) if descending else key.expr > _bound(key, value)
    return or_(beyond, key.expr.is_(None)) if key.nullable else beyond


def _after(
    keys: Sequence[_Key], after: Sequence[KeyValue], descending: bool
) -> ColumnElement[bool]:
    """The keyset condition ``(k1, k2, …) > (v1, v2, …)`` in the sort's order."""
    values = _checked(keys, after)
    alternatives: list[ColumnElement[bool]] = []
    for i, key in enumerate(keys):
        ties = [_equal(k, v) for k, v in zip(keys[:i], values[:i], strict=True)]
        alternatives.append(and_(true(), *ties, _beyond(key, values[i], descending)))
    return or_(*alternatives)


def _order(keys: Sequence[_Key], descending: bool) -> list[ColumnElement[Any]]:
    order: list[ColumnElement[Any]] = []
    for key in keys:
        if key.nullable:
            order.append(key.expr.is_(None).asc())
        order.append(key.expr.desc() if descending else key.expr.asc())
    return order


def _filtered(query: CaseKeysetQuery, base: Select[Any]) -> Select[Any]:
    if query.workflow is not None:
        base = base.where(_c.workflow == query.workflow)
    if query.state is not None:
        base = base.where(_c.state == query.state)
    if query.cohort is not None:
        base = base.where(_c.cohort == query.cohort)
    if query.region is not None:
        base = base.where(_m.region == query.region)
    if query.search.strip():
        escaped = fold_text(query.search.strip())
        escaped = escaped.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        base = base.where(folded(_m.name).like(f"%{escaped}%", escape="\\"))
    if query.late is not None:
        late = late_expression(_table_query(query))
        base = base.where(late if query.late else ~late)
    return base


class SqlApiReadsTx(SqlBase):
    """``port.ApiReadsTx`` over the transaction's connection."""

    def case_keyset_page(self, query: CaseKeysetQuery) -> CaseKeysetPage:
        keys = _keys(query)
        table = _table_query(query)
        page = _filtered(
            query,
            select(
                t.cases,
                *snapshot_columns(),
                deadline_expression(table).label("current_deadline"),
                late_expression(table).label("is_late"),
                *(key.expr.label(f"key_{i}") for i, key in enumerate(keys)),
            ).select_from(t.cases.join(t.organisations, _m.code == _c.organisation_code)),
        )
        if query.after is not None:
            page = page.where(_after(keys, query.after, query.descending))
        rows = list(
            self._conn.execute(
                page.order_by(*_order(keys, query.descending)).limit(query.limit + 1)
            )
        )
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        found = [
            CaseTableRow(
                case=to_case(row), deadline_at=row.current_deadline, late=bool(row.is_late)
            )
            for row in rows
        ]
        last_key: tuple[KeyValue, ...] | None = None
        if more and rows:
            last = rows[-1]
            last_key = tuple(getattr(last, f"key_{i}") for i in range(len(keys)))
        return CaseKeysetPage(rows=found, last_key=last_key)

    def outbox_page(
        self,
        *,
        status: OutboxStatus | None = None,
        case_id: int | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[OutboxMessage]:
        query = select(t.outbox)
        if status is not None:
            query = query.where(_o.status == status.value)
        if case_id is not None:
            query = query.where(_o.case_id == case_id)
        if before_id is not None:
            query = query.where(_o.id < before_id)
        rows = self._conn.execute(query.order_by(_o.id.desc()).limit(limit))
        return [to_message(row) for row in rows]
