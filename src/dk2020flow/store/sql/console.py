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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
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
from dk2020flow.store.rows import snapshot_columns, to_case
from dk2020flow.store.sql.base import SqlBase

_c = t.cases.c
_m = t.organisations.c
_cc = t.case_counts.c
_dc = t.deadline_counts.c
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


def _counts(query: CaseTableQuery, *, bound: bool = False) -> ColumnElement[bool]:
    """Whether the case's ``deadline_timer`` is one it can be late on (per the caller's
    ``deadline_timers``). The store keeps only such timers in the column, so this holds
    whenever the column is set, but for a definition it cannot read (sql/timers.py).
    ``bound``: the timers are the ``timers`` parameter (``_params``), not in the SQL."""
    if not query.deadline_timers:
        return false()
    key = tuple_(_c.definition_id, _c.state, _c.deadline_timer)
    if bound:
        return key.in_(bindparam("timers", expanding=True))
    return key.in_(list(query.deadline_timers))


class _Unindexed(FunctionElement[Any]):
    """A column SQLite must not look up through an index (``+column``; elsewhere the
    column itself): so that a filter by round or region reads the index made for it
    (``ix_cases_workflow_cohort_region``, ``ix_cases_workflow_region_state``), and a
    page by since the index in its order, not the deadline index, which SQLite (with
    statistics or without: nothing runs ``ANALYZE``) prefers for ``deadline_at < now``
    and then reads the case row of every late case."""

    inherit_cache = True
    name = "unindexed"

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(_Unindexed)
def _column_itself(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(_Unindexed, "sqlite")
def _sqlite_unindexed(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.clauses, **kw))


def late_expression(
    query: CaseTableQuery, *, other_index: bool = False, bound: bool = False
) -> ColumnElement[bool]:
    """Whether the case is late at ``query.now`` (see the module's docstring): its
    earliest counting deadline (``cases.deadline_at``) passed. Late on any arm means
    late on the earliest, so this is exact for a state with two deadline timers too.
    ``other_index``: a filter that reads another index (SQLite is kept from the
    deadline index: ``_Unindexed``). ``bound``: the instant and the timers are the
    ``now`` and ``timers`` parameters (``_params``)."""
    # ``is not null`` first: ``not late`` must hold for a case without a deadline too.
    waits = and_(_c.deadline_at.is_not(None), _c.deadline_timer.is_not(None))
    deadline: ColumnElement[Any] = _Unindexed(_c.deadline_at) if other_index else _c.deadline_at
    now: Any = bindparam("now", type_=_c.deadline_at.type) if bound else query.now
    return and_(_c.closed.is_(False), waits, deadline < now, _counts(query, bound=bound))


def deadline_expression(query: CaseTableQuery, *, bound: bool = False) -> ColumnElement[Any]:
    """The earliest deadline among the case's current arms it can be late on (None when
    it waits on none): ``cases.deadline_at``, kept by the store's writes."""
    return case((_counts(query, bound=bound), _c.deadline_at), else_=None)


# ----------------------------------------------------------------------------- statements
#
# The table's statements are built once per *shape* of the query — which filters are
# set, late or not, the sort, whether it pages — with its values as bound parameters
# (``_params``), as the overview's are: a request binds values instead of building SQL
# expressions and their cache keys (most of a page's time in the store otherwise). The
# builders below read only a query's shape; every value goes through ``_params``.

_STATEMENTS: dict[tuple[Any, ...], Any] = {}
"""Built statements by their shape; a few dozen shapes, a handful in use."""


def _built(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """The statement of ``key``, built by ``build`` on first use (two threads may both
    build one: the same statement, and the later stays)."""
    found = _STATEMENTS.get(key)
    if found is None:
        found = _STATEMENTS[key] = build()
    return found


def _shape(query: CaseTableQuery) -> tuple[Any, ...]:
    """What the statements of ``query`` depend on but its values."""
    return (
        query.state is not None,
        query.cohort is not None,
        query.region is not None,
        query.late,
        bool(query.search.strip()),
        bool(query.deadline_timers),
        query.sort,
        query.descending,
        query.limit is None,
    )


def _params(query: CaseTableQuery) -> dict[str, Any]:
    """The values of ``query``'s bound parameters (a statement ignores those it has not)."""
    params: dict[str, Any] = {
        "workflow": query.workflow,
        "state": query.state,
        "cohort": query.cohort,
        "region": query.region,
        "now": query.now,
        "limit": query.limit,
        "offset": query.offset,
    }
    if query.deadline_timers:
        params["timers"] = [tuple(key) for key in query.deadline_timers]
    if query.search.strip():
        params["pattern"] = _like_pattern(query.search.strip())
    return params


def _bound(name: str, column: ColumnElement[Any]) -> Any:
    return bindparam(name, type_=column.type)


class _DrivingJoin(Join):
    """A join whose left table SQLite must read first (``CROSS JOIN``, SQLite's way to fix
    the join order): the cases table sorted by organisation walks the organisations'
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


def _filtered(
    query: CaseTableQuery, base: Select[Any], *, join: bool, drive: bool = False
) -> Select[Any]:
    """``base`` over the cases that match ``query``'s filter (bound: ``_params``); joined with the
    organisations when the search needs them or ``join`` (the sort does), and read in
    the organisations' order first when ``drive`` (a sort by name of a filter that
    many cases match: the name index gives the page after a few rows)."""
    if join or query.search.strip():
        on = _m.code == _c.organisation_code
        if drive and query.sort in (CaseSort.ORGANISATION, CaseSort.REGION):
            base = base.select_from(_DrivingJoin(t.organisations, t.cases, on))
        else:
            base = base.select_from(t.cases.join(t.organisations, on))
    else:
        base = base.select_from(t.cases)
    base = base.where(_c.workflow == _bound("workflow", _c.workflow))
    if query.state is not None:
        base = base.where(_c.state == _bound("state", _c.state))
    if query.cohort is not None:
        base = base.where(_c.cohort == _bound("cohort", _c.cohort))
    if query.region is not None:
        # The case's own copy of its organisation's region (kept by the database):
        # the filter reads the cases' indexes alone.
        base = base.where(_c.organisation_region == _bound("region", _c.organisation_region))
    if query.search.strip():
        pattern = bindparam("pattern", type_=_m.name.type)
        base = base.where(folded(_m.name).like(pattern, escape="\\"))
    # A round or region is read from its own index; a page by since walks the index in
    # that order (``ix_cases_workflow_entered_at_state``: lateness is in it).
    other_index = (
        query.cohort is not None or query.region is not None or query.sort is CaseSort.SINCE
    )
    if query.late is True:
        base = base.where(late_expression(query, other_index=other_index, bound=True))
    elif query.late is False:
        base = base.where(~late_expression(query, other_index=other_index, bound=True))
    return base


def _many_match(query: CaseTableQuery, counted: tuple[int, int] | None) -> bool:
    """Whether walking the organisations' names finds a page sorted by name sooner than
    the filter's index does. Walking reads about ``wanted × cases / total`` rows (each
    looked up: the name order says nothing of the filter); the filter's index reads the
    ``total`` matches (each joined to its name) and sorts them. So: walk when
    ``total² ≥ 2 × wanted × cases``. Unknown (a text search, every row): walk."""
    if counted is None or query.limit is None:
        return True
    total, cases = counted
    return total * total >= 2 * (query.offset + query.limit) * cases


_GROUPED = frozenset({CaseSort.ROUND, CaseSort.STATE, CaseSort.DEADLINE})
"""Sorts by a column of few values (of few distinct deadlines), then by name: paged by
the kept counts of each value (``SqlConsoleTx._ids_by_groups``)."""


def _kept_filter(query: CaseTableQuery, kept: Any) -> list[ColumnElement[bool]]:
    """``query``'s filter (but *late* and the text search) on a kept count table's key
    (``case_counts`` or ``deadline_counts``: no round is ``''`` there)."""
    wanted = (
        (kept.workflow, "workflow", query.workflow),
        (kept.state, "state", query.state),
        (kept.cohort, "cohort", query.cohort),
        (kept.region, "region", query.region),
    )
    return [column == _bound(name, column) for column, name, value in wanted if value is not None]


def _passed_filter(query: CaseTableQuery, late: bool | None) -> list[ColumnElement[bool]]:
    """``deadline_counts`` rows of the timers a case can be late on: passed at
    ``query.now`` (``late``), not passed (``late`` False), or either (None)."""
    counting: list[ColumnElement[bool]] = [
        tuple_(_dc.definition_id, _dc.state, _dc.deadline_timer).in_(
            bindparam("timers", expanding=True)
        )
        if query.deadline_timers
        else false()
    ]
    now = _bound("now", _dc.deadline_at)
    if late is True:
        counting.append(_dc.deadline_at < now)
    elif late is False:
        counting.append(_dc.deadline_at >= now)
    return counting


def _ordered(query: CaseTableQuery, base: Select[Any], *, walk: bool = True) -> Select[Any]:
    """Sorted by ``query.sort``; each order is one an index can give where one exists
    (``ix_organisations_region_name``, ``ix_cases_workflow_entered_at``); ties go by
    name (round, state, deadline) or case id. Not ``walk``: few cases match, so SQLite
    is kept from walking ``ix_cases_workflow_entered_at`` for them (it would read every
    case in that order to find the few): it reads the filter's index and sorts those."""
    order: list[Any]
    if query.sort is CaseSort.ORGANISATION:
        order = [_m.name]
    elif query.sort is CaseSort.REGION:
        order = [_m.region, _m.name]
    elif query.sort is CaseSort.SINCE:
        order = [_c.entered_at if walk else _Unindexed(_c.entered_at)]
    else:
        key: Any = {
            CaseSort.ROUND: _c.cohort,
            CaseSort.STATE: _c.state,
            CaseSort.DEADLINE: deadline_expression(query, bound=True),
        }[query.sort]
        # Cases without a round or a deadline come last in either direction.
        first = [] if query.sort is CaseSort.STATE else [key.is_(None)]
        return base.order_by(*first, key.desc() if query.descending else key.asc(), _m.name, _c.id)
    direction = [column.desc() if query.descending else column.asc() for column in order]
    return base.order_by(*direction, _c.id.desc() if query.descending else _c.id.asc())


def _definition_names() -> Select[Any]:
    d = t.definitions.c
    return select(d.id, d.name).order_by(d.id)


def _regions() -> Select[Any]:
    """One step of ``ix_organisations_region_name`` per region (a loose index scan in a
    recursive query), not every organisation: a handful of regions, however many
    organisations."""
    first = select(func.min(_m.region).label("region")).cte("regions", recursive=True)
    after = select(func.min(_m.region)).where(_m.region > first.c.region).scalar_subquery()
    steps = first.union_all(select(after).where(first.c.region.is_not(None)))
    return select(steps.c.region).where(steps.c.region.is_not(None)).order_by(steps.c.region)


def _rows_of(query: CaseTableQuery) -> Select[Any]:
    """The table's rows of the cases ``ids`` (bound), with their deadline and lateness."""
    return (
        select(
            t.cases,
            *snapshot_columns(),
            deadline_expression(query, bound=True).label("current_deadline"),
            late_expression(query, bound=True).label("is_late"),
        )
        .select_from(t.cases.join(t.organisations, _m.code == _c.organisation_code))
        .where(_c.id.in_(bindparam("ids", expanding=True)))
    )


class SqlConsoleTx(SqlBase):
    """``port.ConsoleTx`` over the transaction's connection."""

    # ------------------------------------------------------------------ the cases table

    def case_table(self, query: CaseTableQuery) -> CaseTablePage:
        # The count first, from the counts the database keeps (a few rows; a text search
        # counts in SQL); then the page's ids (filter, sort, limit: nothing computed per
        # row that the sort does not need), read in the order that suits how many match;
        # then those rows with their deadline and lateness.
        counted = self._kept_counts(query)
        total = None if counted is None else counted[0]
        if query.limit == 0 and total is not None:
            return CaseTablePage(rows=[], total=total)
        ids = self._page_ids(query, counted)
        if total is None:
            if query.limit is None or (query.offset == 0 and len(ids) < query.limit):
                total = len(ids)  # the whole result is on this page: no need to count
            else:
                count = _built(
                    ("count", *_shape(query)),
                    lambda: _filtered(query, select(func.count()), join=False),
                )
                total = int(self._conn.execute(count, _params(query)).scalar_one())
        return CaseTablePage(rows=self._table_rows(query, ids), total=total)

    def case_table_ids(self, query: CaseTableQuery) -> list[int]:
        return self._page_ids(query, None)

    def _page_ids(self, query: CaseTableQuery, counted: tuple[int, int] | None) -> list[int]:
        """The page's ids; ``counted`` is (matching cases, the workflow's cases) from the
        kept counts (None: unknown, a text search)."""
        if query.limit is not None and counted is not None and query.sort in _GROUPED:
            return self._ids_by_groups(query, *counted)
        if query.sort is CaseSort.DEADLINE and query.limit is not None:
            return self._ids_by_deadline(query, query.limit)
        if counted is not None and counted[0] == 0:
            return []
        by_name = query.sort is not CaseSort.SINCE  # every other order reads the name
        walk = _many_match(query, counted)  # the sort's own order, or the filter's index
        if not by_name and (query.cohort is not None or query.region is not None):
            # When a case entered its state goes with its state and round: walking that
            # order meets the matches late. A round or region has an index that holds
            # the entry time (and lateness): reading it alone and sorting is bounded.
            walk = False

        def build() -> Select[Any]:
            drive = by_name and walk
            page = _ordered(
                query, _filtered(query, select(_c.id), join=by_name, drive=drive), walk=walk
            )
            if query.limit is not None:
                page = page.limit(bindparam("limit", type_=Integer)).offset(
                    bindparam("offset", type_=Integer)
                )
            return page

        page = _built(("page", walk, *_shape(query)), build)
        return [int(case_id) for case_id in self._conn.execute(page, _params(query)).scalars()]

    def _ids_by_groups(self, query: CaseTableQuery, total: int, cases: int) -> list[int]:
        """A page sorted by round, state or deadline: cases of one value come together,
        by name. The kept counts say how many cases each value has (in the sort's
        order), so the page is read group by group — only the groups it covers, each
        from its own offset and as ``_many_match`` says — instead of sorting every case."""
        assert query.limit is not None
        skip, ids = query.offset, list[int]()
        for condition, count in self._groups(query, total):
            if skip >= count:
                skip -= count
                continue
            take = min(query.limit - len(ids), count - skip)
            part = replace(
                query, sort=CaseSort.ORGANISATION, descending=False, offset=skip, limit=take
            )
            drive = _many_match(part, (count, cases))
            page = _ordered(part, _filtered(part, select(_c.id), join=True, drive=drive))
            found = self._conn.execute(
                page.where(condition).limit(take).offset(skip), _params(part)
            )
            ids += [int(case_id) for case_id in found.scalars()]
            skip = 0
            if len(ids) >= query.limit:
                break
        return ids

    def _groups(self, query: CaseTableQuery, total: int) -> list[tuple[ColumnElement[bool], int]]:
        """(the condition of a value of the sort's column, how many matching cases have
        it), in the sort's order: rounds and deadlines with none last either way."""
        params = _params(query)
        if query.sort is CaseSort.DEADLINE:
            passed = _passed_filter(query, query.late)
            key = _dc.deadline_at
            n = func.sum(_dc.n)
            rows = self._conn.execute(
                select(key, n)
                .where(*_kept_filter(query, _dc), *passed)
                .group_by(key)
                .having(n != 0)
                .order_by(key.desc() if query.descending else key.asc()),
                params,
            ).all()
            has = and_(
                _c.closed.is_(False),
                _c.deadline_at.is_not(None),
                _c.deadline_timer.is_not(None),
                _counts(query),
            )
            groups = [(and_(has, _c.deadline_at == at), int(count)) for at, count in rows]
            rest = total - sum(count for _, count in groups)
            return [*groups, (~has, rest)] if rest > 0 else groups
        cases_key, late_key, column = {
            CaseSort.STATE: (_cc.state, _dc.state, _c.state),
            CaseSort.ROUND: (_cc.cohort, _dc.cohort, _c.cohort),
        }[query.sort]
        n = func.sum(_cc.n)
        counted = self._conn.execute(
            select(cases_key, n)
            .where(*_kept_filter(query, _cc))
            .group_by(cases_key)
            .having(n != 0)
            .order_by(cases_key.desc() if query.descending else cases_key.asc()),
            params,
        ).all()
        late: dict[str, int] = {}
        if query.late is not None and query.deadline_timers:
            ln = func.sum(_dc.n)
            late = {
                str(value): int(count)
                for value, count in self._conn.execute(
                    select(late_key, ln)
                    .where(*_kept_filter(query, _dc), *_passed_filter(query, True))
                    .group_by(late_key),
                    params,
                )
            }
        found: list[tuple[ColumnElement[bool], int]] = []
        none: list[tuple[ColumnElement[bool], int]] = []
        for value, cases in counted:
            count = int(cases)
            if query.late is not None:
                count = late.get(value, 0) if query.late else count - late.get(value, 0)
            if count <= 0:
                continue
            if value == "":  # no round: last in either direction
                none.append((column.is_(None), count))
            else:
                found.append((column == value, count))
        return found + none

    def _kept_counts(self, query: CaseTableQuery) -> tuple[int, int] | None:
        """(how many cases match ``query``'s filter, how many the workflow has), in one
        query of the kept counts; None for a text search."""
        if query.search.strip():
            return None

        def build() -> Select[Any]:
            def cases(*where: ColumnElement[bool]) -> Any:
                return select(func.coalesce(func.sum(_cc.n), 0)).where(*where).scalar_subquery()

            late: Any = literal(0)
            if query.late is not None and query.deadline_timers:
                late = (
                    select(func.coalesce(func.sum(_dc.n), 0))
                    .where(*_kept_filter(query, _dc), *_passed_filter(query, True))
                    .scalar_subquery()
                )
            workflow = _cc.workflow == _bound("workflow", _cc.workflow)
            return select(cases(*_kept_filter(query, _cc)), late, cases(workflow))

        counts = _built(("counts", *_shape(query)), build)
        row = self._conn.execute(counts, _params(query)).one()
        total, passed, workflow = (int(value) for value in row)
        if query.late is None:
            return total, workflow
        return (passed if query.late else total - passed), workflow

    def _ids_by_deadline(self, query: CaseTableQuery, limit: int) -> list[int]:
        """A page sorted by deadline, in two parts so that the cases with a deadline come
        in the order of ``ix_cases_workflow_deadline_at`` (a page reads a page's worth of
        it, not every case): those with one (ties by name), then those without (by name).
        The same order as ``_ordered`` gives."""
        params = _params(query)
        has = and_(_c.deadline_at.is_not(None), _counts(query, bound=True))
        key = _c.deadline_at.desc() if query.descending else _c.deadline_at.asc()
        first = _filtered(query, select(_c.id), join=True).where(has)
        ids = [
            int(case_id)
            for case_id in self._conn.execute(
                first.order_by(key, _m.name, _c.id).limit(limit).offset(query.offset), params
            ).scalars()
        ]
        if len(ids) == limit:
            return ids
        with_deadline = self._conn.execute(
            _filtered(query, select(func.count()), join=False).where(has), params
        ).scalar_one()
        rest = (
            _filtered(query, select(_c.id), join=True)
            .where(~has)
            .order_by(_m.name, _c.id)
            .limit(limit - len(ids))
            .offset(max(0, query.offset - int(with_deadline)))
        )
        return ids + [int(case_id) for case_id in self._conn.execute(rest, params).scalars()]

    def definition_names(self) -> list[tuple[int, str]]:
        rows = self._conn.execute(_built(("definition_names",), _definition_names))
        return [(int(definition_id), str(name)) for definition_id, name in rows]

    def regions(self) -> list[str]:
        return [str(r) for r in self._conn.execute(_built(("regions",), _regions)).scalars()]

    def _table_rows(self, query: CaseTableQuery, ids: Sequence[int]) -> list[CaseTableRow]:
        if not ids:
            return []
        rows_of = _built(("rows", bool(query.deadline_timers)), lambda: _rows_of(query))
        params = _params(query)
        found: dict[int, CaseTableRow] = {}
        for chunk in _chunks(ids, 500):
            for row in self._conn.execute(rows_of, {**params, "ids": list(chunk)}):
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
        def build() -> Select[Any]:
            where: ColumnElement[bool] = _v.owner_id == bindparam("user_id", type_=Integer)
            if roles:
                where = or_(where, _v.shared_role.in_(bindparam("roles", expanding=True)))
            return _views().where(where).order_by(_v.name, _v.id)

        views = _built(("views", bool(roles)), build)
        rows = self._conn.execute(views, {"user_id": user_id, "roles": list(roles)})
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
            select(t.bulk_items, _m.name.label("organisation_name"))
            .join(t.cases, _c.id == _i.case_id)
            .join(t.organisations, _m.code == _c.organisation_code)
            .where(_i.run_id == run_id)
            .order_by(_i.id)
        )
        return [
            BulkItem(
                run_id=row.run_id,
                case_id=row.case_id,
                organisation_name=row.organisation_name,
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
