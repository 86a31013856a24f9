"""The service's records as the API's bodies (``schemas``): one function per body.

Titles are picked in the request's language from the workflow's ``title: {da, en}``.
A change's answer is built from the case as the change left it (``summary``), inside
the change's transaction when the answer is remembered for its Idempotency-Key, so it
needs nothing but the snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dk2020flow.definition.model import ANY_OPEN_STATE, Workflow, text_in
from dk2020flow.engine.records import CaseSnapshot
from dk2020flow.service.casepage import CasePage
from dk2020flow.service.health import SchedulerHealth
from dk2020flow.store.port import (
    CaseTableRow,
    DaemonInfo,
    Organisation,
    OutboxMessage,
    StoredDefinition,
    StoredDocument,
    StoredEvent,
)
from dk2020flow.web.api import schemas as s


def _title(text: Any, language: str, fallback: str) -> str:
    return text_in(text, language, fallback) or fallback


def etag(case: CaseSnapshot) -> str:
    """A case's entity tag: its version, quoted (``"7"``)."""
    return f'"{case.version}"'


def summary(case: CaseSnapshot) -> s.CaseSummary:
    return s.CaseSummary(**_summary_fields(case))


def _summary_fields(case: CaseSnapshot) -> dict[str, Any]:
    return {
        "id": case.id or 0,
        "workflow": case.workflow,
        "definition_id": case.definition_id,
        "organisation": s.OrganisationRef(
            code=case.organisation_code, name=case.organisation_name, region=case.region
        ),
        "cohort": case.cohort,
        "state": case.state,
        "entered_at": case.entered_at,
        "opened_at": case.opened_at,
        "closed": case.closed,
        "version": case.version,
        "data": dict(case.data),
    }


def list_item(row: CaseTableRow) -> s.CaseListItem:
    return s.CaseListItem(**_summary_fields(row.case), deadline_at=row.deadline_at, late=row.late)


def document(found: StoredDocument) -> s.DocumentOut:
    return s.DocumentOut(
        id=found.id,
        slot=found.slot,
        filename=found.filename,
        content_type=found.content_type,
        size=found.size,
        sha256=found.sha256,
        uploaded_by=found.uploaded_by,
        uploaded_role=found.uploaded_role,
        uploaded_at=found.uploaded_at,
    )


def case(page: CasePage, documents: Sequence[StoredDocument]) -> s.CaseOut:
    return s.CaseOut(
        **_summary_fields(page.case),
        definition_version=page.workflow.workflow.version,
        state_title=page.state_title,
        fields=[
            s.FieldValueOut(name=f.name, type=f.type.value, title=f.title, value=f.value)
            for f in page.fields
        ],
        deadlines=[
            s.DeadlineOut(
                timer=d.timer,
                title=d.title,
                description=d.description,
                deadline_at=d.deadline_at,
                late=d.late,
                fired=d.fired,
                extend_roles=list(d.extend_roles),
                may_extend_as=d.extend_as,
            )
            for d in page.deadlines
        ],
        checklists=[
            s.ChecklistOut(
                name=c.name,
                title=c.title,
                roles=list(c.roles),
                items=[
                    s.ChecklistItemOut(
                        item=row.item,
                        title=row.title,
                        status=row.status,
                        comment=row.comment,
                    )
                    for row in c.items
                ],
                may_record_as=c.edit_as,
            )
            for c in page.checklists
        ],
        documents=[document(d) for d in documents],
        actions=[
            s.ActionOut(
                trigger=a.trigger,
                title=a.title,
                role=a.role,
                roles=list(a.roles),
                fields=[
                    s.InputOut(
                        name=f.name,
                        type=f.type.value,
                        title=f.title,
                        required=f.required,
                        choices=[c.value for c in f.choices],
                        max_length=f.max_length,
                    )
                    for f in a.fields
                ],
            )
            for a in page.actions
        ],
    )


def event(found: StoredEvent) -> s.EventOut:
    record = found.record
    return s.EventOut(
        seq=found.seq,
        at=record.at,
        kind=record.kind.value,
        actor=record.actor,
        role=record.role,
        trigger=record.trigger,
        from_state=record.from_state,
        to_state=record.to_state,
        comment=record.comment,
        data=dict(record.data),
    )


def organisation(found: Organisation) -> s.OrganisationOut:
    return s.OrganisationOut(
        code=found.code, name=found.name, region=found.region, group=found.group
    )


# ----------------------------------------------------------------------------- workflows


def version_summary(found: StoredDefinition, latest_id: int) -> s.VersionSummary:
    return s.VersionSummary(
        id=found.id,
        workflow=found.name,
        version=found.version_label,
        content_hash=found.content_hash,
        loaded_at=found.loaded_at,
        latest=found.id == latest_id,
    )


def version(
    found: StoredDefinition, wf: Workflow, latest_id: int, language: str, base: str
) -> s.VersionOut:
    return s.VersionOut(
        **version_summary(found, latest_id).model_dump(),
        title=_title(wf.title, language, wf.workflow),
        timezone=wf.timezone,
        initial_state=wf.initial_state,
        states=[
            s.StateOut(
                name=name,
                title=_title(state.title, language, name),
                description=state.description,
                initial=name == wf.initial_state,
                terminal=state.terminal,
                timers=list(state.timers),
            )
            for name, state in wf.states.items()
        ],
        transitions=[
            s.TransitionOut(
                trigger=t.trigger,
                title=_title(t.title, language, t.trigger),
                from_states=[ANY_OPEN_STATE] if ANY_OPEN_STATE in t.from_ else list(t.from_),
                to=t.to,
                roles=list(t.roles),
                requires=list(t.requires),
                accepts=list(t.accepts),
                needs_documents=list(getattr(t, "needs_documents", ())),
                automatic=t.automatic,
            )
            for t in wf.transitions
        ],
        fields=[
            s.FieldSpecOut(
                name=name,
                type=spec.type.value,
                title=_title(spec.title, language, name),
                choices=list(spec.choices),
                max_length=spec.max_length,
            )
            for name, spec in wf.fields.items()
        ],
        roles=[
            s.NamedTitle(name=name, title=_title(role.title, language, name))
            for name, role in wf.roles.items()
        ],
        cohorts=[
            s.NamedTitle(name=name, title=_title(cohort.title, language, name))
            for name, cohort in wf.cohorts.items()
        ],
        checklists=[
            s.ChecklistSpecOut(
                name=name,
                title=_title(spec.title, language, name),
                roles=list(spec.roles),
                items=[
                    s.NamedTitle(name=item, title=_title(text, language, item))
                    for item, text in spec.items.items()
                ],
            )
            for name, spec in wf.checklists.items()
        ],
        source=found.source_text,
        diagram=f"{base}/workflows/{found.name}/versions/{found.id}/diagram.svg",
        json_schema=f"{base}/schema/workflow.json",
    )


# ----------------------------------------------------------------------------- operations


def outbox_message(found: OutboxMessage) -> s.OutboxMessageOut:
    return s.OutboxMessageOut(
        id=found.id,
        case_id=found.case_id,
        template=found.template,
        language=found.language,
        to=[s.Address(name=name, address=address) for name, address in found.to],
        cc=[s.Address(name=name, address=address) for name, address in found.cc],
        subject=found.subject,
        status=found.status.value,
        attempts=found.attempts,
        not_before=found.not_before,
        next_attempt_at=found.next_attempt_at,
        created_at=found.created_at,
        sent_at=found.sent_at,
        last_error=found.last_error,
        reason=found.reason,
        message_id=found.message_id,
    )


def _daemon(found: DaemonInfo) -> s.DaemonOut:
    return s.DaemonOut(
        id=found.id,
        host=found.host,
        pid=found.pid,
        started_at=found.started_at,
        last_tick_at=found.last_tick_at,
        last_seen_at=found.last_seen_at,
        stopped_at=found.stopped_at,
    )


def health(found: SchedulerHealth) -> s.HealthOut:
    return s.HealthOut(
        health=found.health.name,
        code=int(found.health),
        now=found.now,
        reasons=list(found.reasons),
        daemons_alive=[_daemon(d) for d in found.daemons_alive],
        last_tick_at=found.last_tick_at,
        due_now=found.due_now,
        overdue=found.overdue,
        overdue_minutes=found.overdue_minutes,
        oldest_unfired=found.oldest_unfired,
        next_due=found.next_due,
        outbox=dict(found.outbox),
    )
