"""What the console's page for one case shows, read in one transaction.

``case_page`` gathers the case, its workflow version, its fields, its deadlines (with
how long is left, and whether it is late by ``engine.timers.is_late``), its checklists,
its history, its mail, and the actions the signed-in user may take now. The page only
*offers* what the workflow allows the user's roles; whether an action is taken is
decided by the engine when ``Service.fire`` / ``extend`` / ``check`` runs, as for the CLI.

Titles are picked in the page's language from the workflow's ``title: {da, en}``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dk2020flow.definition.model import (
    ANSWERABLE_STATUSES,
    FieldDef,
    FieldType,
    ItemStatus,
    Text,
    Transition,
    Workflow,
    text_in,
)
from dk2020flow.engine import timers as timing
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot, JsonValue, TimerKind, TimerStatus
from dk2020flow.service.core import Service
from dk2020flow.service.privacy import displayed
from dk2020flow.service.roles import acting_roles
from dk2020flow.store.port import OutboxMessage, StoredEvent, StoredTimer, Tx

ITEM_STATUSES: tuple[str, ...] = tuple(status.value for status in ItemStatus)
"""The statuses a checklist item may have, in the order a form offers them."""

LONG_TEXT = 500
"""Text fields allowing more than this many characters get a multi-line input."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FieldView:
    """One field of the workflow, with the case's value (None: not set)."""

    name: str
    title: str
    type: FieldType
    value: JsonValue
    label: str = ""
    """How to show a value people do not read as is (a cohort's title)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True, kw_only=True, slots=True)
class InputField:
    """One input of an action's form (built from the workflow's field)."""

    name: str
    title: str
    type: FieldType
    required: bool
    max_length: int
    choices: tuple[Choice, ...] = ()

    @property
    def multiline(self) -> bool:
        return self.type is FieldType.TEXT and self.max_length > LONG_TEXT


@dataclass(frozen=True, kw_only=True, slots=True)
class Action:
    """A trigger the user may fire now, as ``role`` (the first of their roles the
    workflow allows; ``roles`` are all of them)."""

    trigger: str
    title: str
    description: str
    role: str
    roles: tuple[str, ...]
    fields: tuple[InputField, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Deadline:
    """A deadline the case waits on in its current state."""

    timer: str
    title: str
    description: str
    deadline_at: dt.datetime
    left: dt.timedelta
    """``deadline_at - now``: negative once it has passed."""
    late: bool
    fired: bool
    """The deadline's own firing went out already."""
    extend_roles: tuple[str, ...]
    extend_as: str | None
    """The user's role to move it in (None: they may not, or it cannot move any more)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ChecklistRow:
    item: str
    title: str
    status: str | None
    comment: str
    answer: str = ""
    """The answer to ``comment`` (by a role of the checklist's ``answered_by``)."""
    needs_answer: bool = False
    """The item needs revision (partly_met or not_met): it can be answered."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ChecklistView:
    name: str
    title: str
    roles: tuple[str, ...]
    role_titles: tuple[str, ...]
    items: tuple[ChecklistRow, ...]
    edit_as: str | None
    """The user's role to record statuses in (None: read only)."""
    answered_by: tuple[str, ...] = ()
    answer_as: str | None = None
    """The user's role to answer the comments in (None: they may not, or the case is
    closed)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TimelineEntry:
    seq: int
    event: StoredEvent
    from_title: str
    to_title: str
    trigger_title: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CasePage:
    case: CaseSnapshot
    workflow: CompiledWorkflow
    language: str
    now: dt.datetime
    state_title: str
    state_description: str
    cohort_title: str
    fields: tuple[FieldView, ...]
    deadlines: tuple[Deadline, ...]
    checklists: tuple[ChecklistView, ...]
    history: tuple[TimelineEntry, ...]
    outbox: tuple[OutboxMessage, ...]
    actions: tuple[Action, ...]
    roles: tuple[str, ...]
    """The user's roles that act on cases (empty for read_only and admin)."""

    def role_title(self, role: str | None) -> str:
        return role_title(self.workflow.workflow, role, self.language)

    def action(self, trigger: str) -> Action | None:
        return next((a for a in self.actions if a.trigger == trigger), None)


def title(text: Text | None, language: str, fallback: str) -> str:
    return text_in(text, language, fallback) or fallback


def role_title(workflow: Workflow, role: str | None, language: str) -> str:
    if role is None:
        return ""
    spec = workflow.roles.get(role)
    return title(spec.title if spec else None, language, role)


def state_title(workflow: Workflow, state: str | None, language: str) -> str:
    if state is None:
        return ""
    spec = workflow.states.get(state)
    return title(spec.title if spec else None, language, state)


def trigger_title(workflow: Workflow, trigger: str | None, language: str) -> str:
    if trigger is None:
        return ""
    found = workflow.transitions_named(trigger)
    return title(found[0].title if found else None, language, trigger)


# ----------------------------------------------------------------------------- actions


def transitions_from(wf: CompiledWorkflow, case: CaseSnapshot, trigger: str) -> list[Transition]:
    """The transitions of ``trigger`` a person may take from the case's state."""
    definition = wf.workflow
    return [
        t
        for t in definition.transitions_named(trigger)
        if not t.automatic and case.state in definition.sources(t)
    ]


def allowed_roles(
    wf: CompiledWorkflow, case: CaseSnapshot, trigger: str, roles: Iterable[str]
) -> tuple[str, ...]:
    """The user's ``roles`` (in their order) that the workflow lets fire ``trigger`` now."""
    allowed = {r for t in transitions_from(wf, case, trigger) for r in t.roles}
    return tuple(r for r in roles if r in allowed)


def role_to_fire(
    wf: CompiledWorkflow, case: CaseSnapshot, trigger: str, roles: Sequence[str]
) -> str | None:
    """The role an action is taken as: the first of the user's acting ``roles`` the
    transition allows; else their first acting role (the engine then refuses it, and
    the refusal is logged as the CLI's is); None for a user with no acting role."""
    acting = acting_roles(list(roles))
    allowed = allowed_roles(wf, case, trigger, acting)
    if allowed:
        return allowed[0]
    return acting[0] if acting else None


def _input(workflow: Workflow, name: str, required: bool, language: str) -> InputField:
    spec = workflow.fields.get(name) or FieldDef()
    choices: tuple[Choice, ...] = ()
    if spec.type is FieldType.CHOICE:
        choices = tuple(Choice(value=c, label=c) for c in spec.choices)
    elif spec.type is FieldType.COHORT:
        choices = tuple(
            Choice(value=n, label=title(c.title, language, n)) for n, c in workflow.cohorts.items()
        )
    return InputField(
        name=name,
        title=title(spec.title, language, name),
        type=spec.type,
        required=required,
        max_length=spec.max_length,
        choices=choices,
    )


def _actions(
    wf: CompiledWorkflow, case: CaseSnapshot, roles: Sequence[str], language: str
) -> tuple[Action, ...]:
    if case.closed or not roles:
        return ()
    definition = wf.workflow
    found: list[Action] = []
    seen: set[str] = set()
    for transition in definition.transitions:
        trigger = transition.trigger
        if trigger in seen:
            continue
        allowed = allowed_roles(wf, case, trigger, roles)
        if not allowed:
            continue
        seen.add(trigger)
        candidates = [t for t in transitions_from(wf, case, trigger) if allowed[0] in t.roles]
        names: list[str] = []
        for t in candidates:
            names += [n for n in (*t.requires, *t.accepts) if n not in names]
        always = set.intersection(*(set(t.requires) for t in candidates))
        found.append(
            Action(
                trigger=trigger,
                title=title(candidates[0].title, language, trigger),
                description=candidates[0].description,
                role=allowed[0],
                roles=allowed,
                fields=tuple(_input(definition, n, n in always, language) for n in names),
            )
        )
    return tuple(found)


# ----------------------------------------------------------------------------- deadlines


def _deadlines(
    wf: CompiledWorkflow,
    case: CaseSnapshot,
    timers: list[StoredTimer],
    roles: Sequence[str],
    now: dt.datetime,
    language: str,
) -> tuple[Deadline, ...]:
    """The deadline each timer of the state is at now: its most recently armed deadline
    row of this state entry (a moved one wins), as ``store.sql.timers.latest_deadline_arms``."""
    state = wf.workflow.states[case.state]
    current = [t for t in timers if t.epoch == case.epoch]
    latest: dict[str, StoredTimer] = {}
    for row in current:
        if row.kind != TimerKind.DEADLINE.value or row.status is TimerStatus.DISCARDED:
            continue
        if row.timer not in latest or row.id > latest[row.timer].id:
            latest[row.timer] = row
    pending = {t.timer for t in current if t.status is TimerStatus.PENDING}
    found: list[Deadline] = []
    for name, row in sorted(latest.items(), key=lambda item: item[1].deadline_at):
        spec = state.timers.get(name)
        if spec is None:
            continue
        movable = not case.closed and name in pending
        extend_as = next((r for r in roles if r in spec.extend_roles), None) if movable else None
        found.append(
            Deadline(
                timer=name,
                title=title(spec.title, language, name),
                description=spec.description,
                deadline_at=row.deadline_at,
                left=row.deadline_at - now,
                late=timing.is_late(state, name, row.deadline_at, now),
                fired=row.status is not TimerStatus.PENDING,
                extend_roles=spec.extend_roles,
                extend_as=extend_as,
            )
        )
    return tuple(found)


def extend_role(
    wf: CompiledWorkflow, case: CaseSnapshot, timer: str, roles: Sequence[str]
) -> str | None:
    """The role to move ``timer`` in: the first acting role the timer allows, else the
    first acting role (refused by the engine and logged); None with no acting role."""
    acting = acting_roles(list(roles))
    spec = wf.workflow.states[case.state].timers.get(timer)
    allowed = [r for r in acting if spec is not None and r in spec.extend_roles]
    if allowed:
        return allowed[0]
    return acting[0] if acting else None


def checklist_role(wf: CompiledWorkflow, checklist: str, roles: Sequence[str]) -> str | None:
    """The role to record ``checklist`` in, chosen as ``extend_role`` chooses."""
    acting = acting_roles(list(roles))
    spec = wf.workflow.checklists.get(checklist)
    allowed = [r for r in acting if spec is not None and r in spec.roles]
    if allowed:
        return allowed[0]
    return acting[0] if acting else None


# ----------------------------------------------------------------------------- the page


def _checklists(
    wf: CompiledWorkflow, case: CaseSnapshot, roles: Sequence[str], language: str
) -> tuple[ChecklistView, ...]:
    views: list[ChecklistView] = []
    for name, spec in wf.workflow.checklists.items():
        recorded = case.checklists.get(name, {})
        rows = tuple(
            ChecklistRow(
                item=item,
                title=title(text, language, item),
                status=recorded[item].status if item in recorded else None,
                comment=recorded[item].comment if item in recorded else "",
                answer=recorded[item].answer if item in recorded else "",
                needs_answer=item in recorded and recorded[item].status in ANSWERABLE_STATUSES,
            )
            for item, text in spec.items.items()
        )
        edit_as = None if case.closed else next((r for r in roles if r in spec.roles), None)
        answer_as = None if case.closed else next((r for r in roles if r in spec.answered_by), None)
        views.append(
            ChecklistView(
                name=name,
                title=title(spec.title, language, name),
                roles=spec.roles,
                role_titles=tuple(role_title(wf.workflow, r, language) for r in spec.roles),
                items=rows,
                edit_as=edit_as,
                answered_by=spec.answered_by,
                answer_as=answer_as,
            )
        )
    return tuple(views)


def _timeline(
    workflow: Workflow, events: list[StoredEvent], language: str
) -> tuple[TimelineEntry, ...]:
    """Newest first."""
    return tuple(
        TimelineEntry(
            seq=e.seq,
            event=e,
            from_title=state_title(workflow, e.record.from_state, language),
            to_title=state_title(workflow, e.record.to_state, language),
            trigger_title=trigger_title(workflow, e.record.trigger, language),
        )
        for e in sorted(events, key=lambda e: e.seq, reverse=True)
    )


def _label(workflow: Workflow, spec: FieldDef, value: JsonValue, language: str) -> str:
    if spec.type is FieldType.COHORT and isinstance(value, str) and value in workflow.cohorts:
        return title(workflow.cohorts[value].title, language, value)
    return ""


def case_page(
    service: Service,
    ref: str,
    *,
    roles: Sequence[str],
    language: str,
    now: dt.datetime | None = None,
    workflow: str | None = None,
    mail_limit: int = 50,
) -> CasePage:
    """The page of case ``ref`` (``#12``, organisation code or name: ``Service.resolve``) for a
    user with ``roles``, in ``language``, as of ``now`` (the service's clock)."""
    now = now or service.clock.now()
    with service.store.read() as tx:
        reads = page_reads(service, tx, resolve_ref(service, tx, ref, workflow), mail_limit)
    return built_page(reads, roles=roles, language=language, now=now)


@dataclass(frozen=True, kw_only=True, slots=True)
class PageReads:
    """What a case's page reads of it (``page_reads``), before it is put in a language."""

    case: CaseSnapshot
    workflow: CompiledWorkflow
    timers: list[StoredTimer]
    events: list[StoredEvent]
    outbox: list[OutboxMessage]


def page_reads(service: Service, tx: Tx, case: CaseSnapshot, mail_limit: int = 50) -> PageReads:
    """What the page of ``case`` shows of it, read in ``tx`` (the caller's transaction:
    the portal reads the case, checks the person's access and reads this in one)."""
    wf = service.compiled(tx, case.definition_id)
    timers = tx.timers_of(case.id or 0, pending_only=False)
    events = tx.history(case.id or 0)
    case, events = displayed(tx, case, events)  # privacy: forgotten people's names
    outbox = tx.outbox(case_id=case.id, limit=mail_limit)
    return PageReads(case=case, workflow=wf, timers=timers, events=events, outbox=list(outbox))


def built_page(
    reads: PageReads, *, roles: Sequence[str], language: str, now: dt.datetime
) -> CasePage:
    """The page of what ``page_reads`` read, for a user with ``roles``, in ``language``."""
    case, wf = reads.case, reads.workflow
    acting = tuple(acting_roles(list(roles)))
    definition = wf.workflow
    state = definition.states[case.state]
    cohort = definition.cohorts.get(case.cohort) if case.cohort else None
    return CasePage(
        case=case,
        workflow=wf,
        language=language,
        now=now,
        state_title=state_title(definition, case.state, language),
        state_description=state.description,
        cohort_title=title(cohort.title, language, case.cohort or "") if cohort else "",
        fields=tuple(
            FieldView(
                name=name,
                title=title(spec.title, language, name),
                type=spec.type,
                value=case.data.get(name),
                label=_label(definition, spec, case.data.get(name), language),
            )
            for name, spec in definition.fields.items()
        ),
        deadlines=_deadlines(wf, case, reads.timers, acting, now, language),
        checklists=_checklists(wf, case, acting, language),
        history=_timeline(definition, reads.events, language),
        outbox=tuple(reads.outbox),
        actions=_actions(wf, case, acting, language),
        roles=acting,
    )


def case_workflow(
    service: Service, ref: str, workflow: str | None = None
) -> tuple[CaseSnapshot, CompiledWorkflow]:
    """The case ``ref`` and its workflow version (for reading a submitted form)."""
    with service.store.read() as tx:
        case = resolve_ref(service, tx, ref, workflow)
        return case, service.compiled(tx, case.definition_id)


def resolve_ref(service: Service, tx: Tx, ref: str, workflow: str | None = None) -> CaseSnapshot:
    """The case a console address names: ``/cases/12`` is case number 12 (the console's
    own links), anything else an organisation's name or ``#12`` as ``case show`` reads it
    (``Service.resolve``). On the command line a bare number is an organisation code, which
    a person types; in an address it is the case's id, which the console writes."""
    if ref.isascii() and ref.isdigit():
        ref = f"#{ref}"
    return service.resolve(tx, ref, workflow)
