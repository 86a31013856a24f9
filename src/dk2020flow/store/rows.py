"""Rows <-> the port's records: the conversions every concern of the store shares.

No row leaves the store: each ``Sql<Concern>Tx`` (``store/sql/``) and the bulk
writer (``store/bulk.py``) turn rows into frozen records, and records into the
parameters of their statements, here.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Row

from dk2020flow.engine.records import (
    CaseSnapshot,
    ChecklistItem,
    EventKind,
    EventRecord,
    TimerStatus,
)
from dk2020flow.store import tables as t
from dk2020flow.store.port import (
    Contact,
    NewMail,
    Organisation,
    OutboxMessage,
    OutboxStatus,
    ProgrammeTimer,
    StoredDefinition,
    StoredEvent,
    StoredTimer,
)
from dk2020flow.store.types import as_utc

ENV_MAIL_DOMAIN = "DK2020FLOW_MAIL_DOMAIN"
DEFAULT_MAIL_DOMAIN = "dk2020flow.local"


def message_id_for(row_id: int, created_at: dt.datetime, domain: str | None = None) -> str:
    """The stable Message-ID of outbox row ``row_id`` (a resend carries the same one)."""
    domain = domain or os.environ.get(ENV_MAIL_DOMAIN, "").strip() or DEFAULT_MAIL_DOMAIN
    return f"<dk2020flow.{row_id}.{as_utc(created_at):%Y%m%d}@{domain}>"


def case_values(case: CaseSnapshot) -> dict[str, Any]:
    """The columns a change may write (not the identity: workflow, organisation, opened_at)."""
    return {
        "definition_id": case.definition_id,
        "state": case.state,
        "epoch": case.epoch,
        "cohort": case.cohort,
        "data": dict(case.data),
        "checklists": {
            name: {
                item: {"status": entry.status, "comment": entry.comment}
                | ({"answer": entry.answer} if entry.answer else {})
                for item, entry in items.items()
            }
            for name, items in case.checklists.items()
        },
        "entered_at": case.entered_at,
        "closed": case.closed,
    }


def snapshot_columns() -> tuple[Any, ...]:
    """What a case snapshot reads of its organisation (:func:`to_case`), for a select of
    ``t.cases`` joined with ``t.organisations``."""
    m = t.organisations.c
    return (m.name.label("organisation_name"), m.region, m.country, m.subdivision)


def to_case(row: Row[Any]) -> CaseSnapshot:
    """A case row selected with :func:`snapshot_columns` as the engine's snapshot."""
    return CaseSnapshot(
        id=row.id,
        workflow=row.workflow,
        definition_id=row.definition_id,
        organisation_code=row.organisation_code,
        organisation_name=row.organisation_name,
        region=row.region,
        country=row.country,
        subdivision=row.subdivision,
        state=row.state,
        epoch=row.epoch,
        cohort=row.cohort,
        data=dict(row.data),
        checklists={
            name: {
                item: ChecklistItem(
                    status=entry["status"],
                    comment=entry.get("comment", ""),
                    answer=entry.get("answer", ""),
                )
                for item, entry in items.items()
            }
            for name, items in row.checklists.items()
        },
        entered_at=row.entered_at,
        opened_at=row.opened_at,
        version=row.version,
        closed=bool(row.closed),
    )


def to_definition(row: Row[Any]) -> StoredDefinition:
    return StoredDefinition(
        id=row.id,
        name=row.name,
        version_label=row.version_label,
        content_hash=row.content_hash,
        source_text=row.source_text,
        templates=dict(row.templates),
        source_path=row.source_path,
        loaded_at=row.loaded_at,
        implied_defaults=dict(row.implied_defaults or {}),
    )


def to_organisation(row: Row[Any]) -> Organisation:
    return Organisation(
        code=row.code,
        name=row.name,
        region=row.region,
        group=row.group,
        kind=row.kind,
        country=row.country,
        subdivision=row.subdivision,
        language=row.language,
        titles=dict(row.titles or {}),
    )


def to_contact(row: Row[Any]) -> Contact:
    return Contact(
        organisation_code=row.organisation_code,
        role=row.role,
        name=row.name,
        email=row.email,
        language=row.language,
    )


def event_values(case_id: int, rec: EventRecord, epoch: int) -> dict[str, Any]:
    """An event row's insert parameters, without ``seq`` and ``hash``."""
    return {
        "case_id": case_id,
        "at": rec.at,
        "kind": rec.kind.value,
        "actor": rec.actor,
        "role": rec.role,
        "trigger": rec.trigger,
        "from_state": rec.from_state,
        "to_state": rec.to_state,
        "comment": rec.comment,
        "data": dict(rec.data),
        "epoch": epoch,
        "transition": rec.transition,
    }


def to_event(row: Row[Any]) -> StoredEvent:
    return StoredEvent(
        id=row.id,
        case_id=row.case_id,
        seq=row.seq,
        record=EventRecord(
            kind=EventKind(row.kind),
            at=row.at,
            actor=row.actor,
            role=row.role,
            trigger=row.trigger,
            from_state=row.from_state,
            to_state=row.to_state,
            comment=row.comment,
            data=dict(row.data),
            transition=row.transition,
        ),
        epoch=row.epoch,
        hash=row.hash,
    )


def to_timer(row: Row[Any]) -> StoredTimer:
    return StoredTimer(
        id=row.id,
        case_id=row.case_id,
        timer=row.timer,
        kind=row.kind,
        index=row.idx,
        due_at=row.due_at,
        deadline_at=row.deadline_at,
        epoch=row.epoch,
        status=TimerStatus(row.status),
        fired_at=row.fired_at,
        note=row.note,
    )


def to_programme_timer(row: Row[Any]) -> ProgrammeTimer:
    return ProgrammeTimer(
        id=row.id,
        definition_id=row.definition_id,
        cohort=row.cohort,
        event=row.event,
        kind=row.kind,
        index=row.idx,
        due_at=row.due_at,
    )


def addresses(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(name), str(address)) for name, address in value)


def to_message(row: Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        case_id=row.case_id,
        template=row.template,
        language=row.language,
        to=addresses(row.to_addresses),
        cc=addresses(row.cc_addresses),
        subject=row.subject,
        text=row.text,
        html=row.html,
        ics=row.ics,
        status=OutboxStatus(row.status),
        attempts=row.attempts,
        not_before=row.not_before,
        next_attempt_at=row.next_attempt_at,
        lease_until=row.lease_until,
        last_error=row.last_error,
        created_at=row.created_at,
        sent_at=row.sent_at,
        message_id=row.message_id,
        reason=row.reason,
        intent=row.intent,
    )


def with_case(mail: NewMail, case_id: int) -> NewMail:
    return mail if mail.case_id == case_id else replace(mail, case_id=case_id)


def outbox_values(mail: NewMail, row_id: int) -> dict[str, Any]:
    """The outbox row of a new message (every column, so one statement fits all)."""
    return {
        "id": row_id,
        "case_id": mail.case_id,
        "template": mail.template,
        "language": mail.language,
        "to_addresses": [list(pair) for pair in mail.to],
        "cc_addresses": [list(pair) for pair in mail.cc],
        "subject": mail.subject,
        "text": mail.text,
        "html": mail.html,
        "ics": mail.ics,
        "status": mail.status.value,
        "attempts": 0,
        "not_before": mail.not_before,
        "next_attempt_at": mail.not_before,
        "lease_until": None,
        "last_error": "",
        "created_at": mail.created_at,
        "sent_at": None,
        "dead_at": None,
        "urgent": mail.urgent,
        "reason": mail.reason,
        "message_id": message_id_for(row_id, mail.created_at),
        "intent": dict(mail.intent) if mail.intent is not None else None,
    }
