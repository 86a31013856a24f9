"""Operations: the outbox (parked and dead mail, retry), the scheduler's health, the
workflow versions with their diagram and source, and a migration's dry run and apply.

Every staff role may look; only ``OPERATIONS_ROLES`` may act, through the same service
calls as the CLI (``outbox retry`` → ``Service.retry_message``, ``case migrate`` →
``Service.migrate``): a migration is always shown as a dry run before it is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dk2020flow.definition.graph import to_mermaid
from dk2020flow.definition.loader import load_workflow_text
from dk2020flow.errors import NotFoundError, RefusedError
from dk2020flow.service.migrate import MigrationInterruptedError
from dk2020flow.service.roles import OPERATIONS_ROLES
from dk2020flow.store.port import OutboxStatus, StoredDefinition
from dk2020flow.web.auth import Principal, require_roles, signed_in
from dk2020flow.web.context import web_context
from dk2020flow.web.i18n import Translator

router = APIRouter(prefix="/operations")

Viewer = Annotated[Principal, Depends(signed_in)]
Operator = Annotated[Principal, Depends(require_roles(*sorted(OPERATIONS_ROLES)))]

OUTBOX_LIMIT = 200
OVERDUE_MINUTES = 10.0


def _page(
    request: Request,
    template: str,
    user: Principal,
    values: Mapping[str, Any],
    *,
    status_code: int = 200,
) -> Response:
    ctx = web_context(request)
    return ctx.renderer.render(
        request,
        f"operations/{template}",
        {"nav": "nav.operations", "may_act": user.has(*OPERATIONS_ROLES), **values},
        status_code=status_code,
    )


def _health(request: Request) -> Any:
    ctx = web_context(request)
    now = ctx.config.clock.now()
    return ctx.service.scheduler_health(
        now=now,
        wall_now=now,
        stale_seconds=ctx.service.settings.daemon_stale_seconds,
        overdue_minutes=OVERDUE_MINUTES,
    )


@router.get("")
def index(request: Request, user: Viewer) -> Response:
    health = _health(request)
    return _page(
        request,
        "index.html",
        user,
        {
            "health": health,
            "parked": health.outbox.get(OutboxStatus.PARKED.value, 0),
            "dead": health.outbox.get(OutboxStatus.DEAD.value, 0),
        },
    )


# ----------------------------------------------------------------------------- outbox


def _outbox(
    request: Request, user: Principal, message: str = "", *, error: bool = False
) -> Response:
    service = web_context(request).service
    return _page(
        request,
        "outbox.html",
        user,
        {
            "parked": service.outbox(status=OutboxStatus.PARKED, limit=OUTBOX_LIMIT),
            "dead": service.outbox(status=OutboxStatus.DEAD, limit=OUTBOX_LIMIT),
            "message": message,
            "error": error,
        },
        status_code=409 if error else 200,
    )


@router.get("/outbox")
def outbox(request: Request, user: Viewer, retried: int | None = None) -> Response:
    tr = web_context(request).renderer.translator(request)
    return _outbox(request, user, tr.t("ops.retried", id=retried) if retried else "")


@router.post("/outbox/{message_id}/retry")
def retry(request: Request, message_id: int, user: Operator) -> Response:
    """Send a dead or parked message again (``dk2020flow outbox retry ID``)."""
    ctx = web_context(request)
    done, why = ctx.service.retry_message(message_id, ctx.config.clock.now())
    if done:
        return RedirectResponse(f"/operations/outbox?retried={message_id}", status_code=303)
    tr = ctx.renderer.translator(request)
    return _outbox(request, user, tr.t("ops.retry_refused", id=message_id, why=why), error=True)


# ----------------------------------------------------------------------------- scheduler


@router.get("/scheduler")
def scheduler(request: Request, user: Viewer) -> Response:
    """What ``dk2020flow scheduler status`` shows, judged by the console's clock."""
    ctx = web_context(request)
    health = _health(request)
    alive = {d.id for d in health.daemons_alive}
    return _page(
        request,
        "scheduler.html",
        user,
        {"health": health, "alive": alive, "next_due": ctx.service.next_due_at()},
    )


# ----------------------------------------------------------------------------- workflows


def _newest(definitions: list[StoredDefinition]) -> dict[str, StoredDefinition]:
    newest: dict[str, StoredDefinition] = {}
    for d in definitions:
        if d.name not in newest or d.id > newest[d.name].id:
            newest[d.name] = d
    return newest


@router.get("/workflows")
def workflows(request: Request, user: Viewer) -> Response:
    definitions = web_context(request).service.definitions()
    newest = {d.id for d in _newest(definitions).values()}
    return _page(
        request,
        "workflows.html",
        user,
        {"definitions": sorted(definitions, key=lambda d: (d.name, -d.id)), "newest": newest},
    )


def _diagram(definition: StoredDefinition, tr: Translator) -> tuple[Any, str]:
    """(the diagram as SVG, or None) and the Mermaid text to show when there is none."""
    workflow = load_workflow_text(definition.source_text, definition.source_path).workflow
    title = tr.t("ops.diagram_title", name=definition.name, version=definition.version_label)
    try:
        from dk2020flow.web.diagram import workflow_svg
    except ImportError:  # pragma: no cover - the diagram module ships with the console
        return None, to_mermaid(workflow)
    return workflow_svg(workflow, None, title, language=tr.language), ""


@router.get("/workflows/{definition_id}")
def workflow(request: Request, definition_id: int, user: Viewer) -> Response:
    ctx = web_context(request)
    definitions = ctx.service.definitions()
    found = next((d for d in definitions if d.id == definition_id), None)
    if found is None:
        raise NotFoundError(f"there is no workflow version {definition_id}")
    svg, mermaid = _diagram(found, ctx.renderer.translator(request))
    newest = _newest(definitions)[found.name].id == found.id
    return _page(
        request,
        "workflow.html",
        user,
        {"definition": found, "svg": svg, "mermaid": mermaid, "is_newest": newest},
    )


# ----------------------------------------------------------------------------- migration


class _BadInputError(Exception):
    """A form field the user must correct (the message names it)."""


def _state_map(text: str, tr: Translator) -> dict[str, str]:
    """``OLD=NEW`` lines (``case migrate --map``) as a mapping."""
    pairs: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        old, sep, new = line.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise _BadInputError(tr.t("ops.map_bad", line=number, text=line))
        pairs[old.strip()] = new.strip()
    return pairs


def _migrate_page(
    request: Request,
    user: Principal,
    *,
    chosen: str = "",
    mapping: str = "",
    plan: Any = None,
    error: str = "",
    status_code: int = 200,
) -> Response:
    newest = _newest(web_context(request).service.definitions())
    return _page(
        request,
        "migrate.html",
        user,
        {
            "newest": newest,
            "chosen": chosen or next(iter(sorted(newest)), ""),
            "mapping": mapping,
            "plan": plan,
            "problems": [i for i in plan.items if i.problem] if plan else [],
            "error": error,
            "target_id": newest[chosen].id if chosen in newest else 0,
        },
        status_code=status_code,
    )


@router.get("/migrate")
def migrate_form(request: Request, user: Viewer) -> Response:
    return _migrate_page(request, user)


def _run_migration(
    request: Request, user: Principal, workflow: str, state_map: str, *, dry_run: bool, target: int
) -> Response:
    ctx = web_context(request)
    tr = ctx.renderer.translator(request)
    newest = _newest(ctx.service.definitions())
    try:
        if workflow not in newest:
            raise _BadInputError(tr.t("ops.workflow_unknown", name=workflow))
        mapping = _state_map(state_map, tr)
        if not dry_run and newest[workflow].id != target:
            raise _BadInputError(tr.t("ops.plan_stale"))
        plan = ctx.service.migrate(
            workflow,
            state_map=mapping,
            actor=user.email,
            dry_run=dry_run,
            now=ctx.config.clock.now(),
        )
    except _BadInputError as bad:
        return _migrate_page(
            request, user, chosen=workflow, mapping=state_map, error=str(bad), status_code=422
        )
    except (RefusedError, MigrationInterruptedError) as refused:
        # Interrupted: the chunks before the failure stay moved; the message says so and
        # that running it again moves the rest.
        return _migrate_page(
            request,
            user,
            chosen=workflow,
            mapping=state_map,
            error=tr.t("ops.refused", why=str(refused)),
            status_code=409,
        )
    problems = any(i.problem for i in plan.items)
    return _migrate_page(
        request,
        user,
        chosen=workflow,
        mapping=state_map,
        plan=plan,
        status_code=409 if problems else 200,
    )


@router.post("/migrate")
def migrate_dry_run(
    request: Request,
    user: Operator,
    workflow: Annotated[str, Form()] = "",
    state_map: Annotated[str, Form()] = "",
) -> Response:
    """The dry run (``dk2020flow case migrate WORKFLOW``): what would move; nothing changes."""
    return _run_migration(request, user, workflow, state_map, dry_run=True, target=0)


@router.post("/migrate/apply")
def migrate_apply(
    request: Request,
    user: Operator,
    workflow: Annotated[str, Form()] = "",
    state_map: Annotated[str, Form()] = "",
    target: Annotated[int, Form()] = 0,
) -> Response:
    """Apply the migration just shown as a dry run (``case migrate … --apply``), unless a
    newer version was loaded since (``target`` is the version the dry run moved to)."""
    return _run_migration(request, user, workflow, state_map, dry_run=False, target=target)
