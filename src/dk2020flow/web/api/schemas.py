"""The API's request and response bodies, as pydantic models: FastAPI validates requests
against them and the OpenAPI document describes them exactly (schemathesis checks every
answer against it).

Request models forbid unknown members (a misspelt ``comment`` is a 422 naming it, not a
comment silently lost). Names in paths and bodies follow the workflow file's own rules
(``NAME_PATTERN``), so nothing that could not be a trigger, timer or checklist reaches
the service.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from dk2020flow.definition.model import NAME_PATTERN

NamePath = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=64)]
"""A trigger, timer, checklist, field, role or workflow name as a workflow file writes it."""
ItemName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=32)
]
JsonScalar = str | int | bool | None
"""A value of a case field (dates and date-times as ISO 8601 text)."""
ItemStatusName = Literal["met", "partly_met", "not_met", "not_applicable"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- problems


class FieldProblem(_Out):
    field: str = Field(description="The member at fault: `data.cohort`, `limit`, `cursor` …")
    message: str
    location: Literal["body", "query", "path", "header"] | None = None


class Problem(_Out):
    """An RFC 9457 problem (``application/problem+json``)."""

    type: str = Field(description="A URI naming the kind of problem (docs/api.md lists them).")
    title: str
    status: int
    detail: str = ""
    instance: str | None = Field(default=None, description="The request's path.")
    errors: list[FieldProblem] = Field(default_factory=list)
    reason: str | None = Field(
        default=None,
        description="For a refused change: which check refused it (role, guard, "
        "invalid_from_state, missing_data, invalid_data, unknown_trigger, invalid_state).",
    )


# ----------------------------------------------------------------------------- organisations


class OrganisationOut(_Out):
    code: str
    name: str
    region: str
    group: str = ""


class OrganisationList(_Out):
    items: list[OrganisationOut]


class OrganisationRef(_Out):
    code: str
    name: str
    region: str


# ----------------------------------------------------------------------------- workflows


class VersionSummary(_Out):
    id: int = Field(description="The definition version's id (cases name it as `definition_id`).")
    workflow: str
    version: str = Field(description="The version label the workflow file gives.")
    content_hash: str
    loaded_at: dt.datetime
    latest: bool


class WorkflowOut(_Out):
    name: str
    title: str
    latest: VersionSummary
    versions: list[VersionSummary] = Field(description="Newest first.")


class WorkflowList(_Out):
    items: list[WorkflowOut]


class StateOut(_Out):
    name: str
    title: str
    description: str
    initial: bool
    terminal: bool
    timers: list[str]


class TransitionOut(_Out):
    trigger: str
    title: str
    from_states: list[str] = Field(description='`["*"]`: from every open state.')
    to: str
    roles: list[str]
    requires: list[str]
    accepts: list[str]
    needs_documents: list[str]
    automatic: bool


class FieldSpecOut(_Out):
    name: str
    type: str
    title: str
    choices: list[str]
    max_length: int


class NamedTitle(_Out):
    name: str
    title: str


class ChecklistSpecOut(_Out):
    name: str
    title: str
    roles: list[str]
    items: list[NamedTitle]


class VersionOut(VersionSummary):
    title: str
    timezone: str
    initial_state: str
    states: list[StateOut]
    transitions: list[TransitionOut]
    fields: list[FieldSpecOut]
    roles: list[NamedTitle]
    cohorts: list[NamedTitle]
    checklists: list[ChecklistSpecOut]
    source: str = Field(description="The workflow file as it was loaded (YAML).")
    diagram: str = Field(description="Where the version's state diagram is (SVG).")
    json_schema: str = Field(description="Where the JSON Schema of the workflow format is.")


# ----------------------------------------------------------------------------- cases


class CaseSummary(_Out):
    """A case as it is after a change, and as the list shows it."""

    id: int
    workflow: str
    definition_id: int
    organisation: OrganisationRef
    cohort: str | None
    state: str
    entered_at: dt.datetime
    opened_at: dt.datetime
    closed: bool
    version: int = Field(description="Grows by one with every change; the ETag is it, quoted.")
    data: dict[str, JsonScalar]


class CaseListItem(CaseSummary):
    deadline_at: dt.datetime | None = Field(
        description="The earliest deadline the case waits on in its state (passed or not)."
    )
    late: bool


class CaseList(_Out):
    items: list[CaseListItem]
    next_cursor: str | None = Field(
        description="Pass it as `cursor` (with the same filter and sort) for the next page; "
        "null on the last page."
    )


class FieldValueOut(_Out):
    name: str
    type: str
    title: str
    value: JsonScalar


class DeadlineOut(_Out):
    timer: str
    title: str
    description: str
    deadline_at: dt.datetime
    late: bool
    fired: bool = Field(description="The deadline's own firing went out already.")
    extend_roles: list[str]
    may_extend_as: str | None = Field(
        description="The token's role to move it in (null: it may not, or it cannot move)."
    )


class ChecklistItemOut(_Out):
    item: str
    title: str
    status: ItemStatusName | None
    comment: str


class ChecklistOut(_Out):
    name: str
    title: str
    roles: list[str]
    items: list[ChecklistItemOut]
    may_record_as: str | None


class DocumentOut(_Out):
    id: int
    slot: str = Field(description="The document the workflow declares (e.g. `draft_plan`).")
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_role: str | None
    uploaded_at: dt.datetime


class InputOut(_Out):
    name: str
    type: str
    title: str
    required: bool
    choices: list[str]
    max_length: int


class ActionOut(_Out):
    """A trigger the token may fire now."""

    trigger: str
    title: str
    role: str = Field(description="The role it is fired in unless the request names another.")
    roles: list[str]
    fields: list[InputOut]


class CaseOut(CaseSummary):
    definition_version: str
    state_title: str
    fields: list[FieldValueOut]
    deadlines: list[DeadlineOut]
    checklists: list[ChecklistOut]
    documents: list[DocumentOut]
    actions: list[ActionOut]


class EventOut(_Out):
    seq: int
    at: dt.datetime
    kind: str
    actor: str = Field(description="Who: an e-mail address, `token:<name>`, `scheduler` …")
    role: str | None
    trigger: str | None
    from_state: str | None
    to_state: str | None
    comment: str
    data: dict[str, Any]


class History(_Out):
    case_id: int
    items: list[EventOut] = Field(description="Oldest first.")


# ----------------------------------------------------------------------------- changes


class FireRequest(_In):
    data: dict[NamePath, JsonScalar] = Field(
        default_factory=dict,
        description="The trigger's fields, as `case fire --data FIELD=VALUE` takes them.",
    )
    comment: str = Field(default="", max_length=10_000)
    role: NamePath | None = Field(
        default=None,
        description="One of the token's roles to act in; default: the first of its roles "
        "the workflow allows for the trigger.",
    )


EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


class ExtendRequest(_In):
    to: AwareDatetime | None = Field(
        default=None,
        description="The new deadline, with its UTC offset (2022-01-15T23:59:00+01:00).",
    )
    by: str | None = Field(
        default=None,
        max_length=40,
        description="Or move it by a span: an ISO 8601 duration (P14D, P1M).",
    )
    reason: str = Field(max_length=10_000)
    role: NamePath | None = None


class ChecklistItemIn(_In):
    status: ItemStatusName
    comment: str = Field(default="", max_length=10_000)


class ChecklistRequest(_In):
    items: dict[ItemName, ChecklistItemIn] = Field(min_length=1)
    role: NamePath | None = None


# ----------------------------------------------------------------------------- operations


class Address(_Out):
    name: str
    address: str


class OutboxMessageOut(_Out):
    """A message of the outbox, without its text (which may hold a one-time sign-in link)."""

    id: int
    case_id: int | None
    template: str
    language: str
    to: list[Address]
    cc: list[Address]
    subject: str
    status: Literal["pending", "sending", "sent", "dead", "parked"]
    attempts: int
    not_before: dt.datetime
    next_attempt_at: dt.datetime
    created_at: dt.datetime
    sent_at: dt.datetime | None
    last_error: str
    reason: str
    message_id: str


class OutboxList(_Out):
    items: list[OutboxMessageOut]
    next_cursor: str | None


class DaemonOut(_Out):
    id: str
    host: str
    pid: int
    started_at: dt.datetime
    last_tick_at: dt.datetime | None
    last_seen_at: dt.datetime
    stopped_at: dt.datetime | None


class HealthOut(_Out):
    """What `dk2020flow scheduler status` shows."""

    health: Literal["OK", "WARNING", "CRITICAL"]
    code: int = Field(description="0 OK, 1 WARNING, 2 CRITICAL (the probe's exit code).")
    now: dt.datetime
    reasons: list[str]
    daemons_alive: list[DaemonOut]
    last_tick_at: dt.datetime | None
    due_now: int
    overdue: int
    overdue_minutes: float
    oldest_unfired: dt.datetime | None
    next_due: dt.datetime | None
    outbox: dict[str, int]


# ----------------------------------------------------------------------------- the report
# The members of ``report.model.Report`` (a test keeps them equal): the body is exactly
# what `dk2020flow report --format json` prints.


class RegionDecisionsOut(_Out):
    region: str
    cases: int
    by_round: dict[str, int]
    by_state: dict[str, int]


class StateCountOut(_Out):
    state: str
    cohort: str
    region: str
    cases: int


class OverdueCaseOut(_Out):
    case_id: int
    organisation: str
    region: str
    state: str
    deadline: str
    description: str
    due_at: dt.datetime
    days_overdue: int
    owners: list[str]


class RequirementStatusOut(_Out):
    item: str
    title: str
    by_status: dict[str, int]
    holding_back: int
    needed_revision: int


class MonthlyStatesOut(_Out):
    months: list[dt.date]
    states: list[str]
    counts: list[list[int]]


class ReportOut(_Out):
    title: str
    workflow: str
    version: str
    at: dt.datetime
    timezone: str
    cases: int
    state_titles: dict[str, str]
    cohort_titles: dict[str, str]
    by_state: dict[str, int]
    signups: dict[str, int]
    regions: list[RegionDecisionsOut]
    region_states: list[str]
    completed_states: list[str]
    states: list[StateCountOut]
    overdue: list[OverdueCaseOut]
    checklist: str
    checklist_title: str
    requirements: list[RequirementStatusOut]
    screened_cases: int
    mail: dict[str, int]
    over_time: MonthlyStatesOut
    notes: list[str]
