"""The page for one case, and its actions: fire a trigger, move a deadline, record a
checklist, download or upload a document.

Every change goes through the service (``Service.fire`` / ``extend`` / ``check``),
in the role the user acts in, so the engine decides exactly as for
``dk2020flow case fire``: a refusal says why, changes nothing (a refusal for the role
is logged on the case, as the CLI's is) and shows the form again with the engine's
message (422 for data, 409 otherwise). A change that is done redirects back to the
page (303) with a note of what was done. With htmx a form swaps the page's main part
(``block="main"``), with the same HTML. Documents are read and uploaded through
``Service.documents`` as the portal's are (web/document_upload.py holds what both share):
the upload form is plain multipart (no htmx), streamed into ``attach``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dk2020flow.errors import RefusalReason, RefusedError
from dk2020flow.service.casepage import (
    ITEM_STATUSES,
    CasePage,
    case_page,
    case_workflow,
    checklist_role,
    extend_role,
    role_to_fire,
    title,
)
from dk2020flow.service.documents import CaseDocuments
from dk2020flow.service.privacy import record_read
from dk2020flow.service.roles import acting_roles
from dk2020flow.web import document_upload, forms
from dk2020flow.web.auth import Forbidden, Principal, acting_staff, signed_in
from dk2020flow.web.context import web_context
from dk2020flow.web.diagram import workflow_outline, workflow_svg
from dk2020flow.web.document_upload import Streamed, closing
from dk2020flow.web.rendering import is_htmx
from dk2020flow.web.uploads import streamed

router = APIRouter()


def case_path(case_id: int | None) -> str:
    """The address of a case's page: ``/cases/12`` is case #12
    (``service.casepage.resolve_ref``)."""
    return f"/cases/{case_id}"


Staff = Annotated[Principal, Depends(signed_in)]
"""Reads the case page: every staff role."""
Acting = Annotated[Principal, Depends(acting_staff)]
"""Posts an action: the roles that act on cases (the engine then checks the role)."""

TEMPLATE = "case/page.html"
DATA_REASONS = frozenset({RefusalReason.MISSING_DATA, RefusalReason.INVALID_DATA})


async def submitted_form(request: Request) -> FormData:
    """The posted form (an async dependency: the endpoints stay plain ``def``)."""
    return await request.form()


Posted = Annotated[FormData, Depends(submitted_form)]


def _render(
    request: Request,
    principal: Principal,
    ref: str,
    *,
    done: dict[str, str] | None = None,
    failure: dict[str, Any] | None = None,
    status_code: int = 200,
    workflow: str | None = None,
) -> Response:
    ctx = web_context(request)
    tr = ctx.renderer.translator(request)
    page = case_page(
        ctx.service,
        ref,
        roles=principal.roles,
        language=tr.language,
        now=ctx.config.clock.now(),
        workflow=workflow,
    )
    record_read(
        ctx.service, actor=principal.email, actor_kind="staff", via="console", case_id=page.case.id
    )
    definition = page.workflow.workflow
    name = title(definition.title, tr.language, definition.workflow)
    diagram = workflow_svg(
        page.workflow,
        page.case.state,
        tr.t("case.diagram_title", workflow=name, state=page.state_title),
        language=tr.language,
    )
    documents = _documents(request, principal, page.case.id or 0)
    acting = set(page.roles)
    uploadable = (
        ()
        if documents is None or page.case.closed
        else tuple(s for s in documents.slots if set(s.upload_roles) & acting)
    )
    values = {
        "page": page,
        "documents": documents,
        "uploadable": uploadable,
        "slot_titles": {s.name: s.title for s in documents.slots} if documents else {},
        "case": page.case,
        "nav": "nav.cases",
        "diagram": diagram,
        "outline": workflow_outline(page.workflow, page.case.state, language=tr.language),
        "workflow_name": name,
        "done": _done_text(page, done, tr.t),
        "failure": failure,
        "forms": forms,
        "statuses": ITEM_STATUSES,
        "read_only": not page.roles,
        "case_path": case_path(page.case.id),
    }
    htmx = is_htmx(request)
    return ctx.renderer.render(
        request,
        TEMPLATE,
        values,
        block="main" if htmx else None,
        # htmx swaps only 2xx answers: a refused form comes back as 200 there (it says so).
        status_code=200 if htmx else status_code,
    )


def _documents(request: Request, principal: Principal, case_id: int) -> CaseDocuments | None:
    """The case's documents, if the user's roles may read them (None: they may not)."""
    try:
        return web_context(request).service.documents.case_documents(
            f"#{case_id}", roles=principal.roles
        )
    except RefusedError:
        return None


def _done_text(page: CasePage, done: dict[str, str] | None, t: Any) -> str:
    """The note after a change (from the redirect's query, so never the user's text)."""
    if not done:
        return ""
    what, name = done.get("done", ""), done.get("what", "")
    definition = page.workflow.workflow
    if what == "fire":
        found = definition.transitions_named(name)
        if not found:
            return ""
        return str(t("case.fired", action=title(found[0].title, page.language, name)))
    if what == "extend":
        deadline = next((d for d in page.deadlines if d.timer == name), None)
        return str(t("case.extended", deadline=deadline.title if deadline else name))
    if what == "check":
        checklist = next((c for c in page.checklists if c.name == name), None)
        return str(t("case.checklist_saved", checklist=checklist.title)) if checklist else ""
    if what == "upload":
        spec = definition.documents.get(name)
        return (
            str(t("case.uploaded", document=title(spec.title, page.language, name))) if spec else ""
        )
    return ""


def _after_change(
    request: Request, principal: Principal, case_id: int, what: str, name: str
) -> Response:
    query = urlencode({"done": what, "what": name})
    if is_htmx(request):
        response = _render(request, principal, f"#{case_id}", done={"done": what, "what": name})
        response.headers["HX-Push-Url"] = f"{case_path(case_id)}?{query}"
        return response
    return RedirectResponse(f"{case_path(case_id)}?{query}", status_code=303)


def _refused(
    request: Request,
    principal: Principal,
    case_id: int,
    form: str,
    error: Exception,
    values: dict[str, str],
    status_code: int | None = None,
) -> Response:
    data_problem = not isinstance(error, RefusedError) or error.reason in DATA_REASONS
    return _render(
        request,
        principal,
        f"#{case_id}",
        failure={"form": form, "message": str(error), "values": values},
        status_code=status_code or (422 if data_problem else 409),
    )


def _own_role(principal: Principal, requested: str | None) -> str | None:
    """A role the form names must be one of the user's (roles come from the account)."""
    if requested is not None and requested not in acting_roles(list(principal.roles)):
        raise Forbidden
    return requested


@router.get("/cases/{ref}")
def show_case(
    request: Request,
    ref: str,
    principal: Staff,
    done: str = "",
    what: str = "",
    workflow: str | None = None,
) -> Response:
    """The case: its state on the diagram, fields, deadlines, checklists, history, mail,
    and what the user may do now."""
    return _render(request, principal, ref, done={"done": done, "what": what}, workflow=workflow)


@router.post("/cases/{ref}/fire/{trigger}")
def fire(
    request: Request,
    ref: str,
    trigger: str,
    form: Posted,
    principal: Acting,
) -> Response:
    """Fire ``trigger`` with the form's data, as ``dk2020flow case fire --data`` does."""
    service = web_context(request).service
    case, wf = case_workflow(service, ref)
    sent = forms.action_form(wf.workflow, form)
    role = _own_role(principal, sent.role) or role_to_fire(wf, case, trigger, principal.roles)
    try:
        service.fire(
            f"#{case.id}",
            trigger,
            actor=principal.email,
            role=role,
            data=sent.data,
            comment=sent.comment,
        )
    except RefusedError as refused:
        return _refused(request, principal, case.id or 0, f"fire:{trigger}", refused, sent.values)
    return _after_change(request, principal, case.id or 0, "fire", trigger)


@router.post("/cases/{ref}/extend/{timer}")
def extend(
    request: Request,
    ref: str,
    timer: str,
    form: Posted,
    principal: Acting,
) -> Response:
    """Move one deadline (to a date and time, or by a span), with a reason, as
    ``dk2020flow case extend`` does."""
    service = web_context(request).service
    case, wf = case_workflow(service, ref)
    values = forms.text_values(form)
    try:
        sent = forms.extend_form(form, wf.tz)
    except forms.FormError as problem:
        return _refused(request, principal, case.id or 0, f"extend:{timer}", problem, values)
    role = _own_role(principal, sent.role) or extend_role(wf, case, timer, principal.roles)
    try:
        service.extend(
            f"#{case.id}",
            timer,
            actor=principal.email,
            role=role,
            reason=sent.reason,
            to=sent.to,
            by=sent.by,
        )
    except RefusedError as refused:
        return _refused(request, principal, case.id or 0, f"extend:{timer}", refused, sent.values)
    return _after_change(request, principal, case.id or 0, "extend", timer)


@router.post("/cases/{ref}/checklists/{checklist}")
def record_checklist(
    request: Request,
    ref: str,
    checklist: str,
    form: Posted,
    principal: Acting,
) -> Response:
    """Record the statuses and comments of a checklist's items (those changed), as
    ``dk2020flow case check`` does."""
    service = web_context(request).service
    case, wf = case_workflow(service, ref)
    spec = wf.workflow.checklists.get(checklist)
    recorded_now = case.checklists.get(checklist, {})
    recorded: dict[str, tuple[str | None, str]] = {
        item: (
            recorded_now[item].status if item in recorded_now else None,
            recorded_now[item].comment if item in recorded_now else "",
        )
        for item in (spec.items if spec else {})
    }
    sent = forms.checklist_form(form, recorded)
    role = _own_role(principal, sent.role) or checklist_role(wf, checklist, principal.roles)
    try:
        service.check(
            f"#{case.id}",
            checklist,
            sent.items,
            actor=principal.email,
            role=role,
        )
    except RefusedError as refused:
        return _refused(
            request, principal, case.id or 0, f"check:{checklist}", refused, sent.values
        )
    return _after_change(request, principal, case.id or 0, "check", checklist)


@router.get("/cases/{ref}/documents/{document_id}")
def download_document(request: Request, ref: str, document_id: int, principal: Staff) -> Response:
    """A document of the case, for staff whose roles may read the case's documents (the
    portal's rule: ``admin``, ``read_only`` and the workflow's roles); its bytes are
    checked against the recorded checksum as they are sent."""
    service = web_context(request).service
    case, _wf = case_workflow(service, ref)
    try:
        found = service.documents.content(f"#{case.id}", document_id, roles=principal.roles)
    except RefusedError:
        raise Forbidden from None
    return document_upload.download(found)


@router.post("/cases/{ref}/documents/{slot}")
@streamed
def upload_document(
    request: Request, ref: str, slot: str, sent: Streamed, principal: Acting
) -> Response:
    """Upload document ``slot`` in a role of the user's that the workflow lets upload it
    (``documents.<slot>.roles``); a refusal shows the page with the form's message."""
    case, wf = case_workflow(web_context(request).service, ref)
    held = acting_roles(list(principal.roles))
    refusal = document_upload.receive(
        request, wf.workflow, f"#{case.id}", slot, sent, actor=principal.email, roles=held
    )
    if refusal is not None:
        response = _refused(
            request,
            principal,
            case.id or 0,
            f"upload:{slot}",
            refusal.error,
            {},
            refusal.status_code,
        )
        return closing(response, sent)
    return _after_change(request, principal, case.id or 0, "upload", slot)
