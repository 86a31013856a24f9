"""The records the pure engine reads and returns.

The engine never touches the database: the service loads a ``CaseSnapshot``,
asks the engine for a ``Decision`` and hands the decision to the store, which
writes all of it in one transaction (DESIGN.md invariant 1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

JsonValue = str | int | bool | None
"""Case data values as stored: dates are ISO 8601 texts."""


class EventKind(StrEnum):
    OPENED = "opened"
    TRANSITION = "transition"
    DATA_SET = "data_set"
    CHECKLIST = "checklist"
    CHECKLIST_ANSWER = "checklist_answer"
    """The answers to a checklist's comments (by a role of its ``answered_by``)."""
    TIMER = "timer"
    DEADLINE_EXTENDED = "deadline_extended"
    MIGRATED = "migrated"
    FIRING_SKIPPED = "firing_skipped"
    MAIL_PARKED = "mail_parked"
    REFUSED = "refused"
    DOCUMENT = "document"
    """A document uploaded to the case (changes nothing else; replay passes over it)."""


class TimerKind(StrEnum):
    REMINDER = "reminder"
    DEADLINE = "deadline"
    REPEAT = "repeat"
    ESCALATION = "escalation"
    EVENT = "event"
    EVENT_REMINDER = "event_reminder"


class TimerStatus(StrEnum):
    PENDING = "pending"
    FIRED = "fired"
    DISCARDED = "discarded"  # stale epoch, or cancelled by leaving the state
    SKIPPED = "skipped"  # missed-firing policy
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True, slots=True)
class ChecklistItem:
    status: str
    comment: str = ""
    answer: str = ""
    """The answer to ``comment`` (by a role of the checklist's ``answered_by``); recording
    the item again (a new status or comment) starts it over, empty."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseSnapshot:
    """A case as the engine sees it; ``id`` is None before it is first stored."""

    id: int | None
    workflow: str
    definition_id: int
    organisation_code: str
    organisation_name: str
    region: str
    country: str = ""
    """The organisation's country (ISO 3166-1 alpha-2) or '': the calendar of the timers
    marked ``calendar: organisation`` (``CompiledWorkflow.calendar_for``)."""
    subdivision: str = ""
    """The country's subdivision of that calendar (``holidays``' code, e.g. ``BY``) or ''."""
    state: str
    epoch: int
    """Counts state entries. Timers armed at an older epoch are stale."""
    cohort: str | None
    data: Mapping[str, JsonValue]
    checklists: Mapping[str, Mapping[str, ChecklistItem]]
    entered_at: dt.datetime
    opened_at: dt.datetime
    version: int
    """Optimistic-lock counter: bumped by every change."""
    closed: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class EventRecord:
    kind: EventKind
    at: dt.datetime
    actor: str
    role: str | None = None
    trigger: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    comment: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    transition: int | None = None
    """For a transition event: the index of the transition taken in the definition's
    ``transitions`` list (replay takes exactly that one). None for other kinds, and for
    transition events logged before it was recorded."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TimerArm:
    """A timer row to create for a case."""

    timer: str
    kind: TimerKind
    index: int
    due_at: dt.datetime
    deadline_at: dt.datetime
    """The deadline this firing belongs to (reminders and repeats name it in their mail)."""
    epoch: int
    status: TimerStatus = TimerStatus.PENDING
    """Pending, or done already: a firing a migration carries over as fired (or skipped)
    in the new version, so that it is never armed again (service/migrate.py)."""
    fired_at: dt.datetime | None = None
    note: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class MailIntent:
    """A mail to render and queue in the outbox, in the same transaction."""

    template: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    urgent: bool = False
    kind: str = "state_entry"  # notify.render.MailKind value
    timer: str | None = None
    deadline_at: dt.datetime | None = None
    extended: bool = False
    event: str | None = None
    trigger: str | None = None
    comment: str = ""
    actor: str = ""
    ics: bool = False
    cancelled: bool = False
    sequence: int | None = None
    """A programme event's calendar SEQUENCE when it must be above the event's own
    (the cancellation of an event removed from the workflow)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """Everything one change writes, all or nothing."""

    case: CaseSnapshot
    events: tuple[EventRecord, ...]
    arm: tuple[TimerArm, ...] = ()
    cancel_pending: bool = False
    """Discard the case's pending timers of earlier epochs (the case left its state)."""
    cancel_timers: tuple[str, ...] = ()
    """Discard the pending firings of these timer names at the current epoch (a moved deadline)."""
    mails: tuple[MailIntent, ...] = ()

    @property
    def changed_state(self) -> bool:
        return any(e.from_state != e.to_state for e in self.events if e.to_state)


@dataclass(frozen=True, kw_only=True, slots=True)
class DueTimer:
    """A claimed timer row handed to the engine to fire."""

    id: int
    case_id: int
    timer: str
    kind: TimerKind
    index: int
    due_at: dt.datetime
    deadline_at: dt.datetime
    epoch: int
