"""The pure core: given a case, a request and `now`, decide what changes.

Every function here is a function of its inputs. It returns a ``Decision``
(new case snapshot, events, timers to arm and cancel, mail to queue) or raises
``RefusedError`` saying which check failed; it never does I/O nor reads a clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from dk2020flow.definition.durations import Duration
from dk2020flow.definition.model import (
    ANSWERABLE_STATUSES,
    Checklist,
    ItemStatus,
    MailSpec,
    State,
    Timer,
    Transition,
    text_in,
)
from dk2020flow.engine import timers as timing
from dk2020flow.engine.fields import FieldValueError, as_date, check_comment, coerce
from dk2020flow.engine.machine import CompiledWorkflow, Refusal
from dk2020flow.engine.records import (
    CaseSnapshot,
    ChecklistItem,
    Decision,
    DueTimer,
    EventKind,
    EventRecord,
    JsonValue,
    MailIntent,
    TimerArm,
    TimerKind,
)
from dk2020flow.errors import RefusalReason, RefusedError
from dk2020flow.localtime import to_utc

SYSTEM_ACTOR = "dk2020flow"
MAX_AUTOMATIC_CHAIN = 20


@dataclass(frozen=True, kw_only=True, slots=True)
class Actor:
    """Who acts: a person in a role, or the engine itself (role None)."""

    name: str
    role: str | None


SYSTEM = Actor(name=SYSTEM_ACTOR, role=None)


@dataclass(frozen=True, kw_only=True, slots=True)
class Organisation:
    """The organisation a case is opened for; ``country`` and ``subdivision`` ('' when
    not known) choose the calendar of its timers marked ``calendar: organisation``."""

    code: str
    name: str
    region: str
    country: str = ""
    subdivision: str = ""


# ----------------------------------------------------------------------------- opening


def open_case(
    wf: CompiledWorkflow,
    *,
    organisation: Organisation,
    actor: Actor,
    now: dt.datetime,
    cohort: str | None = None,
    state: str | None = None,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
) -> Decision:
    """A new case in the initial state, or directly in a later one (with a reason)."""
    definition = wf.workflow
    _check_role_exists(wf, actor)
    target = state or definition.initial_state
    if target not in definition.states:
        raise RefusedError(
            RefusalReason.INVALID_STATE,
            f"{target!r} is not a state of {definition.workflow}; "
            f"states: {', '.join(definition.states)}",
        )
    if target != definition.initial_state:
        if not definition.states[target].may_open_here:
            allowed = [n for n, s in definition.states.items() if s.may_open_here]
            raise RefusedError(
                RefusalReason.INVALID_STATE,
                f"cases cannot be opened directly in {target!r}; "
                f"allowed: {', '.join([definition.initial_state, *allowed])}",
            )
        if not reason.strip():
            raise RefusedError(
                RefusalReason.MISSING_DATA,
                f"opening a case directly in {target!r} needs a reason (--reason)",
            )
    values = _coerce_all(wf, dict(data or {}))
    if cohort is not None:
        if cohort not in definition.cohorts:
            raise RefusedError(
                RefusalReason.INVALID_DATA,
                f"{cohort!r} is not a cohort; choose one of {', '.join(definition.cohorts)}",
                fields=("cohort",),
            )
        values["cohort"] = cohort
    cohort_value = values.get("cohort")
    case = CaseSnapshot(
        id=None,
        workflow=definition.workflow,
        definition_id=wf.definition_id,
        organisation_code=organisation.code,
        organisation_name=organisation.name,
        region=organisation.region,
        country=organisation.country,
        subdivision=organisation.subdivision,
        state=target,
        epoch=1,
        cohort=cohort_value if isinstance(cohort_value, str) else None,
        data=values,
        checklists={},
        entered_at=now,
        opened_at=now,
        version=1,
        closed=definition.states[target].terminal,
    )
    opened = EventRecord(
        kind=EventKind.OPENED,
        at=now,
        actor=actor.name,
        role=actor.role,
        to_state=target,
        comment=_comment(reason) if reason else "",
        data={"cohort": case.cohort, **values, "definition_id": wf.definition_id},
    )
    arms, mails = _enter(wf, case, now)
    decision = Decision(case=case, events=(opened,), arm=arms, mails=mails)
    return _run_automatic(wf, decision, now)


# ----------------------------------------------------------------------------- triggers


def fire_trigger(
    wf: CompiledWorkflow,
    case: CaseSnapshot,
    *,
    trigger: str,
    actor: Actor,
    now: dt.datetime,
    data: Mapping[str, Any] | None = None,
    comment: str = "",
    documents: Collection[str] | None = None,
) -> Decision:
    """Fire a named trigger; refuse with the reason when any check fails.

    ``documents`` are the documents (by name) the case was handed since it entered its
    state: a person's trigger (``actor.role`` set) whose transition ``needs_documents``
    is refused while one of them is missing. None when the caller does not track them:
    the engine's own firings (timers, ``SYSTEM``) never check documents, which people
    hand in; the service passes them for every person's trigger.
    """
    definition = wf.workflow
    candidates = definition.transitions_named(trigger)
    if not candidates:
        raise RefusedError(
            RefusalReason.UNKNOWN_TRIGGER,
            f"{trigger!r} is not a trigger of {definition.workflow}; "
            f"triggers: {', '.join(sorted({t.trigger for t in definition.transitions}))}",
        )
    from_here = [t for t in candidates if case.state in definition.sources(t)]
    if not from_here:
        valid = available_triggers(wf, case)
        raise RefusedError(
            RefusalReason.INVALID_FROM_STATE,
            f"{trigger!r} cannot fire in state {case.state!r}; "
            f"possible now: {', '.join(valid) or 'none'}",
        )
    if actor.role is not None:
        _check_role_exists(wf, actor)
        if all(t.automatic for t in from_here):
            raise RefusedError(
                RefusalReason.ROLE,
                f"{trigger!r} is automatic: it fires by itself once its guard holds",
            )
    given = dict(data or {})
    # The guards read the case as it was plus the trigger's data; `sets` apply afterwards.
    # (A value that is not valid is left out of the choice; the check below refuses it.)
    seen = {**case.data, **_coerce_valid(wf, given)}
    choice = wf.choose(case.state, trigger, role=actor.role, data=seen, checklists=case.checklists)
    if choice.transition is None or choice.index is None:
        raise _refusal(wf, trigger, actor, from_here, choice.refusals, given)
    problem = _data_problem(wf, trigger, choice.transition, given)
    if problem is not None:
        raise problem
    if documents is not None and actor.role is not None:
        missing = [n for n in choice.transition.needs_documents if n not in documents]
        if missing:
            raise _documents_missing(wf, trigger, case.state, missing)
    values = _coerce_all(wf, given)
    clean_comment = _comment(comment)
    proposed = {**case.data, **values, **choice.transition.sets}
    return _transition(wf, case, choice.index, proposed, actor, now, clean_comment, values)


def _data_problem(
    wf: CompiledWorkflow, trigger: str, transition: Transition, given: Mapping[str, Any]
) -> RefusedError | None:
    """What is wrong with the trigger's data for ``transition``: data it does not take,
    data it requires that is missing, then a value that is not valid; None when it fits."""
    allowed_fields = set(transition.requires) | set(transition.accepts)
    unexpected = sorted(set(given) - allowed_fields)
    if unexpected:
        return RefusedError(
            RefusalReason.INVALID_DATA,
            f"{trigger!r} does not take {', '.join(unexpected)}; "
            f"it takes: {', '.join(sorted(allowed_fields)) or 'no data'}",
            fields=tuple(unexpected),
        )
    missing = [name for name in transition.requires if given.get(name) in (None, "")]
    if missing:
        return RefusedError(
            RefusalReason.MISSING_DATA,
            f"{trigger!r} needs {', '.join(missing)} (e.g. --data {missing[0]}=…)",
            fields=tuple(missing),
        )
    try:
        _coerce_all(wf, dict(given))
    except RefusedError as invalid:
        return invalid
    return None


def _refusal(
    wf: CompiledWorkflow,
    trigger: str,
    actor: Actor,
    from_here: list[Transition],
    refusals: tuple[Refusal, ...],
    given: Mapping[str, Any],
) -> RefusedError:
    """Why no transition of ``trigger`` was taken: the role, else for each transition the
    role allows the first check that fails (data not taken, data missing, the guard)."""
    guarded = [r for r in refusals if r.check == "guard"]
    if not guarded:
        roles = sorted({r for t in from_here for r in t.roles})
        return RefusedError(
            RefusalReason.ROLE,
            f"role {actor.role!r} may not fire {trigger!r}; "
            f"allowed roles: {', '.join(roles) or 'none (automatic)'}",
        )
    problems = [_data_problem(wf, trigger, r.transition, given) for r in guarded]
    if len(guarded) == 1:
        return problems[0] or RefusedError(
            RefusalReason.GUARD, f"{trigger!r} is not allowed yet: {guarded[0].reason}"
        )
    reasons = {p.reason if p else RefusalReason.GUARD for p in problems}
    kind = reasons.pop() if len(reasons) == 1 else RefusalReason.GUARD
    parts = [
        f"to {r.transition.to!r}: {p if p else r.reason}"
        for r, p in zip(guarded, problems, strict=True)
    ]
    named = (name for p in problems if p is not None for name in p.fields)
    return RefusedError(
        kind,
        f"{trigger!r} is not allowed yet: {'; '.join(parts)}",
        fields=tuple(dict.fromkeys(named)),
    )


def _documents_missing(
    wf: CompiledWorkflow, trigger: str, state: str, missing: list[str]
) -> RefusedError:
    definition = wf.workflow
    named = ", ".join(
        f"{name} ({text_in(definition.documents[name].title, definition.default_language, name)})"
        for name in missing
    )
    many = len(missing) > 1
    return RefusedError(
        RefusalReason.MISSING_DATA,
        f"{trigger!r} needs the document{'s' if many else ''} {named}, uploaded since the case "
        f"entered {state!r}: upload {'them' if many else 'it'} first",
    )


def documents_needed(wf: CompiledWorkflow, state: str, trigger: str) -> tuple[str, ...]:
    """The documents the transitions of ``trigger`` from ``state`` need (each once, in file
    order): what a person must upload before firing it (``fire_trigger(documents=…)``)."""
    definition = wf.workflow
    found: dict[str, None] = {}
    for transition in definition.transitions_named(trigger):
        if state in definition.sources(transition):
            found.update(dict.fromkeys(transition.needs_documents))
    return tuple(found)


def available_triggers(wf: CompiledWorkflow, case: CaseSnapshot) -> list[str]:
    """Triggers a person can fire from the case's state (automatic ones excluded)."""
    definition = wf.workflow
    return sorted(
        {
            t.trigger
            for t in definition.transitions
            if not t.automatic and case.state in definition.sources(t)
        }
    )


def _transition(
    wf: CompiledWorkflow,
    case: CaseSnapshot,
    index: int,
    data: dict[str, JsonValue],
    actor: Actor,
    now: dt.datetime,
    comment: str,
    carried: Mapping[str, JsonValue],
) -> Decision:
    """Take transition number ``index`` of the definition (chosen by ``wf.choose``)."""
    definition = wf.workflow
    transition = definition.transitions[index]
    trigger, target = transition.trigger, transition.to
    cohort = data.get("cohort")
    internal = target == case.state
    moved = replace(
        case,
        state=target,
        epoch=case.epoch if internal else case.epoch + 1,
        data=data,
        cohort=cohort if isinstance(cohort, str) else case.cohort,
        entered_at=case.entered_at if internal else now,
        version=case.version + 1,
        closed=definition.states[target].terminal,
    )
    event = EventRecord(
        kind=EventKind.TRANSITION,
        at=now,
        actor=actor.name,
        role=actor.role,
        trigger=trigger,
        from_state=case.state,
        to_state=target,
        comment=comment,
        data=dict(carried),
        transition=index,
    )
    mails = tuple(
        _mail(spec, kind="transition", trigger=trigger, comment=comment, actor=actor.name)
        for spec in transition.mail
    )
    arms: tuple[TimerArm, ...] = ()
    if not internal:
        arms, entry_mails = _enter(wf, moved, now)
        # The state's entry mail says what led here: the trigger, its comment, who fired it.
        mails += tuple(
            replace(m, trigger=trigger, comment=comment, actor=actor.name) for m in entry_mails
        )
    decision = Decision(
        case=moved, events=(event,), arm=arms, cancel_pending=not internal, mails=mails
    )
    return _run_automatic(wf, decision, now)


def _run_automatic(wf: CompiledWorkflow, decision: Decision, now: dt.datetime) -> Decision:
    """Fire automatic transitions whose guard now holds, in the same decision."""
    definition = wf.workflow
    automatic = [i for i, t in enumerate(definition.transitions) if t.automatic]
    for _ in range(MAX_AUTOMATIC_CHAIN):
        case = decision.case
        # The first automatic transition (in file order) from the state whose guard
        # holds; the machine decides each trigger's transition, as for a person.
        ready: int | None = None
        tried: dict[str, int | None] = {}
        for index in automatic:
            trigger = definition.transitions[index].trigger
            if case.state not in definition.sources(definition.transitions[index]):
                continue
            if trigger not in tried:
                tried[trigger] = wf.choose(
                    case.state,
                    trigger,
                    role=None,
                    data=case.data,
                    checklists=case.checklists,
                    automatic_only=True,
                ).index
            if tried[trigger] == index:
                ready = index
                break
        if ready is None:
            return decision
        data = {**case.data, **definition.transitions[ready].sets}
        step = _transition(wf, case, ready, data, SYSTEM, now, "", {})
        decision = _merge(decision, step)
    return decision


def _merge(first: Decision, second: Decision) -> Decision:
    """Two decisions applied in order, as one change."""
    return Decision(
        case=replace(second.case, version=first.case.version),
        events=first.events + second.events,
        arm=tuple(a for a in first.arm if a.epoch == second.case.epoch) + second.arm,
        cancel_pending=first.cancel_pending or second.cancel_pending,
        cancel_timers=first.cancel_timers + second.cancel_timers,
        mails=first.mails + second.mails,
    )


# ----------------------------------------------------------------------------- entering a state


def _enter(
    wf: CompiledWorkflow, case: CaseSnapshot, now: dt.datetime
) -> tuple[tuple[TimerArm, ...], tuple[MailIntent, ...]]:
    state = wf.workflow.states[case.state]
    arms: list[TimerArm] = []
    for name, timer in state.timers.items():
        due_at = deadline_of(wf, case, timer)
        if due_at is None:
            continue
        arms.extend(_arms_for(wf, case, name, timer, due_at, armed_at=now))
    # Entry mail names the state's first deadline ("svar senest 31. august 2020").
    first = min(
        (a for a in arms if a.kind is TimerKind.DEADLINE and a.due_at > now),
        key=lambda a: a.due_at,
        default=None,
    )
    deadline: dict[str, Any] = (
        {"timer": first.timer, "deadline_at": first.deadline_at} if first else {}
    )
    mails = tuple(_mail(spec, kind="state_entry", **deadline) for spec in state.on_entry.mail)
    return tuple(arms), mails


def deadline_of(wf: CompiledWorkflow, case: CaseSnapshot, timer: Timer) -> dt.datetime | None:
    """The timer's deadline for this case, or None when its anchor is not set on the case."""
    cohort = wf.workflow.cohorts.get(case.cohort) if case.cohort else None
    fields = {name: as_date(value) for name, value in case.data.items()}
    try:
        return timing.compute_due(
            timer.due,
            tz=wf.tz,
            calendar=wf.calendar_for(timer, case),
            entered_at=case.entered_at,
            cohort=cohort,
            fields=fields,
        )
    except timing.DueUnavailable:
        return None


def _arms_for(
    wf: CompiledWorkflow,
    case: CaseSnapshot,
    name: str,
    timer: Timer,
    due_at: dt.datetime,
    *,
    armed_at: dt.datetime,
) -> list[TimerArm]:
    firings = timing.drop_past_reminders(
        timing.schedule(timer, due_at=due_at, tz=wf.tz, calendar=wf.calendar_for(timer, case)),
        armed_at,
    )
    return [
        TimerArm(
            timer=name,
            kind=TimerKind(f.kind.value),
            index=f.index,
            due_at=f.due_at,
            deadline_at=due_at,
            epoch=case.epoch,
        )
        for f in firings
    ]


def _mail(spec: MailSpec, *, kind: str, **extra: Any) -> MailIntent:
    return MailIntent(
        template=spec.template, to=spec.to, cc=spec.cc, urgent=spec.urgent, kind=kind, **extra
    )


# ----------------------------------------------------------------------------- timers


def fire_timer(
    wf: CompiledWorkflow, case: CaseSnapshot, due: DueTimer, now: dt.datetime
) -> Decision | None:
    """Fire one due timer; None when it is stale (the case left the state it was armed in)."""
    state: State = wf.workflow.states[case.state]
    timer = state.timers.get(due.timer)
    if due.epoch != case.epoch or timer is None:
        return None
    deadline = {"timer": due.timer, "deadline_at": due.deadline_at, "ics": timer.calendar_invite}
    event = EventRecord(
        kind=EventKind.TIMER,
        at=now,
        actor=SYSTEM_ACTOR,
        trigger=f"{due.timer}:{due.kind.value}" + (f"#{due.index}" if due.index else ""),
        from_state=case.state,
        to_state=case.state,
        data={
            "timer": due.timer,
            "kind": due.kind.value,
            "index": due.index,
            "due_at": due.due_at.isoformat(),
            "deadline_at": due.deadline_at.isoformat(),
        },
    )
    mails: tuple[MailIntent, ...] = ()
    trigger: str | None = None
    if due.kind is TimerKind.REMINDER and timer.reminders:
        mails = (_mail(timer.reminders.mail, kind="timer", **deadline),)
    elif due.kind is TimerKind.DEADLINE:
        mails = tuple(_mail(s, kind="timer", **deadline) for s in timer.on_due.mail)
        trigger = timer.on_due.trigger
    elif due.kind is TimerKind.REPEAT and timer.repeat:
        mails = (_mail(timer.repeat.mail, kind="timer", **deadline),)
    elif due.kind is TimerKind.ESCALATION and timer.escalate:
        # An escalation goes to staff, who keep no calendar of the case's deadline.
        mails = (_mail(timer.escalate.mail, kind="timer", **{**deadline, "ics": False}),)
        trigger = timer.escalate.trigger
        event = replace(event, data={**event.data, "escalated_to": list(timer.escalate.to)})
    touched = replace(case, version=case.version + 1)
    decision = Decision(case=touched, events=(event,), mails=mails)
    if trigger is None:
        return decision
    try:
        step = fire_trigger(wf, touched, trigger=trigger, actor=SYSTEM, now=now)
    except RefusedError as refused:
        note = replace(event, comment=f"trigger {trigger} refused: {refused}")
        return replace(decision, events=(note,))
    return _merge(decision, step)


def skipped_firing(case: CaseSnapshot, due: DueTimer, reason: str, now: dt.datetime) -> Decision:
    """A firing dropped by the missed-firing policy, written to the case's log."""
    event = EventRecord(
        kind=EventKind.FIRING_SKIPPED,
        at=now,
        actor=SYSTEM_ACTOR,
        trigger=f"{due.timer}:{due.kind.value}",
        from_state=case.state,
        to_state=case.state,
        comment=reason,
        data={"timer": due.timer, "kind": due.kind.value, "due_at": due.due_at.isoformat()},
    )
    return Decision(case=replace(case, version=case.version + 1), events=(event,))


# ----------------------------------------------------------------------------- data, checklists


def set_data(
    wf: CompiledWorkflow,
    case: CaseSnapshot,
    *,
    actor: Actor,
    values: Mapping[str, Any],
    now: dt.datetime,
    comment: str = "",
) -> Decision:
    """Correct or add case data outside a transition (recorded; may fire automatic ones)."""
    _require_open(case)
    _check_role_exists(wf, actor)
    if not values:
        raise RefusedError(RefusalReason.MISSING_DATA, "give at least one field=value to set")
    if "cohort" in values and case.state != wf.workflow.initial_state:
        raise RefusedError(
            RefusalReason.INVALID_DATA,
            "the cohort can only be changed by a transition once a case has left its first state",
            fields=("cohort",),
        )
    clean = _coerce_all(wf, dict(values))
    data = {**case.data, **clean}
    cohort = data.get("cohort")
    changed = replace(
        case,
        data=data,
        cohort=cohort if isinstance(cohort, str) else case.cohort,
        version=case.version + 1,
    )
    event = EventRecord(
        kind=EventKind.DATA_SET,
        at=now,
        actor=actor.name,
        role=actor.role,
        from_state=case.state,
        to_state=case.state,
        comment=_comment(comment),
        data=clean,
    )
    return _run_automatic(wf, Decision(case=changed, events=(event,)), now)


def record_checklist(
    wf: CompiledWorkflow,
    case: CaseSnapshot,
    *,
    checklist: str,
    items: Mapping[str, tuple[str, str]],
    actor: Actor,
    now: dt.datetime,
) -> Decision:
    """Record the status and comment of one or many checklist items."""
    _require_open(case)
    spec = _checklist(wf, checklist)
    if actor.role not in spec.roles:
        raise RefusedError(
            RefusalReason.ROLE,
            f"role {actor.role!r} may not record {checklist}; allowed: {', '.join(spec.roles)}",
        )
    if not items:
        raise RefusedError(RefusalReason.MISSING_DATA, "give at least one ITEM=STATUS")
    statuses = {s.value for s in ItemStatus}
    current = dict(case.checklists.get(checklist, {}))
    recorded: dict[str, dict[str, str]] = {}
    for item_id, (status, comment) in items.items():
        _require_item(spec, checklist, item_id)
        if status not in statuses:
            raise RefusedError(
                RefusalReason.INVALID_DATA,
                f"{status!r} is not a status; use one of {', '.join(sorted(statuses))}",
            )
        current[item_id] = ChecklistItem(status=status, comment=_comment(comment))
        recorded[item_id] = {"status": status, "comment": current[item_id].comment}
    return _checklist_changed(
        wf, case, checklist, current, EventKind.CHECKLIST, {"items": recorded}, actor, now
    )


def answer_checklist(
    wf: CompiledWorkflow,
    case: CaseSnapshot,
    *,
    checklist: str,
    answers: Mapping[str, str],
    actor: Actor,
    now: dt.datetime,
) -> Decision:
    """Record the answers to the comments of one or many checklist items, by a role of
    the checklist's ``answered_by``. Only an item that needs revision (its status
    ``partly_met`` or ``not_met``) can be answered; a later answer replaces the earlier.
    The statuses are untouched: the reviewer decides again once the plan is resubmitted.
    """
    _require_open(case)
    spec = _checklist(wf, checklist)
    if actor.role not in spec.answered_by:
        raise RefusedError(
            RefusalReason.ROLE,
            f"role {actor.role!r} may not answer {checklist}; allowed: "
            f"{', '.join(spec.answered_by) or 'none (the checklist has no answered_by)'}",
        )
    if not answers:
        raise RefusedError(RefusalReason.MISSING_DATA, "give at least one ITEM=ANSWER")
    current = dict(case.checklists.get(checklist, {}))
    recorded: dict[str, str] = {}
    for item_id, text in answers.items():
        _require_item(spec, checklist, item_id)
        item = current.get(item_id)
        if item is None or item.status not in ANSWERABLE_STATUSES:
            waiting = [i for i, v in current.items() if v.status in ANSWERABLE_STATUSES]
            raise RefusedError(
                RefusalReason.INVALID_DATA,
                f"{checklist} item {item_id} does not need revision "
                f"(status {item.status if item else 'not recorded'}): only items that are "
                f"{' or '.join(ANSWERABLE_STATUSES)} can be answered; "
                f"those now: {', '.join(waiting) or 'none'}",
            )
        answer = _comment(text)
        if not answer:
            raise RefusedError(
                RefusalReason.MISSING_DATA, f"the answer to {checklist} item {item_id} is empty"
            )
        current[item_id] = replace(item, answer=answer)
        recorded[item_id] = answer
    return _checklist_changed(
        wf, case, checklist, current, EventKind.CHECKLIST_ANSWER, {"answers": recorded}, actor, now
    )


def _checklist(wf: CompiledWorkflow, checklist: str) -> Checklist:
    spec = wf.workflow.checklists.get(checklist)
    if spec is None:
        raise RefusedError(
            RefusalReason.INVALID_DATA,
            f"{checklist!r} is not a checklist; checklists: {', '.join(wf.workflow.checklists) or 'none'}",
        )
    return spec


def _require_item(spec: Checklist, checklist: str, item_id: str) -> None:
    if item_id not in spec.items:
        raise RefusedError(
            RefusalReason.INVALID_DATA,
            f"{item_id!r} is not an item of {checklist}; items: {', '.join(spec.items)}",
        )


def _checklist_changed(
    wf: CompiledWorkflow,
    case: CaseSnapshot,
    checklist: str,
    items: dict[str, ChecklistItem],
    kind: EventKind,
    data: dict[str, Any],
    actor: Actor,
    now: dt.datetime,
) -> Decision:
    """The case with the checklist's new items, and the event that records what changed."""
    changed = replace(
        case, checklists={**case.checklists, checklist: items}, version=case.version + 1
    )
    event = EventRecord(
        kind=kind,
        at=now,
        actor=actor.name,
        role=actor.role,
        trigger=checklist,
        from_state=case.state,
        to_state=case.state,
        data={"checklist": checklist, **data},
    )
    return _run_automatic(wf, Decision(case=changed, events=(event,)), now)


# ----------------------------------------------------------------------------- deadlines


def extend_deadline(
    wf: CompiledWorkflow,
    case: CaseSnapshot,
    *,
    timer: str,
    current_deadline: dt.datetime,
    new_deadline: dt.datetime | None = None,
    by: Duration | None = None,
    actor: Actor,
    reason: str,
    now: dt.datetime,
) -> Decision:
    """Move one deadline of one case (later or earlier), with a reason, by an allowed role."""
    _require_open(case)
    spec = wf.workflow.states[case.state].timers.get(timer)
    if spec is None:
        names = ", ".join(wf.workflow.states[case.state].timers) or "none"
        raise RefusedError(
            RefusalReason.INVALID_DATA,
            f"state {case.state!r} has no timer {timer!r}; its timers: {names}",
        )
    if actor.role not in spec.extend_roles:
        raise RefusedError(
            RefusalReason.ROLE,
            f"role {actor.role!r} may not move {timer}; allowed: {', '.join(spec.extend_roles) or 'nobody'}",
        )
    if not reason.strip():
        raise RefusedError(
            RefusalReason.MISSING_DATA, "moving a deadline needs a reason (--reason)"
        )
    if (new_deadline is None) == (by is None):
        raise RefusedError(
            RefusalReason.MISSING_DATA, "give either a new deadline (--to) or a span (--by)"
        )
    if by is not None:
        local = current_deadline.astimezone(wf.tz).replace(tzinfo=None) + by.delta
        new_deadline = to_utc(local, wf.tz)
    assert new_deadline is not None
    if new_deadline <= now:
        raise RefusedError(
            RefusalReason.INVALID_DATA,
            f"the new deadline {new_deadline.isoformat()} is not in the future",
        )
    arms = _arms_for(wf, case, timer, spec, new_deadline, armed_at=now)
    event = EventRecord(
        kind=EventKind.DEADLINE_EXTENDED,
        at=now,
        actor=actor.name,
        role=actor.role,
        trigger=timer,
        from_state=case.state,
        to_state=case.state,
        comment=_comment(reason),
        data={"timer": timer, "from": current_deadline.isoformat(), "to": new_deadline.isoformat()},
    )
    return Decision(
        case=replace(case, version=case.version + 1),
        events=(event,),
        arm=tuple(arms),
        cancel_timers=(timer,),
    )


# ----------------------------------------------------------------------------- migration


def migrate_case(
    old: CompiledWorkflow,
    new: CompiledWorkflow,
    case: CaseSnapshot,
    *,
    state_map: Mapping[str, str],
    actor: Actor,
    now: dt.datetime,
    kept_deadlines: Mapping[str, dt.datetime] | None = None,
    done_firings: Mapping[str, frozenset[str]] | None = None,
) -> Decision:
    """Move a running case to a newer definition version; its timers are recomputed.

    When the case stays in its state, ``kept_deadlines`` (timer name -> deadline)
    are the deadlines moved for this case (``case extend``), kept instead of the
    new version's, and ``done_firings`` (timer name -> firing keys such as
    ``escalation.0``) are the firings that already fired or were skipped in the
    state: they are not armed again (docs/time.md, "Migrating running cases").
    """
    kept = kept_deadlines or {}
    done = done_firings or {}
    target = state_map.get(case.state, case.state)
    if target not in new.workflow.states:
        raise RefusedError(
            RefusalReason.INVALID_STATE,
            f"state {case.state!r} has no counterpart in version {new.workflow.version}; "
            f"map it with --map {case.state}=NEW_STATE",
        )
    unknown = sorted(k for k in case.data if k not in new.workflow.fields)
    if unknown:
        raise RefusedError(
            RefusalReason.INVALID_DATA,
            f"the new version has no field {', '.join(unknown)}; add them to it before migrating",
            fields=tuple(unknown),
        )
    moved = replace(
        case,
        definition_id=new.definition_id,
        state=target,
        epoch=case.epoch + 1,
        entered_at=case.entered_at if target == case.state else now,
        version=case.version + 1,
        closed=new.workflow.states[target].terminal,
    )
    state = new.workflow.states[target]
    arms: list[TimerArm] = []
    stays = target == case.state
    for name, timer in state.timers.items():
        due_at = kept.get(name) if stays else None
        due_at = due_at or deadline_of(new, moved, timer)
        if due_at is not None:
            fired = done.get(name, ()) if stays else ()
            arms.extend(
                a
                for a in _arms_for(new, moved, name, timer, due_at, armed_at=now)
                if f"{a.kind.value}.{a.index}" not in fired
            )
    carried: dict[str, Any] = {}
    if stays and any(n in state.timers for n in kept):
        carried["kept_deadlines"] = {
            n: d.isoformat() for n, d in sorted(kept.items()) if n in state.timers
        }
    if stays and any(done.get(n) for n in state.timers):
        carried["not_rearmed"] = {
            n: sorted(k) for n, k in sorted(done.items()) if k and n in state.timers
        }
    event = EventRecord(
        kind=EventKind.MIGRATED,
        at=now,
        actor=actor.name,
        role=actor.role,
        from_state=case.state,
        to_state=target,
        data={
            "from_definition": old.definition_id,
            "to_definition": new.definition_id,
            "from_version": old.workflow.version,
            "to_version": new.workflow.version,
            **carried,
        },
    )
    return Decision(case=moved, events=(event,), arm=tuple(arms), cancel_pending=True)


# ----------------------------------------------------------------------------- helpers


def _check_role_exists(wf: CompiledWorkflow, actor: Actor) -> None:
    if actor.role is not None and actor.role not in wf.workflow.roles:
        raise RefusedError(
            RefusalReason.ROLE,
            f"{actor.role!r} is not a role of {wf.workflow.workflow}; "
            f"roles: {', '.join(wf.workflow.roles)}",
        )


def _require_open(case: CaseSnapshot) -> None:
    if case.closed:
        raise RefusedError(
            RefusalReason.INVALID_FROM_STATE, f"the case is closed (state {case.state!r})"
        )


def _coerce_one(wf: CompiledWorkflow, name: str, value: Any) -> JsonValue:
    try:
        return coerce(wf.workflow, name, value)
    except FieldValueError as exc:
        raise RefusedError(RefusalReason.INVALID_DATA, str(exc), fields=(name,)) from None


def _coerce_all(wf: CompiledWorkflow, values: dict[str, Any]) -> dict[str, JsonValue]:
    return {name: _coerce_one(wf, name, value) for name, value in values.items()}


def _coerce_valid(wf: CompiledWorkflow, values: Mapping[str, Any]) -> dict[str, JsonValue]:
    """The values that are valid for their fields (the others are left out)."""
    valid: dict[str, JsonValue] = {}
    for name, value in values.items():
        try:
            valid[name] = coerce(wf.workflow, name, value)
        except FieldValueError:
            continue
    return valid


def _comment(comment: str) -> str:
    try:
        return check_comment(comment)
    except FieldValueError as exc:
        raise RefusedError(RefusalReason.INVALID_DATA, str(exc), fields=("comment",)) from None
