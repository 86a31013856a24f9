"""The participants' portal: "my cases", one case, its actions, events and documents.

Every route depends on ``web.auth.participant`` (staff get 403) and, for a case, on
``service.portal.case_access``: a case of an organisation the person is no contact of
answers 403 and nothing is read or changed (``tests/web/test_portal_privacy.py``
walks every route). The person acts in their roles *on that case*; an action goes
through ``Service.fire`` and an upload through ``Service.documents.attach``, so the
engine's refusals are the console's and the CLI's. Every form is a plain POST with
the CSRF token (no JavaScript needed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dk2020flow.errors import RefusalReason, RefusedError
from dk2020flow.service.casepage import role_to_fire
from dk2020flow.service.documents import CaseDocuments
from dk2020flow.service.portal import (
    NotYourCaseError,
    PortalCase,
    case_access,
    event_calendar,
    my_cases,
    portal_case,
)
from dk2020flow.service.privacy import record_read
from dk2020flow.web import document_upload, forms
from dk2020flow.web.auth import Forbidden, Principal, participant
from dk2020flow.web.context import web_context
from dk2020flow.web.document_upload import Streamed, closing
from dk2020flow.web.uploads import streamed

router = APIRouter()

Participant = Annotated[Principal, Depends(participant)]
DATA_REASONS = frozenset({RefusalReason.MISSING_DATA, RefusalReason.INVALID_DATA})


async def submitted_form(request: Request) -> AsyncIterator[FormData]:
    """The posted form (an async dependency: the endpoints stay plain ``def``); its
    uploaded files are closed (their temporary files removed) after the response."""
    form = await request.form()
    try:
        yield form
    finally:
        await form.close()


Posted = Annotated[FormData, Depends(submitted_form)]


def portal_path(case_id: int) -> str:
    return f"/portal/cases/{case_id}"


def _access(request: Request, principal: Principal, case_id: int) -> tuple[Any, Any, Any]:
    try:
        return case_access(web_context(request).service, case_id, principal.case_roles)
    except NotYourCaseError:
        raise Forbidden from None


def _documents(request: Request, case_id: int, roles: tuple[str, ...]) -> CaseDocuments | None:
    service = web_context(request).service
    try:
        return service.documents.case_documents(f"#{case_id}", roles=roles)
    except RefusedError:
        return None


@router.get("/portal")
def my_cases_page(request: Request, principal: Participant) -> Response:
    """The person's cases: where each stands, what is expected of them and by when."""
    ctx = web_context(request)
    tr = ctx.renderer.translator(request)
    cases = my_cases(
        ctx.service,
        principal.case_roles,
        email=principal.email,
        language=tr.language,
        now=ctx.config.clock.now(),
    )
    return ctx.renderer.render(request, "portal/index.html", {"cases": cases, "nav": "portal"})


def _render_case(
    request: Request,
    principal: Principal,
    case_id: int,
    *,
    done: str = "",
    failure: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    ctx = web_context(request)
    tr = ctx.renderer.translator(request)
    try:
        # The access check and the page's reads in one transaction.
        view: PortalCase = portal_case(
            ctx.service,
            case_id,
            principal.case_roles,
            email=principal.email,
            language=tr.language,
            now=ctx.config.clock.now(),
        )
    except NotYourCaseError:
        raise Forbidden from None
    record_read(
        ctx.service, actor=principal.email, actor_kind="participant", via="portal", case_id=case_id
    )
    documents = _documents(request, case_id, view.roles)
    uploadable = (
        ()
        if documents is None or view.case.closed
        else tuple(s for s in documents.slots if set(s.upload_roles) & set(view.roles))
    )
    return ctx.renderer.render(
        request,
        "portal/case.html",
        {
            "view": view,
            "page": view.page,
            "case": view.case,
            "documents": documents,
            "uploadable": uploadable,
            "done": done,
            "failure": failure,
            "forms": forms,
            "answer_name": answer_name,
            "case_path": portal_path(case_id),
            "nav": "portal",
        },
        status_code=status_code,
    )


@router.get("/portal/cases/{case_id}")
def case_page(request: Request, case_id: int, principal: Participant, done: str = "") -> Response:
    """One of the person's cases: the path, the actions, deadlines, events, mail and
    documents (403 for a case that is not theirs: ``_render_case``)."""
    tr = web_context(request).renderer.translator(request)
    text = tr.t(f"portal.done.{done}") if done in ("fired", "uploaded", "answered") else ""
    return _render_case(request, principal, case_id, done=text)


def _refused(
    request: Request,
    principal: Principal,
    case_id: int,
    form: str,
    error: RefusedError,
    values: dict[str, str],
    status_code: int | None = None,
) -> Response:
    data_problem = error.reason in DATA_REASONS
    return _render_case(
        request,
        principal,
        case_id,
        failure={"form": form, "message": str(error), "values": values},
        status_code=status_code or (422 if data_problem else 409),
    )


@router.post("/portal/cases/{case_id}/fire/{trigger}")
def fire(
    request: Request, case_id: int, trigger: str, form: Posted, principal: Participant
) -> Response:
    """Take an action the workflow allows the person's roles on this case."""
    case, wf, roles = _access(request, principal, case_id)
    sent = forms.action_form(wf.workflow, form)
    if sent.role is not None and sent.role not in roles:
        raise Forbidden
    role = sent.role or role_to_fire(wf, case, trigger, roles)
    try:
        web_context(request).service.fire(
            f"#{case_id}",
            trigger,
            actor=principal.email,
            role=role,
            data=sent.data,
            comment=sent.comment,
        )
    except RefusedError as refused:
        return _refused(request, principal, case_id, f"fire:{trigger}", refused, sent.values)
    return RedirectResponse(
        f"{portal_path(case_id)}?{urlencode({'done': 'fired'})}", status_code=303
    )


def answer_name(item: str) -> str:
    """The form field of the answer to checklist item ``item``."""
    return f"answer:{item}"


@router.post("/portal/cases/{case_id}/checklists/{checklist}/answers")
def answer_checklist(
    request: Request, case_id: int, checklist: str, form: Posted, principal: Participant
) -> Response:
    """Answer the reviewer's comments on the items that need revision (those answered
    anew: a field left as it was is not sent), as the person's role on the case that the
    checklist's ``answered_by`` names; the engine refuses the rest."""
    case, wf, roles = _access(request, principal, case_id)
    spec = wf.workflow.checklists.get(checklist)
    answered_by = spec.answered_by if spec is not None else ()
    role = next((r for r in roles if r in answered_by), roles[0])
    recorded = case.checklists.get(checklist, {})
    values = forms.text_values(form)
    sent = {k: v for k, v in values.items() if k != forms.CSRF}
    answers: dict[str, str] = {}
    for item in spec.items if spec is not None else ():
        text = values.get(answer_name(item), "").strip()
        before = recorded[item].answer if item in recorded else ""
        if text and text != before:
            answers[item] = text
    service = web_context(request).service
    try:
        if not answers and spec is not None:
            tr = web_context(request).renderer.translator(request)
            raise RefusedError(RefusalReason.MISSING_DATA, tr.t("portal.answers.none"))
        service.answer(f"#{case_id}", checklist, answers, actor=principal.email, role=role)
    except RefusedError as refused:
        return _refused(request, principal, case_id, f"answer:{checklist}", refused, sent)
    return RedirectResponse(
        f"{portal_path(case_id)}?{urlencode({'done': 'answered'})}#checklist-{checklist}",
        status_code=303,
    )


@router.get("/portal/cases/{case_id}/events/{event}.ics")
def event_ics(request: Request, case_id: int, event: str, principal: Participant) -> Response:
    """A programme event of the case's round, for the person's calendar."""
    case, wf, _roles = _access(request, principal, case_id)
    tr = web_context(request).renderer.translator(request)
    content = event_calendar(wf.workflow, case, event, tr.language)
    if content is None:
        from starlette.exceptions import HTTPException

        raise HTTPException(404)
    return Response(
        content,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{quote(event)}.ics"'},
    )


@router.get("/portal/cases/{case_id}/documents/{document_id}")
def download(request: Request, case_id: int, document_id: int, principal: Participant) -> Response:
    """A document of the case (its bytes checked against the recorded checksum)."""
    _case, _wf, roles = _access(request, principal, case_id)
    found = web_context(request).service.documents.content(f"#{case_id}", document_id, roles=roles)
    return document_upload.download(found)


@router.post("/portal/cases/{case_id}/documents/{slot}")
@streamed
def upload(
    request: Request, case_id: int, slot: str, sent: Streamed, principal: Participant
) -> Response:
    """Upload a document the workflow declares and the person's roles may upload; the
    file streams into ``attach`` (web/uploads.py), which refuses it past the document's
    limit (413, the connection closed)."""
    _case, wf, roles = _access(request, principal, case_id)
    refusal = document_upload.receive(
        request, wf.workflow, f"#{case_id}", slot, sent, actor=principal.email, roles=roles
    )
    if refusal is not None:
        response = _refused(
            request, principal, case_id, f"upload:{slot}", refusal.error, {}, refusal.status_code
        )
        return closing(response, sent)
    return RedirectResponse(
        f"{portal_path(case_id)}?{urlencode({'done': 'uploaded'})}", status_code=303
    )
