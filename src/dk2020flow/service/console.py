"""The console's cases table, its saved views and its bulk runs (``Service.console``).

``CaseQuery`` is the table's state as the URL carries it (a view can be bookmarked,
sent to a colleague or saved on the server under a name): it is parsed and checked
here, each parameter against the workflow, and written back as a query string.
The rows come from one SQL query per page (``ConsoleTx.case_table``); *late* is
``engine.timers.is_late``, applied in SQL to the timers it holds for (see
``deadline_timers``), so the table agrees with ``Service.late_deadlines``.

A bulk run fires one trigger on many cases: ``plan_bulk`` says how many and changes
nothing (the confirmation page), ``start_bulk`` records the run with a pending item
per case, and ``run_bulk`` fires each pending case in its own transaction through
``Service.fire`` — the same checks and audit events as ``dk2020flow case fire`` —
recording *done*, or *refused* with the refusal's message, and going on.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from dk2020flow.definition.model import FieldDef, Text, Workflow, text_in
from dk2020flow.engine import timers as timing
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.errors import Dk2020flowError, NotFoundError, RefusalReason, RefusedError
from dk2020flow.service.roles import acting_roles
from dk2020flow.store.port import (
    BulkItem,
    BulkItemStatus,
    BulkRun,
    CaseSort,
    CaseTablePage,
    CaseTableQuery,
    CaseTableRow,
    SavedView,
    Tx,
)

if TYPE_CHECKING:
    from dk2020flow.service.core import Service

__all__ = [
    "PAGE_SIZES",
    "BulkPlan",
    "BulkTrigger",
    "CaseQuery",
    "CaseQueryError",
    "CaseTable",
    "CasesPage",
    "Console",
    "TableOptions",
]

PAGE_SIZES = (25, 50, 100)
SORTS = {sort.value: sort for sort in CaseSort}
MAX_VIEW_NAME = 100
SYNC_BULK_LIMIT = 10
"""A bulk run of at most this many cases runs in the request; a larger one in a thread."""


class CaseQueryError(Dk2020flowError):
    """A parameter of the cases table's URL that is not valid; nothing was read."""

    def __init__(self, param: str, value: str, allowed: Sequence[str] = ()) -> None:
        self.param = param
        self.value = value
        self.allowed = tuple(allowed)
        hint = f" (one of: {', '.join(self.allowed)})" if self.allowed else ""
        super().__init__(f"{param}={value!r} is not valid{hint}")


@dataclass(frozen=True, kw_only=True, slots=True)
class TableOptions:
    """What the table's filter and columns offer, from the workflow and the organisations."""

    workflow: Workflow
    regions: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.workflow.workflow

    def state_title(self, state: str, language: str) -> str:
        spec = self.workflow.states.get(state)
        return text_in(spec.title, language, state) or state if spec else state

    def cohort_title(self, cohort: str | None, language: str) -> str:
        if cohort is None:
            return ""
        spec = self.workflow.cohorts.get(cohort)
        return text_in(spec.title, language, cohort) or cohort if spec else cohort

    def field_title(self, name: str, language: str) -> str:
        spec = self.workflow.fields.get(name)
        return text_in(spec.title, language, name) or name if spec else name

    def trigger_title(self, trigger: str, language: str) -> str:
        for transition in self.workflow.transitions_named(trigger):
            if transition.title:
                return text_in(transition.title, language, trigger) or trigger
        return trigger

    @property
    def fields(self) -> Mapping[str, FieldDef]:
        return self.workflow.fields


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseQuery:
    """The cases table's filter, sort, page and columns, as in its URL:
    ``?state=drafting&round=round2&region=Syddanmark&late=1&q=od&sort=-since&page=2
    &size=50&col=plan_url``."""

    state: str | None = None
    cohort: str | None = None
    region: str | None = None
    late: bool | None = None
    search: str = ""
    sort: CaseSort = CaseSort.ORGANISATION
    descending: bool = False
    page: int = 1
    size: int = PAGE_SIZES[0]
    columns: tuple[str, ...] = ()

    @staticmethod
    def parse(params: Iterable[tuple[str, str]], options: TableOptions) -> CaseQuery:
        """The query from URL parameters; ``CaseQueryError`` names the first bad one.
        Empty values mean "not filtered" (a GET form sends every field)."""
        values: dict[str, str] = {}
        columns: list[str] = []
        for key, raw in params:
            value = raw.strip()
            if key == "col":
                if value and value not in options.fields:
                    raise CaseQueryError("col", value, tuple(options.fields))
                if value and value not in columns:
                    columns.append(value)
            elif key in _PARAMS:
                if key in values and values[key] != value:
                    raise CaseQueryError(key, value, ("one value",))
                values[key] = value
        wf = options.workflow
        state = values.get("state") or None
        if state is not None and state not in wf.states:
            raise CaseQueryError("state", state, tuple(wf.states))
        cohort = values.get("round") or None
        if cohort is not None and cohort not in wf.cohorts:
            raise CaseQueryError("round", cohort, tuple(wf.cohorts))
        region = values.get("region") or None
        if region is not None and region not in options.regions:
            raise CaseQueryError("region", region, options.regions)
        late_text = values.get("late", "")
        if late_text not in _LATE:
            raise CaseQueryError("late", late_text, ("1", "0"))
        search = values.get("q", "")
        if len(search) > 100:
            raise CaseQueryError("q", search[:20] + "…", ("at most 100 characters",))
        sort_text = values.get("sort") or CaseSort.ORGANISATION.value
        descending = sort_text.startswith("-")
        sort = SORTS.get(sort_text.removeprefix("-"))
        if sort is None:
            raise CaseQueryError("sort", sort_text, tuple(SORTS))
        page = _positive(values.get("page") or "1", "page")
        size = _positive(values.get("size") or str(PAGE_SIZES[0]), "size")
        if size not in PAGE_SIZES:
            raise CaseQueryError("size", str(size), tuple(str(s) for s in PAGE_SIZES))
        return CaseQuery(
            state=state,
            cohort=cohort,
            region=region,
            late=_LATE[late_text],
            search=search,
            sort=sort,
            descending=descending,
            page=page,
            size=size,
            columns=tuple(columns),
        )

    def params(self) -> list[tuple[str, str]]:
        """The URL parameters of this query (defaults left out), in a stable order."""
        out: list[tuple[str, str]] = []
        for key, value in (
            ("state", self.state),
            ("round", self.cohort),
            ("region", self.region),
            ("late", None if self.late is None else ("1" if self.late else "0")),
            ("q", self.search or None),
        ):
            if value is not None:
                out.append((key, value))
        if self.sort is not CaseSort.ORGANISATION or self.descending:
            out.append(("sort", ("-" if self.descending else "") + self.sort.value))
        if self.page != 1:
            out.append(("page", str(self.page)))
        if self.size != PAGE_SIZES[0]:
            out.append(("size", str(self.size)))
        out.extend(("col", name) for name in self.columns)
        return out

    def query_string(self, **changes: Any) -> str:
        """``state=…&round=…`` of this query with ``changes`` (e.g. ``page=2``)."""
        return urlencode((replace(self, **changes) if changes else self).params())

    def filter_string(self) -> str:
        """The query string without paging (what a saved view or a bulk run keeps)."""
        return self.query_string(page=1)

    def sorted_by(self, sort: CaseSort) -> str:
        """The query string that sorts by ``sort``: ascending, or reversed if it is already."""
        descending = not self.descending if sort is self.sort else False
        return self.query_string(sort=sort, descending=descending, page=1)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


log = logging.getLogger("dk2020flow.console")

_PARAMS = frozenset({"state", "round", "region", "late", "q", "sort", "page", "size"})
_LATE: dict[str, bool | None] = {"": None, "1": True, "0": False}


def _positive(text: str, param: str) -> int:
    if not text.isdigit() or int(text) < 1 or len(text) > 6:
        raise CaseQueryError(param, text, ("a whole number from 1",))
    return int(text)


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseTable:
    """One page of the table with what the page needs around it."""

    options: TableOptions
    query: CaseQuery
    rows: list[CaseTableRow]
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.size))


@dataclass(frozen=True, kw_only=True, slots=True)
class BulkTrigger:
    """A trigger the user may fire in bulk, with the role it is fired in."""

    trigger: str
    role: str
    title: Text
    requires: tuple[str, ...]
    """Fields the trigger needs (a bulk run takes a comment only: such a trigger is refused)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BulkPlan:
    """What a bulk run would do (the confirmation page); nothing has happened yet."""

    trigger: BulkTrigger
    case_ids: tuple[int, ...]
    query: str
    """The filter the cases were chosen by (empty when picked one by one)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CasesPage:
    """The cases page's reads (``Console.page``)."""

    query: CaseQuery
    """The URL's query as given (``table.query`` is on the page shown: the last one for
    a page past it)."""
    table: CaseTable
    views: list[SavedView]
    triggers: list[BulkTrigger]
    """Empty for a user whose roles act on no case."""


def _bulk_triggers(wf: Workflow, roles: Sequence[str]) -> list[BulkTrigger]:
    acting = acting_roles(list(roles))
    found: dict[str, BulkTrigger] = {}
    for transition in wf.transitions:
        if transition.automatic or transition.trigger in found:
            continue
        named = wf.transitions_named(transition.trigger)
        allowed = {role for t in named for role in t.roles}
        role = next((r for r in acting if r in allowed), None)
        if role is None:
            continue
        requires = tuple(dict.fromkeys(name for t in named for name in t.requires))
        found[transition.trigger] = BulkTrigger(
            trigger=transition.trigger,
            role=role,
            title=transition.title or transition.trigger,
            requires=requires,
        )
    return list(found.values())


@dataclass(kw_only=True)
class _Running:
    lock: threading.Lock = field(default_factory=threading.Lock)
    runs: set[int] = field(default_factory=set)


_DEADLINE_TIMERS: dict[tuple[tuple[int, str], ...], tuple[tuple[int, str, str], ...]] = {}
"""``Console.deadline_timers`` per workflow's versions (id and content hash): a stored
version never changes, so neither does what it says."""

_RUNNING = _Running()
"""The bulk runs this process is working on (so a resume does not start a second worker)."""


class Console:
    """The console's table, views and bulk runs over a ``Service``."""

    def __init__(self, service: Service) -> None:
        self.service = service

    # ------------------------------------------------------------------ the table

    def workflow_name(self, tx: Tx, versions: Sequence[tuple[int, str]] | None = None) -> str:
        """The workflow the table shows: the only one, else the one with the most cases
        (``versions``: ``tx.definition_names()``, when the caller has read them)."""
        found = tx.definition_names() if versions is None else versions
        names = sorted({name for _, name in found})
        if not names:
            raise NotFoundError(
                "no workflow is loaded; load one with `dk2020flow workflow load` "
                "(or run `dk2020flow demo`)"
            )
        if len(names) == 1:
            return names[0]
        now = self.service.clock.now()
        counts = {
            name: tx.case_table(CaseTableQuery(workflow=name, now=now, limit=0)).total
            for name in names
        }
        return max(names, key=lambda name: counts[name])

    def options(self) -> TableOptions:
        with self.service.store.read() as tx:
            return self._options(tx)

    def _options(self, tx: Tx, versions: Sequence[tuple[int, str]] | None = None) -> TableOptions:
        versions = tx.definition_names() if versions is None else versions
        wf = self._latest(tx, self.workflow_name(tx, versions), versions)
        return TableOptions(workflow=wf.workflow, regions=tuple(tx.regions()))

    def _latest(
        self, tx: Tx, workflow: str, versions: Sequence[tuple[int, str]] | None = None
    ) -> CompiledWorkflow:
        """``Service.latest`` (the newest version of ``workflow``) by its id: a version
        compiled once is not read again (``Service.compiled`` keeps it)."""
        found = tx.definition_names() if versions is None else versions
        ids = [definition_id for definition_id, name in found if name == workflow]
        if not ids:
            return self.service.latest(tx, workflow)  # its message names what is loaded
        return self.service.compiled(tx, max(ids))

    def parse(self, params: Iterable[tuple[str, str]]) -> tuple[TableOptions, CaseQuery]:
        """The table's options and the query of the URL (``CaseQueryError`` when invalid)."""
        options = self.options()
        return options, CaseQuery.parse(params, options)

    def table(self, options: TableOptions, query: CaseQuery) -> CaseTable:
        """One page of the table (a page past the last shows the last)."""
        with self.service.store.read() as tx:
            return self._table(tx, options, query)

    def _table(
        self,
        tx: Tx,
        options: TableOptions,
        query: CaseQuery,
        versions: Sequence[tuple[int, str]] | None = None,
    ) -> CaseTable:
        """``versions``: ``tx.definition_names()``, when the caller has read them in ``tx``."""
        page = tx.case_table(self._sql_query(tx, options, query, paged=True, versions=versions))
        if not page.rows and page.total and query.page > 1:
            last = -(-page.total // query.size)
            query = replace(query, page=last)
            page = tx.case_table(self._sql_query(tx, options, query, paged=True, versions=versions))
        return CaseTable(options=options, query=query, rows=page.rows, total=page.total)

    def page(
        self, params: Iterable[tuple[str, str]], *, user_id: int, roles: Sequence[str]
    ) -> CasesPage:
        """What the cases page shows, read in one transaction: the URL's query
        (``CaseQueryError`` when invalid) and its page of the table, the user's saved
        views, and the triggers their roles may fire in bulk. The same as ``parse``,
        ``table``, ``views`` and ``bulk_triggers`` one after the other."""
        with self.service.store.read() as tx:
            versions = tx.definition_names()
            options = self._options(tx, versions)
            query = CaseQuery.parse(params, options)
            table = self._table(tx, options, query, versions)
            views = tx.views_for(user_id, list(roles))
        triggers = _bulk_triggers(options.workflow, roles) if acting_roles(list(roles)) else []
        return CasesPage(query=query, table=table, views=views, triggers=triggers)

    def all_rows(self, options: TableOptions, query: CaseQuery) -> CaseTablePage:
        with self.service.store.read() as tx:
            return tx.case_table(self._sql_query(tx, options, query, paged=False))

    def matching_ids(self, options: TableOptions, query: CaseQuery) -> list[int]:
        with self.service.store.read() as tx:
            return tx.case_table_ids(self._sql_query(tx, options, query, paged=False))

    def _sql_query(
        self,
        tx: Tx,
        options: TableOptions,
        query: CaseQuery,
        *,
        paged: bool,
        versions: Sequence[tuple[int, str]] | None = None,
    ) -> CaseTableQuery:
        now = self.service.clock.now()
        return CaseTableQuery(
            workflow=options.name,
            now=now,
            deadline_timers=self.deadline_timers(tx, options.name, now, versions),
            state=query.state,
            cohort=query.cohort,
            region=query.region,
            late=query.late,
            search=query.search,
            sort=query.sort,
            descending=query.descending,
            limit=query.size if paged else None,
            offset=query.offset if paged else 0,
        )

    def deadline_timers(
        self,
        tx: Tx,
        workflow: str,
        at: dt.datetime,
        stored: Sequence[tuple[int, str]] | None = None,
    ) -> tuple[tuple[int, str, str], ...]:
        """``(definition id, state, timer)`` of every timer a case can be late on, per
        ``engine.timers.is_late`` (asked for a deadline just passed: whether a state's
        timer counts does not depend on the instant). ``stored``: ``tx.definition_names()``,
        when the caller has read them in ``tx``."""
        versions = [
            (definition_id, self.service.compiled(tx, definition_id))
            for definition_id, name in (tx.definition_names() if stored is None else stored)
            if name == workflow
        ]
        key = tuple((definition_id, wf.content_hash) for definition_id, wf in versions)
        found = _DEADLINE_TIMERS.get(key)
        if found is None:
            just_before = at - dt.timedelta(seconds=1)
            timers: list[tuple[int, str, str]] = []
            for definition_id, wf in versions:
                for name, state in wf.workflow.states.items():
                    for timer in state.timers:
                        if timing.is_late(state, timer, just_before, at):
                            timers.append((definition_id, name, timer))
            found = _DEADLINE_TIMERS.setdefault(key, tuple(timers))
        return found

    def csv_text(self, options: TableOptions, query: CaseQuery, language: str) -> str:
        """Every row that matches (all pages) as CSV: a header row, the chosen columns;
        with a byte-order mark so that Excel reads the UTF-8 (æøå)."""
        rows = self.all_rows(options, query).rows
        out = io.StringIO()
        out.write("\ufeff")
        writer = csv.writer(out, lineterminator="\r\n")
        da = language == "da"
        writer.writerow(
            [
                "Sag" if da else "Case",
                # What the workflow calls its participants ("Kommune", "City"), as the page.
                text_in(options.workflow.participant, language).strip() or "Organisation",
                "Kode" if da else "Code",
                "Region",
                "Runde" if da else "Round",
                "Tilstand" if da else "State",
                "Siden" if da else "Since",
                "Frist" if da else "Deadline",
                "For sent" if da else "Late",
                *(options.field_title(name, language) for name in query.columns),
            ]
        )
        yes, no = ("ja", "nej") if da else ("yes", "no")
        for row in rows:
            case = row.case
            writer.writerow(
                [
                    case.id,
                    case.organisation_name,
                    case.organisation_code,
                    case.region,
                    options.cohort_title(case.cohort, language),
                    options.state_title(case.state, language),
                    case.entered_at.isoformat(),
                    row.deadline_at.isoformat() if row.deadline_at else "",
                    yes if row.late else no,
                    *(_cell(case.data.get(name)) for name in query.columns),
                ]
            )
        return out.getvalue()

    # ------------------------------------------------------------------ saved views

    def views(self, user_id: int, roles: Sequence[str]) -> list[SavedView]:
        """The user's own views and those shared with a role they hold."""
        with self.service.store.read() as tx:
            return tx.views_for(user_id, list(roles))

    def save_view(
        self,
        *,
        user_id: int,
        roles: Sequence[str],
        name: str,
        query: str,
        shared_role: str | None = None,
    ) -> SavedView:
        """Save ``query`` (a cases table query string, checked here) under ``name``, for
        the user alone or (``shared_role``, one of their roles) for everyone with that role."""
        clean = " ".join(name.split())
        if not clean:
            raise RefusedError(RefusalReason.INVALID_DATA, "give the view a name")
        if len(clean) > MAX_VIEW_NAME:
            raise RefusedError(
                RefusalReason.INVALID_DATA, f"the name is longer than {MAX_VIEW_NAME} characters"
            )
        if shared_role is not None and shared_role not in roles:
            raise RefusedError(
                RefusalReason.ROLE,
                f"you can share a view only with a role you hold ({', '.join(roles)})",
            )
        from urllib.parse import parse_qsl

        options = self.options()
        parsed = CaseQuery.parse(parse_qsl(query, keep_blank_values=True), options)
        with self.service.store.transaction() as tx:
            return tx.save_view(
                name=clean,
                owner_id=user_id,
                shared_role=shared_role,
                query=parsed.filter_string(),
                now=self.service.clock.now(),
            )

    def delete_view(self, *, user_id: int, view_id: int) -> None:
        """Delete one of the user's own views (a view shared with them is not theirs)."""
        with self.service.store.transaction() as tx:
            if not tx.delete_view(view_id, user_id):
                raise NotFoundError(f"you have no saved view {view_id}")

    # ------------------------------------------------------------------ bulk runs

    def bulk_triggers(self, roles: Sequence[str]) -> list[BulkTrigger]:
        """The triggers of the table's workflow that ``roles`` may fire (automatic ones
        excluded), each with the first of the user's acting roles that may fire it."""
        with self.service.store.read() as tx:
            versions = tx.definition_names()
            wf = self._latest(tx, self.workflow_name(tx, versions), versions).workflow
        return _bulk_triggers(wf, roles)

    def plan_bulk(
        self,
        *,
        roles: Sequence[str],
        trigger: str,
        case_ids: Sequence[int] = (),
        query: CaseQuery | None = None,
        options: TableOptions | None = None,
    ) -> BulkPlan:
        """What firing ``trigger`` on the chosen cases (``case_ids``, or every case that
        matches ``query``) would be; refused when the user may not fire it or it needs
        data. Changes nothing."""
        offered = {t.trigger: t for t in self.bulk_triggers(roles)}
        chosen = offered.get(trigger)
        if chosen is None:
            raise RefusedError(
                RefusalReason.ROLE,
                f"your roles may not fire {trigger!r} in bulk; "
                f"you may fire: {', '.join(offered) or 'none'}",
            )
        if chosen.requires:
            raise RefusedError(
                RefusalReason.MISSING_DATA,
                f"{trigger!r} needs {', '.join(chosen.requires)} for each case: "
                "fire it from each case's page, where its form asks for them",
            )
        if query is not None:
            options = options or self.options()
            ids = tuple(self.matching_ids(options, query))
            where = query.filter_string()
        else:
            ids = tuple(dict.fromkeys(case_ids))
            where = ""
            with self.service.store.read() as tx:
                name = self.workflow_name(tx)
                known = tx.load_cases(list(ids))
            missing = [i for i in ids if i not in known or known[i].workflow != name]
            if missing:
                raise NotFoundError(f"no case {missing[0]} in the table")
        if not ids:
            raise RefusedError(RefusalReason.INVALID_DATA, "choose at least one case")
        return BulkPlan(trigger=chosen, case_ids=ids, query=where)

    def start_bulk(self, plan: BulkPlan, *, actor: str, comment: str = "") -> int:
        """Record the run (a pending item per case) with its actor; its id. ``run_bulk``
        then fires the cases."""
        with self.service.store.transaction() as tx:
            return tx.create_bulk_run(
                actor=actor,
                role=plan.trigger.role,
                trigger=plan.trigger.trigger,
                comment=comment,
                data={},
                query=plan.query,
                case_ids=plan.case_ids,
                now=self.service.clock.now(),
            )

    def run_bulk(self, run_id: int) -> BulkRun:
        """Fire the run's pending cases, each in its own transaction through
        ``Service.fire`` (the same checks and audit events as ``case fire``); a refusal
        is recorded with its message and the run goes on.

        If the process stops mid-run, the cases fired so far stay fired and recorded;
        the others stay *pending* (the run's page shows them) until the run is resumed
        (``run_bulk`` again: only pending items are fired). An item whose case was fired
        just before the stop but not yet recorded is fired again on resume, and the
        engine then refuses it (the case has moved on), which is recorded."""
        with _RUNNING.lock:
            if run_id in _RUNNING.runs:
                return self.bulk_run(run_id)
            _RUNNING.runs.add(run_id)
        try:
            run = self.bulk_run(run_id)
            for item in self.bulk_items(run_id):
                if item.status is not BulkItemStatus.PENDING:
                    continue
                status, message = self._fire_one(run, item.case_id)
                with self.service.store.transaction() as tx:
                    tx.finish_bulk_item(run_id, item.case_id, status, message, self._now())
            with self.service.store.transaction() as tx:
                tx.finish_bulk_run(run_id, self._now())
        finally:
            with _RUNNING.lock:
                _RUNNING.runs.discard(run_id)
        return self.bulk_run(run_id)

    def run_bulk_in_background(self, run_id: int) -> None:
        """``run_bulk`` in a thread of this process (the request returns at once)."""
        threading.Thread(
            target=self.run_bulk, args=(run_id,), name=f"bulk-{run_id}", daemon=True
        ).start()

    def may_resume(self, run: BulkRun, *, actor: str, roles: Sequence[str]) -> bool:
        """Whether ``actor`` may resume ``run``: it stopped with cases pending, and it is
        theirs (its cases are fired in its actor's name)."""
        return (
            run.finished_at is None
            and not self.is_running(run.id)
            and run.actor == actor
            and bool(acting_roles(list(roles)))
        )

    def resume_bulk(self, run_id: int, *, actor: str, roles: Sequence[str]) -> None:
        """Fire a stopped run's pending cases again, in a background thread."""
        run = self.bulk_run(run_id)
        if run.actor != actor:
            raise RefusedError(
                RefusalReason.ROLE,
                f"bulk run {run_id} was started by {run.actor}: only they can resume it",
            )
        if not acting_roles(list(roles)):
            raise RefusedError(RefusalReason.ROLE, "your roles may not fire triggers")
        if run.finished_at is None:
            self.run_bulk_in_background(run_id)

    def case_names(self, case_ids: Sequence[int]) -> list[tuple[int, str]]:
        """``(case id, organisation name)`` of the cases, in the order given."""
        with self.service.store.read() as tx:
            found = tx.load_cases(list(case_ids))
        return [
            (case_id, found[case_id].organisation_name if case_id in found else f"#{case_id}")
            for case_id in case_ids
        ]

    def is_running(self, run_id: int) -> bool:
        with _RUNNING.lock:
            return run_id in _RUNNING.runs

    def _fire_one(self, run: BulkRun, case_id: int) -> tuple[BulkItemStatus, str]:
        try:
            self.service.fire(
                f"#{case_id}",
                run.trigger,
                actor=run.actor,
                role=run.role,
                data=dict(run.data),
                comment=run.comment,
            )
        except RefusedError as refused:
            return BulkItemStatus.REFUSED, str(refused)
        except Dk2020flowError as error:
            return BulkItemStatus.FAILED, str(error)
        except Exception as error:  # one case's failure must not stop the run
            log.error(
                "bulk run %s: case %s failed: %s: %s",
                run.id,
                case_id,
                type(error).__name__,
                error,
                extra={"action": "bulk_failed"},
            )
            return BulkItemStatus.FAILED, f"unexpected error ({type(error).__name__}); see the log"
        return BulkItemStatus.DONE, ""

    def _now(self) -> dt.datetime:
        return self.service.clock.now()

    def bulk_run(self, run_id: int) -> BulkRun:
        with self.service.store.read() as tx:
            run = tx.bulk_run(run_id)
        if run is None:
            raise NotFoundError(f"no bulk run {run_id}")
        return run

    def bulk_items(self, run_id: int) -> list[BulkItem]:
        with self.service.store.read() as tx:
            return tx.bulk_items(run_id)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
