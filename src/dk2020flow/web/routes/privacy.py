"""The participant's own data (GDPR's right of access): ``/portal/my-data`` lists what the
programme keeps about the signed-in person, ``/portal/my-data.json`` downloads all of it
with the log of who looked at it. Both read the person's own address only (from the
session, never from the request) and are themselves logged (``service/privacy.py``)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from dk2020flow.service.privacy import EXPORT, MY_DATA, PARTICIPANT, export, my_data, record_read
from dk2020flow.web.auth import Principal, participant
from dk2020flow.web.context import web_context

router = APIRouter()

Participant = Annotated[Principal, Depends(participant)]


def _log(request: Request, principal: Principal, action: str) -> None:
    record_read(
        web_context(request).service,
        actor=principal.email,
        actor_kind=PARTICIPANT,
        via="portal",
        what=MY_DATA,
        subject=principal.email,
        action=action,
    )


@router.get("/portal/my-data")
def my_data_page(request: Request, principal: Participant) -> Response:
    """What the programme keeps about me: contacts, account, sessions, mail, my events,
    and who looked at my data."""
    ctx = web_context(request)
    data = my_data(ctx.service, principal.email)
    _log(request, principal, "read")
    return ctx.renderer.render(
        request,
        "portal/my_data.html",
        {"data": data, "nav": "portal", "current_session": principal.session_id},
    )


@router.get("/portal/my-data.json")
def my_data_export(request: Request, principal: Participant) -> Response:
    """All of it as one JSON file (the download is logged before it is made)."""
    ctx = web_context(request)
    _log(request, principal, EXPORT)
    body = json.dumps(export(my_data(ctx.service, principal.email)), ensure_ascii=False, indent=2)
    return Response(
        body,
        media_type="application/json; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="my-data.json"'},
    )
