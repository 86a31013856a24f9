"""The cases table (filter, sort, pages, columns, CSV), saved views and bulk runs.

The table's state lives in the URL (``service.console.CaseQuery``): the filter form
is a plain GET form, and with htmx only the results part is swapped in
(``block="results"``) and the URL pushed, so a view can always be bookmarked. A bad
parameter shows its message with 400 and reads nothing else.

Bulk: the table's checkboxes (or "all that match") and a trigger go to a
confirmation page (``POST /bulk``, nothing changes), whose button starts the run
(``POST /bulk/run``); ``GET /bulk/{id}`` shows it. Everything the run does goes
through ``Service.console`` (each case through ``Service.fire``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dk2020flow.errors import NotFoundError, RefusedError
from dk2020flow.service.console import (
    SYNC_BULK_LIMIT,
    BulkPlan,
    CaseQuery,
    CaseQueryError,
    TableOptions,
)
from dk2020flow.service.roles import acting_roles
from dk2020flow.store.port import CaseSort, CaseTableRow
from dk2020flow.web.auth import Principal, acting_staff, signed_in
from dk2020flow.web.context import web_context
from dk2020flow.web.i18n import Translator
from dk2020flow.web.rendering import is_htmx, participant_noun

router = APIRouter()

Viewer = Annotated[Principal, Depends(signed_in)]
"""Any staff role may read the table and keep views."""
Actor = Annotated[Principal, Depends(acting_staff)]
"""Bulk runs need a role that acts on cases (not ``read_only``, not ``admin`` alone)."""

SORT_LABELS = {
    CaseSort.REGION: "cases.region",
    CaseSort.ROUND: "cases.round",
    CaseSort.STATE: "cases.state",
    CaseSort.SINCE: "cases.since",
    CaseSort.DEADLINE: "cases.deadline",
}
"""The columns' headers but the organisation's: the workflow's participant noun."""
CONFIRM_SHOWN = 50
"""Cases listed by name on the confirmation page (the count is always shown)."""


@dataclass(frozen=True, slots=True)
class Line:
    """A row of the table with the texts it shows, made here rather than by calls per
    row in the template (a page has 25-100 rows)."""

    row: CaseTableRow
    cohort: str
    state: str
    since: str
    deadline: str


def _lines(rows: Sequence[CaseTableRow], options: TableOptions, tr: Translator) -> list[Line]:
    language = tr.text_language
    return [
        Line(
            row=row,
            cohort=options.cohort_title(row.case.cohort, language),
            state=options.state_title(row.case.state, language),
            since=tr.date(row.case.entered_at),
            deadline=tr.date(row.deadline_at),
        )
        for row in rows
    ]


def _problem(request: Request, error: CaseQueryError) -> Response:
    return web_context(request).renderer.render(
        request,
        "cases/problem.html",
        {"error": error, "nav": "nav.cases"},
        status_code=400,
    )


def _parse(request: Request, params: list[tuple[str, str]]) -> tuple[TableOptions, CaseQuery]:
    return web_context(request).service.console.parse(params)


@router.get("/cases")
def cases_page(request: Request, user: Viewer) -> Response:
    """The cases table; with htmx (not a history restore) only its results part."""
    console = web_context(request).service.console
    try:
        # One read transaction for the page: its query, rows, views and bulk triggers.
        page = console.page(
            list(request.query_params.multi_items()), user_id=user.user_id, roles=user.roles
        )
    except CaseQueryError as error:
        return _problem(request, error)
    table = page.table
    tr = web_context(request).renderer.translator(request)
    values: dict[str, Any] = {
        "nav": "nav.cases",
        "table": table,
        "lines": _lines(table.rows, table.options, tr),
        "options": table.options,
        "q": page.query,
        "sorts": list(CaseSort),
        "sort_titles": _sort_titles(request, table.options),
        "views": page.views,
        "triggers": page.triggers,
        "may_act": bool(acting_roles(user.roles)),
        "page_links": _page_links(table.query.page, table.pages),
    }
    partial = is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"
    return web_context(request).renderer.render(
        request,
        "cases/index.html",
        values,
        block="results" if partial else None,
        headers={"vary": "HX-Request"},
    )


def _sort_titles(request: Request, options: TableOptions) -> dict[CaseSort, str]:
    tr = web_context(request).renderer.translator(request)
    titles = {sort: tr.t(key) for sort, key in SORT_LABELS.items()}
    return {CaseSort.ORGANISATION: participant_noun(options.workflow, tr), **titles}


def _page_links(page: int, pages: int) -> list[int | None]:
    """The page numbers to link (None for a gap): first, last, and two around ``page``."""
    wanted = {1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)}
    links: list[int | None] = []
    for number in sorted(wanted):
        if links and links[-1] is not None and number > links[-1] + 1:
            links.append(None)
        links.append(number)
    return links


@router.get("/cases.csv")
def cases_csv(request: Request, _user: Viewer) -> Response:
    """Every row that matches the filter (all pages), UTF-8 with a BOM for Excel."""
    ctx = web_context(request)
    try:
        options, query = _parse(request, list(request.query_params.multi_items()))
    except CaseQueryError as error:
        return _problem(request, error)
    language = ctx.renderer.translator(request).language
    text = ctx.service.console.csv_text(options, query, language)
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="cases.csv"'},
    )


# ---------------------------------------------------------------------- saved views


async def posted_form(request: Request) -> dict[str, list[str]]:
    """The submitted form's text values, each name with all its values (the CSRF check
    read the form already; Starlette keeps it)."""
    form = await request.form()
    values: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            values.setdefault(key, []).append(value)
    return values


Posted = Annotated[dict[str, list[str]], Depends(posted_form)]


def _one(form: dict[str, list[str]], key: str) -> str:
    return (form.get(key) or [""])[0]


@router.post("/cases/views")
def save_view(request: Request, form: Posted, user: Viewer) -> Response:
    """Save the table's current query under a name (for the user, or shared with a role)."""
    query = _one(form, "query")
    try:
        web_context(request).service.console.save_view(
            user_id=user.user_id,
            roles=user.roles,
            name=_one(form, "name"),
            query=query,
            shared_role=_one(form, "shared_role") or None,
        )
    except CaseQueryError as error:
        return _problem(request, error)
    return RedirectResponse(f"/cases?{query}" if query else "/cases", status_code=303)


@router.post("/cases/views/{view_id}/delete")
def delete_view(view_id: int, request: Request, form: Posted, user: Viewer) -> Response:
    """Delete one of the user's own saved views."""
    web_context(request).service.console.delete_view(user_id=user.user_id, view_id=view_id)
    return RedirectResponse(_back(form), status_code=303)


# ---------------------------------------------------------------------- bulk runs


def _plan(request: Request, user: Principal, form: dict[str, list[str]]) -> BulkPlan:
    """The run the form asks for (every case of its filter, or the ticked ones)."""
    console = web_context(request).service.console
    trigger = _one(form, "trigger")
    if _one(form, "scope") == "all":
        options, query = console.parse(parse_qsl(_one(form, "query"), keep_blank_values=True))
        return console.plan_bulk(roles=user.roles, trigger=trigger, query=query, options=options)
    ids: list[int] = []
    for value in form.get("case", []):
        if not value.isdigit():
            raise CaseQueryError("case", value, ("a case number",))
        ids.append(int(value))
    return console.plan_bulk(roles=user.roles, trigger=trigger, case_ids=ids)


def _refused(request: Request, form: dict[str, list[str]], refused: Exception) -> Response:
    return web_context(request).renderer.render(
        request,
        "cases/bulk_refused.html",
        {"message": str(refused), "back": _back(form), "nav": "nav.cases"},
        status_code=409,
    )


def _back(form: dict[str, list[str]]) -> str:
    query = _one(form, "query")
    return f"/cases?{query}" if query else "/cases"


@router.post("/bulk")
def confirm_bulk(request: Request, form: Posted, user: Actor) -> Response:
    """The confirmation page: how many cases and which trigger. Nothing changes here."""
    console = web_context(request).service.console
    try:
        plan = _plan(request, user, form)
    except CaseQueryError as error:
        return _problem(request, error)
    except (RefusedError, NotFoundError) as refused:
        return _refused(request, form, refused)
    return web_context(request).renderer.render(
        request,
        "cases/bulk_confirm.html",
        {
            "plan": plan,
            "options": console.options(),
            "shown": console.case_names(plan.case_ids[:CONFIRM_SHOWN]),
            "comment": _one(form, "comment"),
            "scope": _one(form, "scope"),
            "query": _one(form, "query"),
            "back": _back(form),
            "nav": "nav.cases",
        },
    )


@router.post("/bulk/run")
def run_bulk(request: Request, form: Posted, user: Actor) -> Response:
    """Start the confirmed run: recorded at once, then fired case by case (in this
    request for a few cases, else in a background thread); go to its page."""
    console = web_context(request).service.console
    try:
        plan = _plan(request, user, form)
    except CaseQueryError as error:
        return _problem(request, error)
    except (RefusedError, NotFoundError) as refused:
        return _refused(request, form, refused)
    run_id = console.start_bulk(plan, actor=user.email, comment=_one(form, "comment"))
    if len(plan.case_ids) <= SYNC_BULK_LIMIT:
        console.run_bulk(run_id)
    else:
        console.run_bulk_in_background(run_id)
    return RedirectResponse(f"/bulk/{run_id}", status_code=303)


@router.get("/bulk/{run_id}")
def bulk_page(run_id: int, request: Request, user: Viewer) -> Response:
    """A run's progress and the result per case; htmx polls its progress part."""
    console = web_context(request).service.console
    run = console.bulk_run(run_id)
    running = console.is_running(run_id)
    partial = is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"
    return web_context(request).renderer.render(
        request,
        "cases/bulk_run.html",
        {
            "run": run,
            "items": console.bulk_items(run_id),
            "running": running,
            "stopped": run.finished_at is None and not running,
            "may_resume": console.may_resume(run, actor=user.email, roles=user.roles),
            "options": console.options(),
            "nav": "nav.cases",
        },
        block="progress" if partial else None,
        # 286 tells htmx to stop polling: the run is over (or stopped).
        status_code=286 if partial and not running else 200,
    )


@router.post("/bulk/{run_id}/resume")
def resume_bulk(run_id: int, request: Request, _form: Posted, user: Actor) -> Response:
    """Fire a stopped run's pending cases (only its own actor may: they act in their name)."""
    console = web_context(request).service.console
    console.resume_bulk(run_id, actor=user.email, roles=user.roles)
    return RedirectResponse(f"/bulk/{run_id}", status_code=303)
