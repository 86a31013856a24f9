"""What the portal's and the console's document routes share: reading an upload form
and handing its file to ``Service.documents.attach``, the refusals' messages, and the
download's response.

Each route checks who the caller is and picks the role (the portal from the person's
roles on the case, the console from the account's); ``receive`` then does the rest and
answers ``None`` (stored) or a ``Refusal`` the route shows on its page with the form
again. Nothing is stored on a refusal (``attach`` leaves no row or file behind). The
file streams from the request into ``attach`` (web/uploads.py): a declared body over the
document's limit is refused before a byte is read, and a refusal before the body's end
closes the connection (``closing``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dk2020flow.definition.model import Workflow
from dk2020flow.errors import RefusalReason, RefusedError
from dk2020flow.service.documents import DocumentContent
from dk2020flow.web.context import web_context
from dk2020flow.web.uploads import FIELDS_LIMIT, MultipartUpload, UploadError, megabytes, too_long


async def streamed_form(request: Request) -> MultipartUpload:
    """The upload form read up to its file part, its CSRF token checked (the file's
    bytes are read by ``attach``, as they arrive: web/uploads.py)."""
    sent = MultipartUpload(request)
    try:
        await sent.open()
    except UploadError as error:
        sent.error = str(error)
    sent.check_csrf()
    return sent


Streamed = Annotated[MultipartUpload, Depends(streamed_form)]


@dataclass(frozen=True)
class Refusal:
    """Why an upload was not stored, and the status to answer with (None: the page's
    usual one, 422 for data and 409 otherwise)."""

    error: RefusedError
    status_code: int | None = None


def closing(response: Response, sent: MultipartUpload) -> Response:
    """A refusal before the body's end closes the connection: the rest is never read."""
    if not sent.finished:
        response.headers["connection"] = "close"
    return response


def upload_role(workflow: Workflow, slot: str, roles: Sequence[str]) -> str | None:
    """The role of ``roles`` to upload ``slot`` in: the first the workflow lets upload it,
    else the first (``attach`` then refuses it, and logs the refusal on the case)."""
    allowed = workflow.upload_roles(slot)
    return next((r for r in roles if r in allowed), roles[0] if roles else None)


def receive(
    request: Request,
    workflow: Workflow,
    ref: str,
    slot: str,
    sent: MultipartUpload,
    *,
    actor: str,
    roles: Sequence[str],
) -> Refusal | None:
    """Store the form's file as document ``slot`` of case ``ref`` (of ``workflow``),
    uploaded by ``actor`` in one of ``roles`` (``upload_role``); None: stored, else why
    not."""
    spec = workflow.documents.get(slot)
    limit = spec.max_bytes if spec is not None else None
    role = upload_role(workflow, slot, roles)
    ctx = web_context(request)
    tr = ctx.renderer.translator(request)
    if limit is not None and too_long(request, limit, FIELDS_LIMIT):
        text = tr.t("portal.upload.too_large", document=slot, size=megabytes(limit))
        return Refusal(RefusedError(RefusalReason.INVALID_DATA, text), 413)
    if sent.error is not None:
        return Refusal(RefusedError(RefusalReason.INVALID_DATA, sent.error))
    if not sent.has_file:
        return Refusal(RefusedError(RefusalReason.MISSING_DATA, tr.t("portal.upload.no_file")))
    try:
        ctx.service.documents.attach(
            ref, slot, sent, filename=sent.filename or "", actor=actor, role=role
        )
    except UploadError as error:
        return Refusal(RefusedError(RefusalReason.INVALID_DATA, str(error)))
    except RefusedError as refused:
        return Refusal(refused, 413 if getattr(refused, "problem", None) == "size" else None)
    return None


def download(found: DocumentContent) -> Response:
    """A document's bytes as an attachment (checked against its checksum as they go)."""
    document = found.document
    return StreamingResponse(
        found.chunks,
        media_type=document.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(document.filename)}",
            "Content-Length": str(document.size),
        },
    )
