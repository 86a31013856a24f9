"""``ConsoleTx``: the cases table's pages, saved views and bulk runs.

The cases table is filtered, sorted, paged and counted in SQL, so a page costs the
same at 100 cases as at 100k (bench/ measures it). Two expressions per case carry
the one definition of *late* (``engine.timers.is_late``, as ``Service.late_deadlines``
applies it to ``timers.latest_deadline_arms``):

- a case's *current arms* are, for each of its deadline timers at its current epoch,
  the most recently armed ``deadline`` row (a moved deadline is armed anew and wins),
  unless that row was discarded; only the timers a case can be late on count
  (``CaseTableQuery.deadline_timers``; the store's ``counting_deadline_timers``);
- the case is *late* when it is open and one of those arms' ``deadline_at`` is before
  ``now`` (pending or fired: a deadline whose escalation went out is still missed);
- its *deadline* (the sort column) is the earliest ``deadline_at`` of its arms.

The store keeps the earliest arm on the case row (``cases.deadline_at`` and
``deadline_timer``, recomputed from the timers by every write that changes them:
``sql/timers.refresh_deadline_columns``), so both are column conditions read through
``ix_cases_workflow_deadline_at``. A case late on any arm is late on the earliest, so
*late* is exact; with two deadline timers in a state the sort goes by the earlier one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Join

from dk2020flow.engine.records import TimerKind, TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.port import (
    BulkItem,
    BulkItemStatus,
    BulkRun,
    CaseSort,
    CaseTablePage,
    CaseTableQuery,
    CaseTableRow,
    SavedView,
)
from dk2020flow.store.rows import to_case
from dk2020flow.store.sql.base import SqlBase

_c = t.cases.c
_m = t.municipalities.c
_v = t.saved_views.c
_u = t.users.c
_r = t.bulk_runs.c
_i = t.bulk_items.c

DEADLINE = TimerKind.DEADLINE.value
DISCARDED = TimerStatus.DISCARDED.value

# Danish (and a few other) capitals that SQL's lower() leaves alone on SQLite (and on
# PostgreSQL in the C locale): folded by hand so a search for "ærø" finds "Ærø".
_FOLD = (("Æ", "æ"), ("Ø", "ø"), ("Å", "å"), ("É", "é"), ("Ü", "ü"), ("Ö", "ö"), ("Ä", "ä"))


def folded(column: ColumnElement[str]) -> ColumnElement[str]:
    """``column`` lower-cased, æøå included, the same way on both backends."""
    expr: ColumnElement[str] = column
    for upper, lower in _FOLD:
        expr = func.replace(expr, upper, lower)
    return func.lower(expr)


def fold_text(text: str) -> str:
    """The Python side of :func:`folded`."""
    for upper, lower in _FOLD:
        text = text.replace(upper, lower)
    return text.lower()


def _like_pattern(text: str) -> str:
    escaped = fold_text(text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _counts(query: CaseTableQuery) -> ColumnElement[bool]:
    """Whether the case's ``deadline_timer`` is one it can be late on (per the caller's
    ``deadline_timers``). The store keeps only such timers in the column, so this holds
    whenever the column is set, but for a definition it cannot read (sql/timers.py)."""
    if not query.deadline_timers:
        return false()
    return tuple_(_c.definition_id, _c.state, _c.deadline_timer).in_(list(query.deadline_timers))


def late_expression(query: CaseTableQuery) -> ColumnElement[bool]:
    """Whether the case is late at ``query.now`` (see the module's docstring): its
    earliest counting deadline (``cases.deadline_at``) passed. Late on any arm means
    late on the earliest, so this is exact for a state with two deadline timers too."""
    # ``is not null`` first: ``not late`` must hold for a case without a deadline too.
    waits = and_(_c.deadline_at.is_not(None), _c.deadline_timer.is_not(None))
    return and_(_c.closed.is_(False), waits, _c.deadline_at < query.now, _counts(query))


def deadline_expression(query: CaseTableQuery) -> ColumnElement[Any]:
    """The earliest deadline among the case's current arms it can be late on (None when
    it waits on none): ``cases.deadline_at``, kept by the store's writes."""
    return case((_counts(query), _c.deadline_at), else_=None)


class _DrivingJoin(Join):
    """A join whose left table SQLite must read first (``CROSS JOIN``, SQLite's way to fix
    the join order): the cases table sorted by municipality walks the municipalities'
    ``name`` (or ``region, name``) index and stops after one page, instead of joining
    and sorting every case. Other backends get a plain join (their planner has stats)."""

    inherit_cache = True


@compiles(_DrivingJoin)
def _plain_join(join: _DrivingJoin, compiler: Any, **kw: Any) -> str:
    return str(compiler.visit_join(join, **kw))


@compiles(_DrivingJoin, "sqlite")
def _sqlite_cross_join(join: _DrivingJoin, compiler: Any, **kw: Any) -> str:
    kw["asfrom"] = True
    left = compiler.process(join.left, **kw)
    right = compiler.process(join.right, **kw)
    on = compiler.process(join.onclause, **{k: v for k, v in kw.items() if k != "asfrom"})
    return f"{left} CROSS JOIN {right} ON {on}"


def _filtered(query: CaseTableQuery, base: Select[Any], *, join: bool) -> Select[Any]:
    """``base`` over the cases that match ``query``'s filter; joined with the
    municipalities when the filter needs them or ``join`` (the sort does)."""
    if join or query.region is not None or query.search.strip():
        on = _m.code == _c.municipality_code
        if query.sort in (CaseSort.MUNICIPALITY, CaseSort.REGION):
            base = base.select_from(_DrivingJoin(t.municipalities, t.cases, on))
        else:
            base = base.select_from(t.cases.join(t.municipalities, on))
    else:
        base = base.select_from(t.cases)
    base = base.where(_c.workflow == query.workflow)
    if query.state is not None:
        base = base.where(_c.state == query.state)
    if query.cohort is not None:
        base = base.where(_c.cohort == query.cohort)
    if query.region is not None:
        base = base.where(_m.region == query.region)
    if query.search.strip():
        base = base.where(folded(_m.name).like(_like_pattern(query.search.strip()), escape="\\"))
    if query.late is True:
        base = base.where(late_expression(query))
    elif query.late is False:
        base = base.where(~late_expression(query))
    return base


def _ordered(query: CaseTableQuery, base: Select[Any]) -> Select[Any]:
    """Sorted by ``query.sort``; each order is one an index can give where one exists
    (``ix_municipalities_region_name``, ``ix_cases_workflow_entered_at``); ties go by
    name (round, state, deadline) or case id."""
    order: list[Any]
    if query.sort is CaseSort.MUNICIPALITY:
        order = [_m.name]
    elif query.sort is CaseSort.REGION:
        order = [_m.region, _m.name]
    elif query.sort is CaseSort.SINCE:
        order = [_c.entered_at]
    else:
        key: Any = {
            CaseSort.ROUND: _c.cohort,
            CaseSort.STATE: _c.state,
            CaseSort.DEADLINE: deadline_expression(query),
        }[query.sort]
        # Cases without a round or a deadline come last in either direction.
        first = [] if query.sort is CaseSort.STATE else [key.is_(None)]
        return base.order_by(*first, key.desc() if query.descending else key.asc(), _m.name, _c.id)
    direction = [column.desc() if query.descending else column.asc() for column in order]
    return base.order_by(*direction, _c.id.desc() if query.descending else _c.id.asc())


class SqlConsoleTx(SqlBase):
    """``port.ConsoleTx`` over the transaction's connection."""

    # ------------------------------------------------------------------ the cases table

    def case_table(self, query: CaseTableQuery) -> CaseTablePage:
        # Two steps: the page's ids (filter, sort, limit: nothing computed per row that
        # the sort does not need), then those rows with their deadline and lateness.
        ids = self.case_table_ids(query)
        if query.limit is None:
            total = len(ids)
        elif query.offset == 0 and len(ids) < query.limit:
            total = len(ids)  # the whole result is on this page: no need to count
        else:
            count = _filtered(query, select(func.count()), join=False)
            total = int(self._conn.execute(count).scalar_one())
        return CaseTablePage(rows=self._table_rows(query, ids), total=total)

    def case_table_ids(self, query: CaseTableQuery) -> list[int]:
        if query.sort is CaseSort.DEADLINE and query.limit is not None:
            return self._ids_by_deadline(query, query.limit)
        by_name = query.sort is not CaseSort.SINCE  # every other order reads the name
        page = _ordered(query, _filtered(query, select(_c.id), join=by_name))
        if query.limit is not None:
            page = page.limit(query.limit).offset(query.offset)
        return [int(case_id) for case_id in self._conn.execute(page).scalars()]

    def _ids_by_deadline(self, query: CaseTableQuery, limit: int) -> list[int]:
        """A page sorted by deadline, in two parts so that the cases with a deadline come
        in the order of ``ix_cases_workflow_deadline_at`` (a page reads a page's worth of
        it, not every case): those with one (ties by name), then those without (by name).
        The same order as ``_ordered`` gives."""
        has = and_(_c.deadline_at.is_not(None), _counts(query))
        key = _c.deadline_at.desc() if query.descending else _c.deadline_at.asc()
        first = _filtered(query, select(_c.id), join=True).where(has)
        ids = [
            int(case_id)
            for case_id in self._conn.execute(
                first.order_by(key, _m.name, _c.id).limit(limit).offset(query.offset)
            ).scalars()
        ]
        if len(ids) == limit:
            return ids
        with_deadline = self._conn.execute(
            _filtered(query, select(func.count()), join=False).where(has)
        ).scalar_one()
        rest = (
            _filtered(query, select(_c.id), join=True)
            .where(~has)
            .order_by(_m.name, _c.id)
            .limit(limit - len(ids))
            .offset(max(0, query.offset - int(with_deadline)))
        )
        return ids + [int(case_id) for case_id in self._conn.execute(rest).scalars()]

    def regions(self) -> list[str]:
        return [
            str(r)
            for r in self._conn.execute(select(_m.region).distinct().order_by(_m.region)).scalars()
        ]

    def _table_rows(self, query: CaseTableQuery, ids: Sequence[int]) -> list[CaseTableRow]:
        if not ids:
            return []
        found: dict[int, CaseTableRow] = {}
        for chunk in _chunks(ids, 500):
            rows = self._conn.execute(
                select(
                    t.cases,
                    _m.name.label("municipality_name"),
                    _m.region,
                    deadline_expression(query).label("current_deadline"),
                    late_expression(query).label("is_late"),
                )
                .select_from(t.cases.join(t.municipalities, _m.code == _c.municipality_code))
                .where(_c.id.in_(chunk))
            )
            for row in rows:
                found[row.id] = CaseTableRow(
                    case=to_case(row), deadline_at=row.current_deadline, late=bool(row.is_late)
                )
        return [found[case_id] for case_id in ids if case_id in found]

    # ------------------------------------------------------------------ saved views

    def save_view(
        self, *, name: str, owner_id: int, shared_role: str | None, query: str, now: dt.datetime
    ) -> SavedView:
        view_id = self._conn.execute(
            insert(t.saved_views)
            .values(
                name=name, owner_id=owner_id, shared_role=shared_role, query=query, created_at=now
            )
            .returning(_v.id)
        ).scalar_one()
        found = self.saved_view(int(view_id))
        assert found is not None
        return found

    def views_for(self, user_id: int, roles: Sequence[str]) -> list[SavedView]:
        where: ColumnElement[bool] = _v.owner_id == user_id
        if roles:
            where = or_(where, _v.shared_role.in_(list(roles)))
        rows = self._conn.execute(_views().where(where).order_by(_v.name, _v.id))
        return [_to_view(row) for row in rows]

    def saved_view(self, view_id: int) -> SavedView | None:
        row = self._conn.execute(_views().where(_v.id == view_id)).first()
        return _to_view(row) if row is not None else None

    def delete_view(self, view_id: int, owner_id: int) -> bool:
        result = self._conn.execute(
            delete(t.saved_views).where(_v.id == view_id, _v.owner_id == owner_id)
        )
        return bool(result.rowcount)

    # ------------------------------------------------------------------ bulk runs

    def create_bulk_run(
        self,
        *,
        actor: str,
        role: str | None,
        trigger: str,
        comment: str,
        data: Mapping[str, Any],
        query: str,
        case_ids: Sequence[int],
        now: dt.datetime,
    ) -> int:
        run_id = int(
            self._conn.execute(
                insert(t.bulk_runs)
                .values(
                    actor=actor,
                    role=role,
                    trigger=trigger,
                    comment=comment,
                    data=dict(data),
                    query=query,
                    created_at=now,
                    finished_at=None,
                    total=len(case_ids),
                )
                .returning(_r.id)
            ).scalar_one()
        )
        if case_ids:
            self._conn.execute(
                insert(t.bulk_items),
                [
                    {
                        "run_id": run_id,
                        "case_id": case_id,
                        "status": BulkItemStatus.PENDING.value,
                        "message": "",
                        "at": None,
                    }
                    for case_id in case_ids
                ],
            )
        return run_id

    def bulk_run(self, run_id: int) -> BulkRun | None:
        row = self._conn.execute(select(t.bulk_runs).where(_r.id == run_id)).first()
        if row is None:
            return None
        counts = dict.fromkeys(BulkItemStatus, 0)
        for status, n in self._conn.execute(
            select(_i.status, func.count()).where(_i.run_id == run_id).group_by(_i.status)
        ):
            counts[BulkItemStatus(status)] = int(n)
        return BulkRun(
            id=row.id,
            actor=row.actor,
            role=row.role,
            trigger=row.trigger,
            comment=row.comment,
            data=dict(row.data),
            query=row.query,
            created_at=row.created_at,
            finished_at=row.finished_at,
            total=row.total,
            counts=counts,
        )

    def bulk_items(self, run_id: int) -> list[BulkItem]:
        rows = self._conn.execute(
            select(t.bulk_items, _m.name.label("municipality_name"))
            .join(t.cases, _c.id == _i.case_id)
            .join(t.municipalities, _m.code == _c.municipality_code)
            .where(_i.run_id == run_id)
            .order_by(_i.id)
        )
        return [
            BulkItem(
                run_id=row.run_id,
                case_id=row.case_id,
                municipality_name=row.municipality_name,
                status=BulkItemStatus(row.status),
                message=row.message,
                at=row.at,
            )
            for row in rows
        ]

    def finish_bulk_item(
        self, run_id: int, case_id: int, status: BulkItemStatus, message: str, at: dt.datetime
    ) -> bool:
        result = self._conn.execute(
            update(t.bulk_items)
            .where(
                _i.run_id == run_id,
                _i.case_id == case_id,
                _i.status == BulkItemStatus.PENDING.value,
            )
            .values(status=status.value, message=message, at=at)
        )
        return bool(result.rowcount)

    def finish_bulk_run(self, run_id: int, at: dt.datetime) -> None:
        self._conn.execute(
            update(t.bulk_runs)
            .where(_r.id == run_id, _r.finished_at.is_(None))
            .values(finished_at=at)
        )


def _chunks(ids: Sequence[int], size: int) -> list[Sequence[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _views() -> Select[Any]:
    return select(t.saved_views, _u.name.label("owner_name")).join(t.users, _u.id == _v.owner_id)


def _to_view(row: Any) -> SavedView:
    return SavedView(
        id=row.id,
        name=row.name,
        owner_id=row.owner_id,
        owner_name=row.owner_name,
        shared_role=row.shared_role,
        query=row.query,
        created_at=row.created_at,
    )
