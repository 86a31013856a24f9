"""The programme: workflows and their versions (with the diagram and the JSON Schema of
the workflow format), the organisations, and the programme report."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dk2020flow.definition.schema_export import SHIPPED
from dk2020flow.errors import NotFoundError
from dk2020flow.service import api_queries as reads
from dk2020flow.store.port import StoredDefinition
from dk2020flow.web.api import bodies
from dk2020flow.web.api import schemas as s
from dk2020flow.web.api.auth import TokenPrincipal, token
from dk2020flow.web.api.context import api_context
from dk2020flow.web.diagram import workflow_svg

router = APIRouter(tags=["programme"])

Reader = Annotated[TokenPrincipal, Depends(token)]
Language = Annotated[
    str,
    Query(
        pattern=r"^[a-z]{2}$",
        description="The language of titles (ISO 639-1); a title the workflow does not have "
        "in it is in the workflow's first language.",
        examples=["en"],
    ),
]
WorkflowName = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9_]*$", max_length=64, examples=["dk2020"])
]
VersionId = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])]
MAX_REGION = 100


def _versions(request: Request) -> dict[str, list[StoredDefinition]]:
    """Each workflow's versions, newest first."""
    found: dict[str, list[StoredDefinition]] = {}
    for d in sorted(api_context(request).service.definitions(), key=lambda d: -d.id):
        found.setdefault(d.name, []).append(d)
    return found


def _workflow(name: str, versions: list[StoredDefinition], language: str) -> s.WorkflowOut:
    latest = versions[0]
    wf = reads.workflow_of(latest)
    return s.WorkflowOut(
        name=name,
        title=bodies._title(wf.title, language, name),
        latest=bodies.version_summary(latest, latest.id),
        versions=[bodies.version_summary(v, latest.id) for v in versions],
    )


@router.get("/workflows", summary="The workflows loaded, each with its versions")
def workflows(request: Request, _token: Reader, lang: Language = "en") -> s.WorkflowList:
    return s.WorkflowList(
        items=[_workflow(n, v, lang) for n, v in sorted(_versions(request).items())]
    )


def _named(request: Request, name: str) -> list[StoredDefinition]:
    versions = _versions(request).get(name)
    if not versions:
        raise NotFoundError(f"no workflow {name!r} is loaded")
    return versions


@router.get("/workflows/{name}", summary="One workflow with its versions")
def workflow(
    request: Request, name: WorkflowName, _token: Reader, lang: Language = "en"
) -> s.WorkflowOut:
    return _workflow(name, _named(request, name), lang)


def _version(request: Request, name: str, version_id: int) -> tuple[StoredDefinition, int]:
    versions = _named(request, name)
    found = next((v for v in versions if v.id == version_id), None)
    if found is None:
        raise NotFoundError(f"{name} has no version {version_id}")
    return found, versions[0].id


@router.get(
    "/workflows/{name}/versions/{version_id}",
    summary="One version: states, transitions, fields, roles, rounds, checklists, source",
)
def version(
    request: Request,
    name: WorkflowName,
    version_id: VersionId,
    _token: Reader,
    lang: Language = "en",
) -> s.VersionOut:
    found, latest = _version(request, name, version_id)
    base = str(request.scope.get("root_path", "")) + "/v1"
    return bodies.version(found, reads.workflow_of(found), latest, lang, base)


@router.get(
    "/workflows/{name}/versions/{version_id}/diagram.svg",
    summary="The version's state diagram",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}}},
)
def diagram(
    request: Request,
    name: WorkflowName,
    version_id: VersionId,
    _token: Reader,
    lang: Language = "en",
) -> Response:
    found, _ = _version(request, name, version_id)
    wf = reads.workflow_of(found)
    title = f"{bodies._title(wf.title, lang, name)} {found.version_label}"
    svg = workflow_svg(wf, None, title, language=lang)
    return Response(str(svg), media_type="image/svg+xml")


@router.get(
    "/schema/workflow.json",
    summary="The JSON Schema of the workflow file format",
    responses={200: {"content": {"application/schema+json": {"schema": {"type": "object"}}}}},
    response_class=Response,
)
def workflow_schema(_token: Reader) -> Response:
    return Response(SHIPPED.read_text(encoding="utf-8"), media_type="application/schema+json")


@router.get("/organisations", summary="The organisations the database knows")
def organisations(
    request: Request,
    _token: Reader,
    region: Annotated[str | None, Query(max_length=MAX_REGION, pattern=r"^[^\x00-\x1f]*$")] = None,
) -> s.OrganisationList:
    found = api_context(request).service.organisations(region=region)
    return s.OrganisationList(items=[bodies.organisation(m) for m in found])


@router.get(
    "/report",
    summary="The programme report: the numbers of `dk2020flow report --format json`",
    response_model=s.ReportOut,
)
def report(
    request: Request,
    _token: Reader,
    workflow: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)] = None,
) -> Response:
    from dk2020flow.report import to_json

    ctx = api_context(request)
    if workflow is not None:
        _named(request, workflow)
    if not ctx.service.definitions():
        raise NotFoundError("no workflow is loaded: there is nothing to report on")
    found = ctx.service.report(workflow=workflow, now=ctx.clock.now())
    body: Any = json.loads(to_json(found))
    return JSONResponse(body)
