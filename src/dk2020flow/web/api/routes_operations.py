"""Operations: the outbox (list, retry) and the scheduler's health, as the console's
Operations page and ``dk2020flow outbox`` / ``scheduler status`` show them.

The outbox is listed without the messages' text and HTML: a sign-in mail carries a
one-time link until it is sent, and no token should read it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request

from dk2020flow.service import api_queries as reads
from dk2020flow.service.roles import OPERATIONS_ROLES
from dk2020flow.store.port import OutboxStatus
from dk2020flow.web.api import bodies, pagination
from dk2020flow.web.api import schemas as s
from dk2020flow.web.api.auth import TokenPrincipal, require_roles, token
from dk2020flow.web.api.context import api_context
from dk2020flow.web.api.problems import ApiProblem

router = APIRouter(tags=["operations"])

Reader = Annotated[TokenPrincipal, Depends(token)]
Operator = Annotated[TokenPrincipal, Depends(require_roles(*sorted(OPERATIONS_ROLES)))]
MessageId = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])]
OVERDUE_MINUTES = 10.0
"""As the console's Operations page judges it."""


@router.get("/outbox", summary="Messages of the outbox, newest first, a page at a time")
def outbox(
    request: Request,
    _token: Reader,
    status: Literal["pending", "sending", "sent", "dead", "parked"] | None = None,
    case_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=pagination.MAX_CURSOR)] = None,
) -> s.OutboxList:
    bound = pagination.fingerprint({"status": status, "case_id": case_id})
    before: int | None = None
    if cursor:
        key = pagination.decode(cursor, bound)
        if len(key) != 1 or not isinstance(key[0], int):
            raise pagination.invalid("it is not one this API made")
        before = key[0]
    found = reads.outbox_page(
        api_context(request).service,
        status=OutboxStatus(status) if status else None,
        case_id=case_id,
        before_id=before,
        limit=limit + 1,
    )
    more = len(found) > limit
    found = found[:limit]
    return s.OutboxList(
        items=[bodies.outbox_message(m) for m in found],
        next_cursor=pagination.encode([found[-1].id], bound) if more and found else None,
    )


@router.post(
    "/outbox/{message_id}/retry",
    summary="Send a dead or parked message again (`dk2020flow outbox retry ID`)",
)
def retry(request: Request, message_id: MessageId, _token: Operator) -> s.OutboxMessageOut:
    ctx = api_context(request)
    done, why = ctx.service.retry_message(message_id, ctx.clock.now())
    if not done:
        raise ApiProblem(409, f"message {message_id} was not retried: {why}", kind="refused")
    return bodies.outbox_message(ctx.service.outbox_message(message_id))


@router.get(
    "/scheduler/health",
    summary="The scheduler's health, as `dk2020flow scheduler status` judges it",
)
def health(request: Request, _token: Reader) -> s.HealthOut:
    ctx = api_context(request)
    now = ctx.clock.now()
    found = ctx.service.scheduler_health(
        now=now,
        wall_now=now,
        stale_seconds=ctx.service.settings.daemon_stale_seconds,
        overdue_minutes=OVERDUE_MINUTES,
    )
    return bodies.health(found)
