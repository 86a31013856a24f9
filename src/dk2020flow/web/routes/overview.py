"""The programme overview (``GET /``): cases per state for each round and region (a
chart and the tables behind it), the cases late on a deadline, the next 14 days, and
the mail waiting for an operator. One service call (``Service.overview``) answers it
all with grouped counts and limited lists, so the page stays fast on 100 000 cases."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from dk2020flow.definition.model import Text, Workflow, text_in
from dk2020flow.store.port import DeadlineLine, OutboxStatus, StateCount
from dk2020flow.web.auth import Principal, signed_in
from dk2020flow.web.charts import Bar, bar_chart
from dk2020flow.web.context import web_context
from dk2020flow.web.i18n import Translator

router = APIRouter()

Staff = Annotated[Principal, Depends(signed_in)]

DAYS_AHEAD = 14
LIST_LIMIT = 50


@dataclass(frozen=True, slots=True)
class Cell:
    count: int
    href: str
    text: str
    """The count as the page writes it."""
    label: str = ""
    """What the cell's link says to a screen reader (a row's cells have one)."""


@dataclass(frozen=True, slots=True)
class Row:
    title: str
    cells: list[Cell]
    total: Cell


@dataclass(frozen=True, slots=True)
class Line:
    """A row of the late cases or the coming deadlines, as the page writes it (the
    texts made here, not by a call per row in the template)."""

    case_id: int
    organisation: str
    state: str
    timer: str
    fired: bool
    at: str
    """When the deadline is (was)."""
    span: str
    """How late the case is, or how long is left."""


@dataclass(frozen=True, slots=True)
class Table:
    columns: list[str]
    rows: list[Row]
    totals: list[Cell]
    total: Cell


class Titles:
    """Names of states, rounds and deadlines in the page's language, from the newest
    version of the workflow (the name itself where it has no title)."""

    def __init__(self, workflows: Mapping[str, Workflow], language: str) -> None:
        self.workflows = workflows
        self.language = language

    def _text(self, text: Text | None, fallback: str) -> str:
        return text_in(text, self.language, fallback) or fallback

    def state(self, workflow: str, state: str) -> str:
        found = self.workflows.get(workflow)
        spec = found.states.get(state) if found else None
        return self._text(spec.title if spec else None, state)

    def cohort(self, workflow: str, cohort: str | None, none: str) -> str:
        if cohort is None:
            return none
        found = self.workflows.get(workflow)
        spec = found.cohorts.get(cohort) if found else None
        return self._text(spec.title if spec else None, cohort)

    def timer(self, workflow: str, state: str, timer: str) -> str:
        found = self.workflows.get(workflow)
        spec = found.states.get(state) if found else None
        entry = spec.timers.get(timer) if spec else None
        return self._text(entry.title if entry else None, timer)

    def text(self, text: Text) -> str:
        return self._text(text, "")


def cases_url(**filters: str | None) -> str:
    """The cases page filtered as given (the cases page reads these query parameters)."""
    given = {k: v for k, v in filters.items() if v}
    return "/cases" + (f"?{urlencode(given)}" if given else "")


def _ordered(names: Iterable[str], order: Sequence[str]) -> list[str]:
    found = set(names)
    return [n for n in order if n in found] + sorted(found.difference(order))


def _table(
    counts: Sequence[StateCount],
    workflow: str,
    states: Sequence[str],
    columns: Sequence[str | None],
    column_of: str,
    titles: Titles,
    column_title: Mapping[str | None, str],
    base: Mapping[str, str | None],
    tr: Translator,
) -> Table:
    """States down, ``columns`` (rounds or regions) across, each cell a link."""
    by: dict[tuple[str, str | None], int] = defaultdict(int)
    for c in counts:
        by[(c.state, getattr(c, column_of))] += c.count
    key = "round" if column_of == "cohort" else "region"

    def link(state: str | None, column: str | None) -> str:
        return cases_url(**{**base, "state": state, key: column or base.get(key)})

    def cell(count: int, href: str, label: str = "") -> Cell:
        return Cell(count, href, tr.number(count), label)

    titled = [column_title[col] for col in columns]

    def row(state: str) -> Row:
        title = titles.state(workflow, state)
        cells = [
            cell(
                by[(state, col)],
                link(state, col),
                tr.t(
                    "overview.cell_link",
                    count=tr.number(by[(state, col)]),
                    state=title,
                    column=name,
                )
                if by[(state, col)]
                else "",
            )
            for col, name in zip(columns, titled, strict=True)
        ]
        return Row(
            title=title,
            cells=cells,
            total=cell(sum(by[(state, col)] for col in columns), link(state, None)),
        )

    rows = [row(state) for state in states]
    totals = [cell(sum(by[(s, col)] for s in states), link(None, col)) for col in columns]
    return Table(
        columns=titled,
        rows=rows,
        totals=totals,
        total=cell(sum(t.count for t in totals), link(None, None)),
    )


def _lines(
    lines: Sequence[DeadlineLine], at: dt.datetime, titles: Titles, tr: Translator, *, late: bool
) -> list[Line]:
    """The late cases (``late``: how late each is) or the coming deadlines (how long is
    left), as the page shows them."""
    return [
        Line(
            case_id=line.case_id,
            organisation=line.organisation,
            state=titles.state(line.workflow, line.state),
            timer=titles.timer(line.workflow, line.state, line.timer),
            fired=line.fired,
            at=tr.datetime(line.deadline_at, "short"),
            span=tr.duration(
                (at - line.deadline_at) if late else (line.deadline_at - at), direction=False
            ),
        )
        for line in lines
    ]


@router.get("/")
def overview(
    request: Request,
    _user: Staff,
    workflow: str = "",
    round: str = "",
    region: str = "",
) -> Response:
    ctx = web_context(request)
    tr = ctx.renderer.translator(request)
    found = ctx.service.overview(ctx.config.clock.now(), days=DAYS_AHEAD, limit=LIST_LIMIT)
    titles = Titles(found.workflows, tr.language)
    names = sorted(
        {c.workflow for c in found.counts},
        key=lambda n: -sum(c.count for c in found.counts if c.workflow == n),
    )
    chosen = workflow if workflow in names else (names[0] if names else "")
    mine = [c for c in found.counts if c.workflow == chosen]
    wf = found.workflows.get(chosen)
    states = _ordered((c.state for c in mine), list(wf.states) if wf else [])
    cohorts = _ordered((c.cohort for c in mine if c.cohort), list(wf.cohorts) if wf else [])
    rounds: list[str | None] = [*cohorts, *([None] if any(c.cohort is None for c in mine) else [])]
    regions = sorted({c.region for c in mine})
    round_ = round if round in cohorts else ""
    region_ = region if region in regions else ""
    none = tr.t("overview.no_round")
    round_titles = {r: titles.cohort(chosen, r, none) for r in rounds}
    several = len(names) > 1
    base = {"workflow": chosen if several else None}
    by_round = _table(
        [c for c in mine if not region_ or c.region == region_],
        chosen,
        states,
        rounds,
        "cohort",
        titles,
        round_titles,
        {**base, "region": region_ or None},
        tr,
    )
    by_region = _table(
        [c for c in mine if not round_ or c.cohort == round_],
        chosen,
        states,
        regions,
        "region",
        titles,
        {r: r for r in regions},
        {**base, "round": round_ or None},
        tr,
    )
    in_scope = [
        c
        for c in mine
        if (not round_ or c.cohort == round_) and (not region_ or c.region == region_)
    ]
    per_state = {s: sum(c.count for c in in_scope if c.state == s) for s in states}
    scope = ", ".join(
        [
            round_titles[round_] if round_ else tr.t("overview.all_rounds"),
            region_ or tr.t("overview.all_regions"),
        ]
    )
    bars = [Bar(titles.state(chosen, s), n, tr.number(n)) for s, n in per_state.items()]
    chart = bar_chart(
        bars,
        chart_id="overview-chart",
        title=tr.t("overview.chart_title", scope=scope),
        desc=tr.t(
            "overview.chart_desc", values="; ".join(f"{b.label}: {b.value_text}" for b in bars)
        ),
    )
    return ctx.renderer.render(
        request,
        "overview/index.html",
        {
            "nav": "nav.overview",
            "o": found,
            "titles": titles,
            "names": names,
            "chosen": chosen,
            "several": several,
            "cohorts": cohorts,
            "round_titles": round_titles,
            "regions": regions,
            "round": round_,
            "region": region_,
            "scope_round": round_titles[round_] if round_ else tr.t("overview.all_rounds"),
            "scope_region": region_ or tr.t("overview.all_regions"),
            "by_round": by_round,
            "by_region": by_region,
            "chart": chart,
            "late": _lines(found.late, found.at, titles, tr, late=True),
            "deadlines": _lines(found.deadlines, found.at, titles, tr, late=False),
            "late_url": cases_url(late="1", workflow=chosen if several else None),
            "parked": found.outbox.get(OutboxStatus.PARKED, 0),
            "dead": found.outbox.get(OutboxStatus.DEAD, 0),
            "days": DAYS_AHEAD,
        },
    )
