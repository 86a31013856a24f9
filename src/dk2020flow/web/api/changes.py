"""A change to a case through the API: ``If-Match``, ``Idempotency-Key``, the answer.

- ``If-Match: "7"`` (the case's ``ETag``) makes the change conditional: the service
  compares the version in the change's own transaction and refuses with 412 when the
  case has moved on (``PreconditionFailedError``); nothing changes. ``*`` or no header:
  unconditional (the engine still refuses what the state does not allow). If-Match is
  optional: a trigger is already refused when the case is not in a state it fires from,
  so an integration that does not read first keeps working; one that decides on what it
  read sends it.
- ``Idempotency-Key: <1-255 visible characters>`` makes a retry safe: the service keeps
  the key with the answer, in the change's transaction; the same key with the same
  request (method, path, body) gives the same answer again without a change
  (``Idempotent-Replayed: true``); with another request it is refused (422). A refusal
  is not kept: nothing changed, so sending it again decides again.

The answer of a change is the case as it left it (``CaseSummary``), with its new ``ETag``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dk2020flow.engine.records import CaseSnapshot
from dk2020flow.service.tokens import Idempotency, request_fingerprint
from dk2020flow.web.api import bodies
from dk2020flow.web.api.auth import TokenPrincipal
from dk2020flow.web.api.problems import ApiProblem
from dk2020flow.web.api.schemas import FieldProblem

MAX_KEY = 255
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
IF_MATCH_PATTERN = r'^(\*|"[0-9]{1,10}")$'
_KEY = re.compile(KEY_PATTERN)
_ETAG = re.compile(r'^(?:W/)?"(\d{1,10})"$')

IF_MATCH_DOC = (
    'The case\'s ETag as read (`"7"`): the change is made only if the case is still at '
    "that version (else 412). Optional."
)
IDEMPOTENCY_DOC = (
    "A key of your own (1-255 visible ASCII characters, e.g. a UUID): the same key with "
    "the same request answers the same again without a second change."
)


def _header_problem(header: str, message: str) -> ApiProblem:
    return ApiProblem(
        422,
        f"{header}: {message}",
        kind="invalid-request",
        errors=[FieldProblem(field=header, message=message, location="header")],
    )


def expected_version(if_match: str | None) -> int | None:
    """The version ``If-Match`` names (None: no condition, or ``*``)."""
    if if_match is None or if_match.strip() == "*":
        return None
    tags = [tag.strip() for tag in if_match.split(",") if tag.strip()]
    if len(tags) != 1:
        raise _header_problem("If-Match", 'give one entity tag, the case\'s ETag (e.g. "7")')
    found = _ETAG.match(tags[0])
    if found is None or tags[0].startswith("W/"):
        raise _header_problem(
            "If-Match", f'{tags[0][:40]!r} is not a case\'s ETag (a quoted version, e.g. "7")'
        )
    return int(found.group(1))


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _KEY.match(value):
        raise _header_problem(
            "Idempotency-Key", f"use 1 to {MAX_KEY} visible ASCII characters (e.g. a UUID)"
        )
    return value


def respond(case: CaseSnapshot) -> tuple[int, dict[str, Any]]:
    """The answer to a change that was made (and kept with its Idempotency-Key)."""
    return 200, bodies.summary(case).model_dump(mode="json")


def answer(status: int, body: dict[str, Any], *, replayed: bool) -> Response:
    headers = {"ETag": f'"{body.get("version", 0)}"'}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=status, headers=headers)


Change = Callable[..., Any]


def run(
    request: Request,
    principal: TokenPrincipal,
    change: Change,
    change_idempotent: Change,
    *,
    body: Any,
    if_match: str | None,
    key: str | None,
    **arguments: Any,
) -> Response:
    """Make one change through the service (``change``, or ``change_idempotent`` with a
    key) and answer it."""
    expected = expected_version(if_match)
    key = idempotency_key(key)
    if key is None:
        case = change(actor=principal.actor, expected_version=expected, **arguments)
        status, answered = respond(case)
        return answer(status, answered, replayed=False)
    done = change_idempotent(
        actor=principal.actor,
        expected_version=expected,
        idempotency=Idempotency(
            token_id=principal.token_id,
            key=key,
            fingerprint=request_fingerprint(request.method, request.url.path, body),
            respond=respond,
        ),
        **arguments,
    )
    return answer(done.status_code, dict(done.body), replayed=done.replayed)
