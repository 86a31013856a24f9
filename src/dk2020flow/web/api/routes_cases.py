"""Reading cases: the list (the console's filters and sorts, keyset pages), one case
(fields, deadlines, checklists, documents, the actions the token may take) with its
``ETag``, and a case's history."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from dk2020flow.service import api_queries as reads
from dk2020flow.service.privacy import record_read
from dk2020flow.store.port import CaseSort
from dk2020flow.web.api import bodies, pagination
from dk2020flow.web.api import schemas as s
from dk2020flow.web.api.auth import TokenPrincipal, token
from dk2020flow.web.api.context import api_context
from dk2020flow.web.api.problems import ApiProblem
from dk2020flow.web.api.schemas import FieldProblem

router = APIRouter(tags=["cases"])

Reader = Annotated[TokenPrincipal, Depends(token)]
CaseId = Annotated[
    int, Path(ge=1, le=2**31 - 1, description="The case's number (`#12`).", examples=[1])
]
Text = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]
Name = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
SortName = Literal[
    "organisation",
    "-organisation",
    "region",
    "-region",
    "round",
    "-round",
    "state",
    "-state",
    "since",
    "-since",
    "deadline",
    "-deadline",
]
ETAG_HEADER = {"ETag": {"description": "The case's version, quoted.", "schema": {"type": "string"}}}


def _not_one_of(param: str, value: str, allowed: tuple[str, ...]) -> ApiProblem:
    message = f"{value!r} is not one of: {', '.join(allowed) or 'none'}"
    return ApiProblem(
        422,
        f"{param}: {message}",
        kind="invalid-request",
        errors=[FieldProblem(field=param, message=message, location="query")],
    )


@router.get(
    "/cases",
    summary="Cases, filtered and sorted as the console's table, a page at a time",
)
def cases(
    request: Request,
    _token: Reader,
    workflow: Name = None,
    state: Name = None,
    round: Name = None,
    region: Text = None,
    late: Annotated[
        bool | None, Query(description="true: only cases late on a deadline; false: not late.")
    ] = None,
    q: Annotated[
        str, Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$", description="Part of the name.")
    ] = "",
    sort: SortName = "organisation",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=pagination.MAX_CURSOR)] = None,
) -> s.CaseList:
    ctx = api_context(request)
    choices = reads.filter_choices(ctx.service, workflow)
    if state is not None and state not in choices.states:
        raise _not_one_of("state", state, choices.states)
    if round is not None and round not in choices.cohorts:
        raise _not_one_of("round", round, choices.cohorts)
    if region is not None and region not in choices.regions:
        raise _not_one_of("region", region, choices.regions)
    bound = pagination.fingerprint(
        {
            "workflow": workflow,
            "state": state,
            "round": round,
            "region": region,
            "late": late,
            "q": q.strip(),
            "sort": sort,
        }
    )
    after = pagination.decode(cursor, bound) if cursor else None
    try:
        page = reads.case_keyset_page(
            ctx.service,
            workflow=workflow,
            now=ctx.clock.now(),
            state=state,
            cohort=round,
            region=region,
            late=late,
            search=q,
            sort=CaseSort(sort.removeprefix("-")),
            descending=sort.startswith("-"),
            limit=limit,
            after=after,
        )
    except ValueError as mismatch:  # KeysetMismatchError: a key that does not fit the sort
        raise pagination.invalid(str(mismatch)) from None
    return s.CaseList(
        items=[bodies.list_item(row) for row in page.rows],
        next_cursor=pagination.encode(page.last_key, bound) if page.last_key else None,
    )


@router.get(
    "/cases/{case_id}",
    summary="One case: fields, deadlines, checklists, documents, what the token may do now",
    responses={200: {"headers": ETAG_HEADER}},
)
def case(
    request: Request,
    response: Response,
    case_id: CaseId,
    principal: Reader,
    lang: Annotated[str, Query(pattern=r"^[a-z]{2}$", examples=["en"])] = "en",
) -> s.CaseOut:
    ctx = api_context(request)
    page, documents = reads.case_with_documents(
        ctx.service, case_id, roles=principal.roles, language=lang, now=ctx.clock.now()
    )
    record_read(
        ctx.service, actor=principal.actor, actor_kind="token", via="api", case_id=page.case.id
    )
    response.headers["ETag"] = bodies.etag(page.case)
    return bodies.case(page, documents)


@router.get("/cases/{case_id}/history", summary="A case's history, oldest first")
def history(request: Request, case_id: CaseId, _token: Reader) -> s.History:
    found, events = api_context(request).service.history(f"#{case_id}")
    record_read(
        api_context(request).service,
        actor=_token.actor,
        actor_kind="token",
        via="api",
        case_id=found.id,
    )
    return s.History(
        case_id=found.id or case_id,
        items=[bodies.event(e) for e in sorted(events, key=lambda e: e.seq)],
    )
