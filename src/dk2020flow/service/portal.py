"""What the participants' portal shows: a person's cases and one case as they see it.

A participant's roles are case-scoped: the contact rows for their address give roles
per organisation (``service.accounts.participant_roles``), and a case is theirs when
its organisation is one of those. ``case_access`` is the one check every portal page
and action goes through: a case that is not theirs (or does not exist) is
``NotYourCaseError``, and nothing is read or changed for it.

The case page reuses the console's (``service.casepage.case_page``) with the person's
roles on that case, so the actions offered are exactly what the workflow allows those
roles, and ``Service.fire`` decides as for the console and the CLI. What a participant
does *not* see of the console's page: the case's history (staff comments) and the mail
sent to others.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from dk2020flow.definition.model import CalendarEvent, Workflow
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot
from dk2020flow.errors import Dk2020flowError
from dk2020flow.service.casepage import (
    CasePage,
    Deadline,
    built_page,
    page_reads,
    state_title,
    title,
)
from dk2020flow.service.core import Service
from dk2020flow.store.port import OutboxMessage, Tx

StepStatus = Literal["passed", "current", "ahead"]


class NotYourCaseError(Dk2020flowError):
    """The case is not one of the person's (or there is no such case): the portal answers
    403 and reads nothing of it."""

    def __init__(self, case_id: int) -> None:
        super().__init__(f"case {case_id} is not one of your cases")
        self.case_id = case_id


@dataclass(frozen=True, kw_only=True, slots=True)
class PathStep:
    state: str
    title: str
    status: StepStatus


@dataclass(frozen=True, kw_only=True, slots=True)
class ProgrammeEvent:
    """A dated event of the case's round (start conference, workshop) still ahead."""

    name: str
    """``cohort.event``, as in the workflow file."""
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    location: str


@dataclass(frozen=True, kw_only=True, slots=True)
class PortalCase:
    page: CasePage
    roles: tuple[str, ...]
    """The person's roles on this case."""
    organisation: str
    path: tuple[PathStep, ...]
    events: tuple[ProgrammeEvent, ...]
    mail: tuple[OutboxMessage, ...]
    """The case's mail addressed to the person (to or cc), newest first."""

    @property
    def case(self) -> CaseSnapshot:
        return self.page.case

    @property
    def next_deadline(self) -> Deadline | None:
        pending = [d for d in self.page.deadlines if not d.fired]
        return min(pending, key=lambda d: d.deadline_at) if pending else None

    @property
    def step(self) -> tuple[int, int]:
        """(the current state's place on the path, the path's length), from 1."""
        at = next((i for i, s in enumerate(self.path) if s.status == "current"), 0)
        return at + 1, len(self.path)


# ----------------------------------------------------------------------------- access


def case_access(
    service: Service, case_id: int, case_roles: Mapping[str, Sequence[str]]
) -> tuple[CaseSnapshot, CompiledWorkflow, tuple[str, ...]]:
    """The case, its workflow version and the person's roles on it, or
    ``NotYourCaseError`` (a case of another organisation, or none at all)."""
    with service.store.read() as tx:
        return _access(service, tx, case_id, case_roles)


def _access(
    service: Service, tx: Tx, case_id: int, case_roles: Mapping[str, Sequence[str]]
) -> tuple[CaseSnapshot, CompiledWorkflow, tuple[str, ...]]:
    found = tx.find_cases_by_ref(f"#{case_id}", None)
    if not found:
        raise NotYourCaseError(case_id)
    case = found[0]
    roles = tuple(case_roles.get(case.organisation_code, ()))
    if not roles:
        raise NotYourCaseError(case_id)
    return case, service.compiled(tx, case.definition_id), roles


# ----------------------------------------------------------------------------- the pages


def my_cases(
    service: Service,
    case_roles: Mapping[str, Sequence[str]],
    *,
    email: str,
    language: str,
    now: dt.datetime | None = None,
) -> list[PortalCase]:
    """Every case of the person's organisations, by organisation then case number."""
    ids: list[int] = []
    with service.store.read() as tx:
        for code in case_roles:
            ids += [c.id or 0 for c in tx.find_cases_by_ref(code, None)]
    return [
        portal_case(service, case_id, case_roles, email=email, language=language, now=now)
        for case_id in ids
    ]


def portal_case(
    service: Service,
    case_id: int,
    case_roles: Mapping[str, Sequence[str]],
    *,
    email: str,
    language: str,
    now: dt.datetime | None = None,
) -> PortalCase:
    """One of the person's cases as the portal shows it (``NotYourCaseError`` if not)."""
    now = now or service.clock.now()
    # The access check and the page's reads in one transaction.
    with service.store.read() as tx:
        case, _wf, roles = _access(service, tx, case_id, case_roles)
        reads = page_reads(service, tx, case)
    page = built_page(reads, roles=roles, language=language, now=now)
    definition = page.workflow.workflow
    address = email.lower()
    mine = tuple(
        m for m in page.outbox if any(to.lower() == address for _name, to in (*m.to, *m.cc))
    )
    return PortalCase(
        page=page,
        roles=roles,
        organisation=page.case.organisation_name,
        path=case_path(definition, page, language),
        events=upcoming_events(definition, page.case, now, language),
        mail=mine,
    )


def case_path(workflow: Workflow, page: CasePage, language: str) -> tuple[PathStep, ...]:
    """The workflow's states in the file's order: those the case has been in (passed),
    its state (current), and those it can still reach from there (ahead). States it
    neither visited nor can reach (another branch) are left out."""
    current = page.case.state
    visited = {e.event.record.to_state for e in page.history} | {
        e.event.record.from_state for e in page.history
    }
    reachable: set[str] = set()
    if not page.case.closed:
        todo = [current]
        while todo:
            state = todo.pop()
            for transition in workflow.transitions:
                if state in workflow.sources(transition) and transition.to not in reachable:
                    reachable.add(transition.to)
                    todo.append(transition.to)
    steps: list[PathStep] = []
    for state in workflow.states:
        status: StepStatus
        if state == current:
            status = "current"
        elif state in visited:
            status = "passed"
        elif state in reachable:
            status = "ahead"
        else:
            continue
        steps.append(
            PathStep(state=state, title=state_title(workflow, state, language), status=status)
        )
    return tuple(steps)


def upcoming_events(
    workflow: Workflow, case: CaseSnapshot, now: dt.datetime, language: str
) -> tuple[ProgrammeEvent, ...]:
    """The events of the case's round (in its region) that have not ended, soonest first."""
    cohort = workflow.cohorts.get(case.cohort or "")
    if cohort is None or case.closed:
        return ()
    zone = workflow_zone(workflow)
    found: list[ProgrammeEvent] = []
    for name, spec in cohort.events.items():
        if spec.regions and case.region not in spec.regions:
            continue
        starts = spec.at.replace(tzinfo=zone)
        ends = (spec.at + spec.duration.delta).replace(tzinfo=zone)
        if ends <= now:
            continue
        found.append(
            ProgrammeEvent(
                name=f"{case.cohort}.{name}",
                title=title(spec.title, language, name),
                starts_at=starts,
                ends_at=ends,
                location=spec.location,
            )
        )
    return tuple(sorted(found, key=lambda e: e.starts_at))


def event_calendar(workflow: Workflow, case: CaseSnapshot, event: str, language: str) -> str | None:
    """The ``.ics`` of one event of the case's round (None: the round has no such event);
    the same UID as the invitation mail's, so a calendar keeps one entry."""
    from dk2020flow.notify.ics import event_ics

    cohort_name, _, name = event.partition(".")
    cohort = workflow.cohorts.get(case.cohort or "")
    if cohort is None or cohort_name != case.cohort:
        return None
    spec: CalendarEvent | None = cohort.events.get(name)
    if spec is None:
        return None
    return event_ics(
        spec,
        uid=f"event-{workflow.workflow}-{cohort_name}-{name}@dk2020flow",
        timezone=workflow.timezone,
        language=language,
    )


def workflow_zone(workflow: Workflow) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(workflow.timezone)
