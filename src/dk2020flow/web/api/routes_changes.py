"""Changing a case: fire a trigger, move a deadline, record checklist items, hand in a
document — each through the service as ``dk2020flow case fire`` / ``extend`` / ``check``
and ``case attach`` do it, in the role the token acts in, so the engine decides exactly
as for the command line: the same checks, the same refusals (409; 422 for data, naming
the fields; 403 for a role the workflow does not allow, which is logged on the case as
the command line's is) and the same history, with ``token:<name>`` as the actor.

The role: the one the request names (it must be one of the token's), else the first of
the token's acting roles the workflow allows for the change (as the console chooses:
``service.casepage.role_to_fire``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dk2020flow.definition.durations import parse_duration
from dk2020flow.definition.model import MAX_DOCUMENT_BYTES
from dk2020flow.errors import RefusalReason, RefusedError
from dk2020flow.service.casepage import case_workflow, checklist_role, extend_role, role_to_fire
from dk2020flow.web.api import bodies, changes
from dk2020flow.web.api import schemas as s
from dk2020flow.web.api.auth import TokenPrincipal, require_acting
from dk2020flow.web.api.context import api_context
from dk2020flow.web.api.problems import ApiProblem
from dk2020flow.web.api.schemas import FieldProblem
from dk2020flow.web.uploads import BodyUpload, declared_length, megabytes, too_long

router = APIRouter(tags=["changes"])

NAME = r"^[a-z][a-z0-9_]*$"

Acting = Annotated[TokenPrincipal, Depends(require_acting)]
CaseId = Annotated[
    int, Path(ge=1, le=2**31 - 1, description="The case's number (`#12`).", examples=[1])
]
Trigger = Annotated[
    str, Path(pattern=NAME, max_length=64, examples=["decide_participate", "accept_application"])
]
Timer = Annotated[str, Path(pattern=NAME, max_length=64, examples=["reply_deadline"])]
Checklist = Annotated[str, Path(pattern=NAME, max_length=64, examples=["capf"])]
Document = Annotated[str, Path(pattern=NAME, max_length=64, examples=["application"])]
IfMatch = Annotated[
    str | None,
    Header(description=changes.IF_MATCH_DOC, pattern=changes.IF_MATCH_PATTERN, examples=['"1"']),
]
IdempotencyKey = Annotated[
    str | None,
    Header(description=changes.IDEMPOTENCY_DOC, pattern=changes.KEY_PATTERN),
]
CHANGED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The change was made (or, for a repeated Idempotency-Key, it had been).",
        "headers": {
            "ETag": {
                "description": "The case's new version, quoted.",
                "schema": {"type": "string"},
            },
            "Idempotent-Replayed": {
                "description": "`true` when the answer is the one a request with the same "
                "Idempotency-Key got before (nothing changed now).",
                "schema": {"type": "string"},
            },
        },
    }
}


@router.post(
    "/cases/{case_id}/triggers/{trigger}",
    summary="Fire a trigger with its fields, as `dk2020flow case fire --data` does",
    response_model=s.CaseSummary,
    responses=CHANGED,
)
def fire(
    request: Request,
    case_id: CaseId,
    trigger: Trigger,
    principal: Acting,
    payload: Annotated[s.FireRequest, Body()] = s.FireRequest(),  # noqa: B008 - a constant
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    service = api_context(request).service
    case, wf = case_workflow(service, f"#{case_id}")
    role = principal.own_role(payload.role) or role_to_fire(wf, case, trigger, principal.roles)
    return changes.run(
        request,
        principal,
        service.fire,
        service.fire_idempotent,
        body=payload.model_dump(mode="json"),
        if_match=if_match,
        key=idempotency_key,
        ref=f"#{case_id}",
        trigger=trigger,
        role=role,
        data=dict(payload.data),
        comment=payload.comment,
    )


@router.post(
    "/cases/{case_id}/deadlines/{timer}/extend",
    summary="Move a deadline (to an instant, or by a span) with a reason, as `case extend`",
    response_model=s.CaseSummary,
    responses=CHANGED,
)
def extend(
    request: Request,
    case_id: CaseId,
    timer: Timer,
    payload: s.ExtendRequest,
    principal: Acting,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    service = api_context(request).service
    case, wf = case_workflow(service, f"#{case_id}")
    by = None
    if payload.by is not None:
        try:
            by = parse_duration(payload.by)
        except ValueError as bad:
            raise _invalid("by", str(bad)) from None
    if payload.to is not None and not s.EARLIEST <= payload.to <= s.LATEST:
        raise _invalid("to", "give a deadline between 2000 and 2100")
    role = principal.own_role(payload.role) or extend_role(wf, case, timer, principal.roles)
    try:
        return changes.run(
            request,
            principal,
            service.extend,
            service.extend_idempotent,
            body=payload.model_dump(mode="json"),
            if_match=if_match,
            key=idempotency_key,
            ref=f"#{case_id}",
            timer=timer,
            role=role,
            reason=payload.reason,
            to=payload.to,
            by=by,
        )
    except OverflowError:
        raise _invalid("by", "the span moves the deadline past any calendar") from None


@router.post(
    "/cases/{case_id}/checklists/{checklist}",
    summary="Record checklist items' statuses and comments, as `case check` does",
    response_model=s.CaseSummary,
    responses=CHANGED,
)
def record_checklist(
    request: Request,
    case_id: CaseId,
    checklist: Checklist,
    payload: s.ChecklistRequest,
    principal: Acting,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    service = api_context(request).service
    _case, wf = case_workflow(service, f"#{case_id}")
    role = principal.own_role(payload.role) or checklist_role(wf, checklist, principal.roles)
    return changes.run(
        request,
        principal,
        service.check,
        service.check_idempotent,
        body=payload.model_dump(mode="json"),
        if_match=if_match,
        key=idempotency_key,
        ref=f"#{case_id}",
        checklist=checklist,
        role=role,
        items={item: (entry.status, entry.comment) for item, entry in payload.items.items()},
    )


def _invalid(field: str, message: str) -> ApiProblem:
    return ApiProblem(
        422,
        f"{field}: {message}",
        kind="invalid-data",
        errors=[FieldProblem(field=field, message=message, location="body")],
    )


# ----------------------------------------------------------------------------- documents

UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    "description": "The file's bytes (its type is read from them, not from its name).",
}


def _too_large(message: str) -> ApiProblem:
    """413, the connection closed: the rest of the body is never read."""
    return ApiProblem(
        413,
        message,
        kind="too-large",
        reason=RefusalReason.INVALID_DATA.value,
        errors=[FieldProblem(field="body", message=message, location="body")],
        headers={"Connection": "close"},
    )


@router.post(
    "/cases/{case_id}/documents/{document}",
    summary="Hand in a document the workflow declares (the body is the file)",
    status_code=201,
    response_model=s.DocumentOut,
    openapi_extra={"requestBody": UPLOAD_BODY},
)
def upload(
    request: Request,
    case_id: CaseId,
    document: Document,
    principal: Acting,
    filename: Annotated[
        str, Query(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f/\\]+$")
    ],
    role: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)] = None,
) -> Response:
    service = api_context(request).service
    _case, wf = case_workflow(service, f"#{case_id}")
    chosen = principal.own_role(role)
    if chosen is None:
        allowed = wf.workflow.upload_roles(document) if document in wf.workflow.documents else ()
        acting = principal.acting
        chosen = next((r for r in acting if r in allowed), acting[0] if acting else None)
    spec = wf.workflow.documents.get(document)
    limit = spec.max_bytes if spec is not None else MAX_DOCUMENT_BYTES
    if too_long(request, limit):
        raise _too_large(
            f"the upload ({declared_length(request)} bytes) is larger than "
            f"{megabytes(limit)} MB, the limit for {document!r}; nothing was stored"
        )
    # The body streams into attach (web/uploads.py): never more than the limit plus one
    # byte is read, and nothing waits on the server's disk.
    body = BodyUpload(request)
    try:
        stored = service.documents.attach(
            f"#{case_id}", document, body, filename=filename, actor=principal.actor, role=chosen
        )
    except RefusedError as refused:
        problem = getattr(refused, "problem", None)
        if problem == "size":
            raise _too_large(str(refused)) from None
        if problem == "type":
            raise ApiProblem(
                415,
                str(refused),
                kind="unsupported-type",
                reason=RefusalReason.INVALID_DATA.value,
                errors=[FieldProblem(field="body", message=str(refused), location="body")],
                headers={} if body.finished else {"Connection": "close"},
            ) from None
        raise
    return JSONResponse(bodies.document(stored).model_dump(mode="json"), status_code=201)
