"""Every error under ``/api`` as an RFC 9457 problem (``application/problem+json``).

``ApiProblem`` is raised by the API's own checks (a token, a role, a cursor, a header);
``add_problem_handlers`` turns it, the service's errors, FastAPI's validation errors,
Starlette's 404 and 405 and anything unexpected into a problem:

==========================  ======  ==========================================
what                        status  type (``https://dk2020flow.example/problems/…``)
==========================  ======  ==========================================
no or a bad token           401     ``unauthorized`` (with ``WWW-Authenticate``)
a role the token lacks      403     ``forbidden``
no such case, route …       404     ``not-found``
a method the route lacks    405     ``method-not-allowed``
the engine refuses          409     ``refused`` (``reason``: which check)
a concurrent change won     409     ``conflict``
If-Match differs            412     ``precondition-failed``
an upload too large         413     ``too-large``
an upload of a wrong type   415     ``unsupported-type``
data the trigger refuses    422     ``invalid-data`` (``errors``: the fields)
a request FastAPI refuses   422     ``invalid-request`` (``errors``)
Idempotency-Key reused      422     ``idempotency-key-reused``
too many requests           429     ``rate-limited`` (with ``Retry-After``)
the server's own failure     500     ``server-error`` (logged; no traceback sent)
the database busy or down   503     ``unavailable``
==========================  ======  ==========================================

A refusal for data names the fields it is about (``errors[].field`` is ``data.<name>``,
or ``comment``), read from the engine's message, which stays the ``detail`` word for word:
the same text as ``dk2020flow case fire`` prints.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dk2020flow.errors import (
    ConflictError,
    Dk2020flowError,
    IdempotencyKeyReusedError,
    NotFoundError,
    PreconditionFailedError,
    RefusalReason,
    RefusedError,
    SchemaBehindError,
    StorageError,
    StorageUnavailableError,
)
from dk2020flow.service.document_storage import DocumentIntegrityError, DocumentStorageError
from dk2020flow.service.tokens import TokenInputError
from dk2020flow.web.api.schemas import FieldProblem, Problem

log = logging.getLogger("dk2020flow.web.api")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://dk2020flow.example/problems/"

TITLES: dict[str, str] = {
    "bad-request": "Bad request",
    "unauthorized": "A valid API token is needed",
    "forbidden": "The token's roles do not allow this",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "refused": "The change was refused",
    "conflict": "The case changed meanwhile",
    "precondition-failed": "The case is not at the version If-Match names",
    "invalid-data": "The data does not fit the workflow",
    "invalid-request": "The request is not valid",
    "idempotency-key-reused": "The Idempotency-Key was used for another request",
    "rate-limited": "Too many requests",
    "too-large": "The upload is too large",
    "unsupported-type": "The upload is not of a type the document allows",
    "server-error": "Something went wrong on the server",
    "unavailable": "The database is busy or unavailable",
}
STATUS_KIND = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "refused",
    412: "precondition-failed",
    413: "too-large",
    415: "unsupported-type",
    422: "invalid-request",
    429: "rate-limited",
    500: "server-error",
    503: "unavailable",
}
DATA_REASONS = frozenset({RefusalReason.MISSING_DATA, RefusalReason.INVALID_DATA})


class ApiProblem(Exception):  # noqa: N818 - named as the answer it becomes
    """An answer of the API's own checks, sent as a problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        errors: Sequence[FieldProblem] = (),
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or STATUS_KIND.get(status, "bad-request")
        self.errors = tuple(errors)
        self.headers = dict(headers or {})
        self.reason = reason


def problem_response(
    request: Request,
    status: int,
    kind: str,
    detail: str,
    *,
    errors: Sequence[FieldProblem] = (),
    headers: Mapping[str, str] | None = None,
    reason: str | None = None,
) -> Response:
    body = Problem(
        type=TYPE_BASE + kind,
        title=TITLES.get(kind, kind),
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=list(errors),
        reason=reason,
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status,
        headers=dict(headers or {}),
        media_type=MEDIA_TYPE,
    )


def problem_of(request: Request, problem: ApiProblem) -> Response:
    return problem_response(
        request,
        problem.status,
        problem.kind,
        problem.detail,
        errors=problem.errors,
        headers=problem.headers,
        reason=problem.reason,
    )


# ----------------------------------------------------------------------------- refusals


def refused_fields(error: RefusedError) -> list[FieldProblem]:
    """The fields a refusal for data is about (``RefusedError.fields``, set where the
    engine refuses): ``data.<name>`` for a case-data field, ``comment`` for the comment;
    each with the refusal's message."""
    message = str(error)
    return [
        FieldProblem(
            field=name if name == "comment" else f"data.{name}", message=message, location="body"
        )
        for name in dict.fromkeys(error.fields)
    ]


def refusal_status(error: RefusedError) -> int:
    """422 for data, 403 for a role the workflow does not allow, 409 for the rest."""
    if error.reason in DATA_REASONS:
        return 422
    if error.reason is RefusalReason.ROLE:
        return 403
    return 409


def refusal_response(request: Request, error: RefusedError) -> Response:
    status = refusal_status(error)
    kind = {422: "invalid-data", 403: "forbidden"}.get(status, "refused")
    return problem_response(
        request,
        status,
        kind,
        str(error),
        errors=refused_fields(error) if status == 422 else (),
        reason=error.reason.value,
    )


# ----------------------------------------------------------------------------- handlers


def _validation_problems(error: RequestValidationError) -> list[FieldProblem]:
    found: list[FieldProblem] = []
    for item in error.errors():
        loc = [str(part) for part in item.get("loc", ())]
        where = loc[0] if loc and loc[0] in ("body", "query", "path", "header") else None
        path = loc[1:] if where else loc
        found.append(
            FieldProblem(
                field=".".join(path) or (where or "request"),
                message=str(item.get("msg", "is not valid")),
                location=where,
            )
        )
    return found


def add_problem_handlers(app: FastAPI) -> None:
    """Every error of ``app`` as a problem."""

    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, error: ApiProblem) -> Response:
        return problem_of(request, error)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        kind = STATUS_KIND.get(error.status_code, "bad-request")
        detail = {
            404: f"there is no {request.method} {request.url.path} in the API "
            "(/api/v1/openapi.json lists what there is)",
            405: f"{request.url.path} does not take {request.method}",
        }.get(error.status_code, str(error.detail))
        return problem_response(
            request, error.status_code, kind, detail, headers=error.headers or None
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        problems = _validation_problems(error)
        detail = "; ".join(f"{p.field}: {p.message}" for p in problems)
        return problem_response(request, 422, "invalid-request", detail, errors=problems)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, error: NotFoundError) -> Response:
        return problem_response(request, 404, "not-found", str(error))

    @app.exception_handler(RefusedError)
    async def refused(request: Request, error: RefusedError) -> Response:
        return refusal_response(request, error)

    @app.exception_handler(ConflictError)
    async def conflict(request: Request, error: ConflictError) -> Response:
        status, kind = _conflict_kind(error)
        return problem_response(request, status, kind, str(error))

    @app.exception_handler(TokenInputError)
    async def token_input(request: Request, error: TokenInputError) -> Response:
        problem = FieldProblem(field=error.field, message=str(error), location="header")
        return problem_response(request, 422, "invalid-request", str(error), errors=[problem])

    @app.exception_handler(Dk2020flowError)
    async def project_error(request: Request, error: Dk2020flowError) -> Response:
        status, kind = _project_kind(error)
        if status >= 500:  # the server's own state (its database, its storage): logged
            _log_failure(request, error)
            detail = (
                "the database is busy or unavailable; try again shortly (nothing changed)"
                if status == 503
                else SERVER_FAILED
            )
            return problem_response(request, status, kind, detail)
        return problem_response(request, status, kind, str(error))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        _log_failure(request, error)
        return problem_response(request, 500, "server-error", SERVER_FAILED)


SERVER_FAILED = (
    "the request failed on the server and changed nothing; the server's log has the details"
)


def _log_failure(request: Request, error: Exception) -> None:
    log.error(
        "unexpected error on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(error).__name__,
        error,
        extra={"action": "api_error"},
    )


def _conflict_kind(error: ConflictError) -> tuple[int, str]:
    """412 for an If-Match that did not hold (``PreconditionFailedError``), else 409."""
    if isinstance(error, PreconditionFailedError):
        return 412, "precondition-failed"
    return 409, "conflict"


def _project_kind(error: Dk2020flowError) -> tuple[int, str]:
    if isinstance(error, IdempotencyKeyReusedError):
        return 422, "idempotency-key-reused"
    if isinstance(error, StorageUnavailableError):
        return 503, "unavailable"
    if isinstance(
        error, StorageError | SchemaBehindError | DocumentStorageError | DocumentIntegrityError
    ):
        return 500, "server-error"
    return 400, "bad-request"


def openapi_problem(description: str, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI response whose body is a ``Problem`` (``application/problem+json``)."""
    response: dict[str, Any] = {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        response["headers"] = dict(headers)
    return response
