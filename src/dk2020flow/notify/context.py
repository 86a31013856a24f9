"""The data a mail template sees: plain dicts, strings, numbers and datetimes.

Templates run in a sandbox, but the sandbox still lets a template call methods
on whatever it is given. So nothing here hands a template an ORM row, a
service or a pydantic model: the engine describes a case with the small frozen
views below, and :func:`build_context` turns them into a tree of plain dicts.
:func:`sample_context` goes through the same path with realistic values, for
template checks and previews: the workflow's own (its first organisation, fields,
cohorts, roles) and neutral ones (people and addresses at example.org).

Times in the context are timezone-aware; the ``date``/``datetime``/``time``
filters show them in the workflow's timezone (docs/templates.md).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from dk2020flow.definition.model import FieldType, ItemStatus, Text, Workflow, text_in


class MailKind(StrEnum):
    """Where in a workflow a mail is sent from (decides which variables are set)."""

    STATE_ENTRY = "state_entry"
    TRANSITION = "transition"
    TIMER = "timer"
    EVENT = "event"


# ----------------------------------------------------------------------------- input views


@dataclass(frozen=True, kw_only=True)
class CaseView:
    id: int | str
    reference: str
    state: str
    cohort: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    opened_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class OrganisationView:
    """The case's organisation as templates see it (``organisation.*``; DK2020's say
    ``municipality.*``, the same object)."""

    code: str
    name: str
    region: str = ""
    kind: str = ""
    country: str = ""
    group: str = ""
    titles: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RecipientView:
    name: str
    email: str
    role: str


@dataclass(frozen=True, kw_only=True)
class DeadlineView:
    """A timer of the case's current state. ``name`` is the timer's name in the workflow."""

    name: str
    due_at: dt.datetime
    extended: bool = False
    description: str | None = None
    """Defaults to the timer's description in the workflow file."""


@dataclass(frozen=True, kw_only=True)
class EventView:
    """A programme event (start conference, workshop) of a cohort."""

    name: str
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    location: str = ""
    cancelled: bool = False
    reminder: bool = False
    """True for the reminder mails sent before the event (same template)."""


@dataclass(frozen=True, kw_only=True)
class TransitionView:
    trigger: str
    comment: str = ""
    actor: str = ""
    """Who fired the trigger, as a person would read it (a name, or a role title)."""


@dataclass(frozen=True, kw_only=True)
class ChecklistEntry:
    status: ItemStatus | str | None = None
    comment: str = ""


@dataclass(frozen=True, kw_only=True)
class ChecklistView:
    name: str
    entries: Mapping[str, ChecklistEntry] = field(default_factory=dict)
    """Recorded statuses by item id; items without an entry show as not yet screened."""


# ----------------------------------------------------------------------------- building


_STATUS_TITLES: dict[str, dict[str, str]] = {
    "da": {
        "met": "opfyldt",
        "partly_met": "delvist opfyldt",
        "not_met": "ikke opfyldt",
        "not_applicable": "ikke relevant",
        "": "ikke screenet endnu",
    },
    "en": {
        "met": "met",
        "partly_met": "partly met",
        "not_met": "not met",
        "not_applicable": "not applicable",
        "": "not screened yet",
    },
}


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value


def _local(value: dt.datetime | dt.date, zone: ZoneInfo) -> dt.datetime | dt.date:
    """A date stays a date; a naive local datetime from the workflow file becomes aware."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    return value


_PLAIN_TYPES = frozenset({str, bool, int, float, dt.date, dt.datetime, dt.time, type(None)})


def _plain(value: Any, path: str) -> Any:
    """A deep copy made only of types a template may safely hold."""
    if type(value) in _PLAIN_TYPES:
        return value
    if type(value) is dict:
        return {str(k): _plain(v, f"{path}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, str | bool | int | float | dt.date | dt.time):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{path} is a {type(value).__name__}; templates get only plain data "
        "(text, numbers, booleans, dates, lists and dicts)"
    )


@dataclass(frozen=True, slots=True)
class _Fixed:
    """What a workflow's mail context holds in one language whatever the case:
    worked out once (a workflow never changes) and copied into each context."""

    workflow: Workflow
    title: str
    cohorts: tuple[dict[str, Any], ...]
    state_titles: dict[str, str]
    role_titles: dict[str, str]
    role_words: dict[str, tuple[re.Pattern[str], ...]]
    """By role: its title in each of the workflow's languages, to find in a name."""
    timer_titles: dict[tuple[str, str], str]
    """By (state, timer): the timer's title in this language ("" without one)."""
    transition_titles: dict[str, str]
    """The title of the first transition with each trigger."""
    checklists: dict[str, tuple[str, tuple[tuple[str, str], ...]]]
    """By name: the checklist's title and its items' (id, title)."""
    links: dict[str, Any]


_FIXED: dict[tuple[int, str], _Fixed] = {}
_FIXED_KEPT = 64


def _fixed(workflow: Workflow, language: str) -> _Fixed:
    key = (id(workflow), language)
    found = _FIXED.get(key)
    if found is not None and found.workflow is workflow:
        return found
    zone = ZoneInfo(workflow.timezone)
    transition_titles: dict[str, str] = {}
    for transition in workflow.transitions:
        if transition.trigger not in transition_titles:
            transition_titles[transition.trigger] = text_in(
                transition.title, language, transition.trigger
            )
    found = _Fixed(
        workflow=workflow,
        title=text_in(workflow.title, language, workflow.workflow),
        cohorts=tuple(
            {
                "name": name,
                "title": text_in(cohort.title, language, name),
                "application_deadline": _local(cohort.application_deadline, zone),
                "start": _local(cohort.start, zone),
                "planned_end": _local(cohort.planned_end, zone),
            }
            for name, cohort in workflow.cohorts.items()
        ),
        state_titles={
            name: text_in(state.title, language, name) for name, state in workflow.states.items()
        },
        role_titles={
            name: text_in(role.title, language, name) for name, role in workflow.roles.items()
        },
        role_words={
            name: _title_patterns(role.title, workflow.languages)
            for name, role in workflow.roles.items()
        },
        timer_titles={
            (state_name, timer_name): text_in(timer.title, language)
            for state_name, state in workflow.states.items()
            for timer_name, timer in state.timers.items()
        },
        transition_titles=transition_titles,
        checklists={
            name: (
                text_in(checklist.title, language, name),
                tuple(
                    (item_id, text_in(item_title, language, item_id))
                    for item_id, item_title in checklist.items.items()
                ),
            )
            for name, checklist in workflow.checklists.items()
        },
        links={
            "programme": workflow.links.programme,
            "help_email": workflow.links.help_email,
            "help_name": workflow.links.help_name,
        },
    )
    if len(_FIXED) >= _FIXED_KEPT:
        _FIXED.clear()
    _FIXED[key] = found
    return found


_NO_ENTRY = ChecklistEntry()


def _title_patterns(title: Text, languages: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """The role's titles ("Borgmester", "Mayor") as case-blind patterns that match the
    start of a word, so "Borgmesteren i København" holds "Borgmester"."""
    words = {text_in(title, language).strip() for language in languages}
    if isinstance(title, str):
        words.add(title.strip())
    return tuple(
        re.compile(rf"(?<!\w){re.escape(word)}", re.IGNORECASE) for word in sorted(words) if word
    )


def name_is_title(name: str, patterns: tuple[re.Pattern[str], ...]) -> bool:
    """True when a recipient's name already is or holds their role's title
    ("Borgmesteren i København" for the mayor): then the greeting does not add it."""
    return bool(name) and any(pattern.search(name) for pattern in patterns)


def build_context(
    workflow: Workflow,
    language: str,
    *,
    now: dt.datetime,
    case: CaseView,
    organisation: OrganisationView,
    recipient: RecipientView,
    deadline: DeadlineView | None = None,
    event: EventView | None = None,
    transition: TransitionView | None = None,
    checklist: ChecklistView | None = None,
    case_link: str = "",
) -> dict[str, Any]:
    """The template context for one mail to one recipient (plain data only).

    ``now`` is the time the mail is made (from the injected clock); it decides
    ``deadline.overdue``. ``deadline`` is the timer that fired for timer mails,
    and may be the state's first deadline for state-entry mails. ``case_link`` is the
    address of the case this copy carries ("" for none: docs/templates.md).
    """
    fixed = _fixed(workflow, language)
    now = _aware(now, "now")
    state = workflow.states.get(case.state)

    shown_organisation = {
        "code": organisation.code,
        "name": organisation.name,
        "title": organisation.titles.get(language) or organisation.name,
        "region": organisation.region,
        "kind": organisation.kind,
        "country": organisation.country,
        "group": organisation.group,
    }
    cohorts = [dict(cohort) for cohort in fixed.cohorts]
    cohort_ctx = next((dict(c) for c in cohorts if c["name"] == case.cohort), None)
    cohort_title = cohort_ctx["title"] if cohort_ctx else ""

    deadline_ctx: dict[str, Any] | None = None
    if deadline is not None:
        timer = state.timers.get(deadline.name) if state is not None else None
        description = deadline.description
        if description is None:
            description = timer.description if timer is not None else ""
        deadline_ctx = {
            "name": deadline.name,
            "title": fixed.timer_titles.get((case.state, deadline.name), ""),
            "description": description,
            "due_at": _aware(deadline.due_at, "deadline.due_at"),
            "extended": deadline.extended,
            "overdue": now >= deadline.due_at,
        }

    event_ctx: dict[str, Any] | None = None
    if event is not None:
        event_ctx = {
            "name": event.name,
            "title": event.title,
            "starts_at": _aware(event.starts_at, "event.starts_at"),
            "ends_at": _aware(event.ends_at, "event.ends_at"),
            "location": event.location,
            "cancelled": event.cancelled,
            "reminder": event.reminder,
        }

    transition_ctx: dict[str, Any] | None = None
    if transition is not None:
        title = fixed.transition_titles.get(transition.trigger, "")
        transition_ctx = {
            "trigger": transition.trigger,
            "title": title or transition.trigger,
            "comment": transition.comment,
            "actor": transition.actor,
        }

    checklist_ctx: dict[str, Any] | None = None
    if checklist is not None:
        checklist_title, definition_items = fixed.checklists[checklist.name]
        titles = _STATUS_TITLES.get(language, _STATUS_TITLES["en"])
        entries = checklist.entries
        items = []
        for item_id, item_title in definition_items:
            entry = entries.get(item_id, _NO_ENTRY)
            status = str(entry.status) if entry.status is not None else ""
            items.append(
                {
                    "id": item_id,
                    "title": item_title,
                    "status": status,
                    "status_title": titles.get(status, status),
                    "comment": entry.comment,
                }
            )
        checklist_ctx = {
            "name": checklist.name,
            "title": checklist_title,
            "items": items,
        }

    return {
        "language": language,
        "now": now,
        "workflow": {
            "name": workflow.workflow,
            "title": fixed.title,
        },
        "case": {
            "id": case.id,
            "reference": case.reference,
            "state": case.state,
            "state_title": fixed.state_titles[case.state] if state else case.state,
            "cohort": case.cohort,
            "cohort_title": cohort_title,
            "data": _plain(dict(case.data), "case.data"),
            "opened_at": _aware(case.opened_at, "case.opened_at"),
        },
        "organisation": shown_organisation,
        # The name templates written before organisations were general use (DK2020's do).
        "municipality": shown_organisation,
        "recipient": {
            "name": recipient.name,
            "email": recipient.email,
            "role": recipient.role,
            "role_title": fixed.role_titles.get(recipient.role, ""),
            "name_is_title": name_is_title(
                recipient.name, fixed.role_words.get(recipient.role, ())
            ),
        },
        "deadline": deadline_ctx,
        "event": event_ctx,
        "cohort": cohort_ctx,
        "cohorts": cohorts,
        "checklist": checklist_ctx,
        "transition": transition_ctx,
        "links": dict(fixed.links),
        "case_link": case_link,
    }


# ----------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class TemplateUse:
    """One place in a workflow that sends a template."""

    template: str
    kind: MailKind
    state: str | None = None
    timer: str | None = None
    trigger: str | None = None
    cohort: str | None = None
    event: str | None = None
    roles: tuple[str, ...] = ()


def template_uses(workflow: Workflow) -> list[TemplateUse]:
    """Every place the workflow sends a mail, in file order."""
    return list(_template_uses(workflow))


_USES: dict[int, tuple[Workflow, tuple[TemplateUse, ...]]] = {}


def _template_uses(workflow: Workflow) -> tuple[TemplateUse, ...]:
    """``template_uses``, worked out once per workflow (the template check asks for
    it for every sample it makes)."""
    found = _USES.get(id(workflow))
    if found is not None and found[0] is workflow:
        return found[1]
    uses = tuple(_find_template_uses(workflow))
    if len(_USES) >= _FIXED_KEPT:
        _USES.clear()
    _USES[id(workflow)] = (workflow, uses)
    return uses


def _find_template_uses(workflow: Workflow) -> list[TemplateUse]:
    uses: list[TemplateUse] = []
    for state_name, state in workflow.states.items():
        for spec in state.on_entry.mail:
            roles = spec.to + spec.cc
            uses.append(TemplateUse(spec.template, MailKind.STATE_ENTRY, state_name, roles=roles))
        for timer_name, timer in state.timers.items():
            specs = list(timer.on_due.mail)
            specs += [part.mail for part in (timer.reminders, timer.repeat, timer.escalate) if part]
            for spec in specs:
                uses.append(
                    TemplateUse(
                        spec.template,
                        MailKind.TIMER,
                        state_name,
                        timer=timer_name,
                        roles=spec.to + spec.cc,
                    )
                )
    for transition in workflow.transitions:
        for spec in transition.mail:
            uses.append(
                TemplateUse(
                    spec.template,
                    MailKind.TRANSITION,
                    transition.to,
                    trigger=transition.trigger,
                    roles=spec.to + spec.cc,
                )
            )
    for cohort_name, cohort in workflow.cohorts.items():
        for event_name, event in cohort.events.items():
            spec = event.mail
            uses.append(
                TemplateUse(
                    spec.template,
                    MailKind.EVENT,
                    event.states[0],
                    cohort=cohort_name,
                    event=event_name,
                    roles=spec.to + spec.cc,
                )
            )
    return uses


def template_kinds(workflow: Workflow) -> dict[str, frozenset[MailKind]]:
    """For each template the workflow names: the kinds of place it is sent from."""
    kinds: dict[str, set[MailKind]] = {}
    for use in _template_uses(workflow):
        kinds.setdefault(use.template, set()).add(use.kind)
    return {name: frozenset(found) for name, found in kinds.items()}


EXAMPLE_ORGANISATION_CODE = "EX-1"


def sample_organisation(workflow: Workflow) -> OrganisationView:
    """A neutral example organisation for a sample context (in the workflow's calendar
    country, if it names one). The first of the workflow's own data set is
    ``service.participants.sample_of_data_set`` (the notify layer reads no CSV)."""
    return OrganisationView(
        code=EXAMPLE_ORGANISATION_CODE,
        name="Example Organisation",
        region="Example Region",
        country=getattr(workflow.calendar, "country", None) or "",
    )


_SAMPLE_PEOPLE = (
    ("Alex Morgan", "alex.morgan@example.org"),
    ("Sam Rivera", "sam.rivera@example.org"),
    ("Robin Lee", "robin.lee@example.org"),
    ("Kim Novak", "kim.novak@example.org"),
)
"""Neutral people for the sample recipients, one per role in the workflow's order."""


def _sample_person(workflow: Workflow, role: str) -> tuple[str, str]:
    """The sample recipient of ``role``: its shared mailbox when the workflow gives one,
    else a neutral person."""
    role_def = workflow.roles[role]
    if role_def.email:
        title = text_in(role_def.title, workflow.default_language, role)
        return role_def.name or title, role_def.email
    return _SAMPLE_PEOPLE[list(workflow.roles).index(role) % len(_SAMPLE_PEOPLE)]


def _sample_data(workflow: Workflow, language: str, cohort: str | None) -> dict[str, Any]:
    """A value of each of the workflow's fields, stored as a case stores it (dates as
    ISO text): so a template that shows ``case.data.X`` is checked with one."""
    data: dict[str, Any] = {}
    for name, field_def in workflow.fields.items():
        kind = field_def.type
        if kind is FieldType.COHORT:
            value: Any = cohort
        elif kind is FieldType.BOOLEAN:
            value = True
        elif kind is FieldType.INTEGER:
            value = 2020
        elif kind is FieldType.DATE:
            value = "2020-08-27"
        elif kind is FieldType.DATETIME:
            value = "2020-08-27T10:00:00+00:00"
        elif kind is FieldType.EMAIL:
            value = "alex.morgan@example.org"
        elif kind is FieldType.URL:
            value = f"https://example.org/{name}.pdf"
        elif kind is FieldType.CHOICE:
            value = field_def.choices[0]
        else:
            value = text_in(field_def.title, language, name) or name
        data[name] = value[: field_def.max_length] if isinstance(value, str) else value
    return data


def _sample_state(workflow: Workflow, kind: MailKind, template: str | None) -> TemplateUse:
    for use in _template_uses(workflow):
        if use.kind is kind and (template is None or use.template == template):
            return use
    for use in _template_uses(workflow):
        if use.kind is kind:
            return use
    return TemplateUse(template or "", kind, workflow.initial_state)


def sample_context(
    workflow: Workflow,
    language: str,
    kind: MailKind,
    *,
    template: str | None = None,
    sparse: bool = False,
    recipient: RecipientView | None = None,
    organisation: OrganisationView | None = None,
) -> dict[str, Any]:
    """A realistic context for checking and previewing a template: ``organisation``
    (default: :func:`sample_organisation`, a neutral example) in the
    workflow's first cohort with events, people and addresses at example.org.

    With ``template``, the sample sits where the workflow sends that template
    (its state, timer or event). With ``sparse=True``, every variable that may
    be missing in real use is missing: ``case.data`` is empty and only the
    variables the kind guarantees are set (``deadline`` for timer mails,
    ``event`` for event mails, ``transition`` for transition mails).
    ``recipient`` replaces the sample recipient (a person of the role the
    workflow sends the template to).
    """
    organisation = organisation or sample_organisation(workflow)
    zone = ZoneInfo(workflow.timezone)
    use = _sample_state(workflow, kind, template)
    state_name = use.state or workflow.initial_state
    state = workflow.states[state_name]
    cohort_name = use.cohort or next(
        (name for name, cohort in workflow.cohorts.items() if cohort.events), None
    )
    if cohort_name is None and workflow.cohorts:
        cohort_name = next(iter(workflow.cohorts))

    role = next((r for r in use.roles if r in workflow.roles), None) or next(
        iter(workflow.contact_roles() or workflow.roles)
    )
    name, email = _sample_person(workflow, role)

    deadline: DeadlineView | None = None
    if kind is MailKind.TIMER or (kind is MailKind.STATE_ENTRY and state.timers and not sparse):
        timer_name = use.timer or next(iter(state.timers), "deadline")
        timer = state.timers.get(timer_name)
        due = dt.datetime(2020, 8, 31, 23, 59, tzinfo=zone)
        if timer is not None and isinstance(timer.due.at, dt.datetime):
            due = timer.due.at.replace(tzinfo=zone)
        elif timer is not None and timer.due.cohort_date and cohort_name:
            value = workflow.cohorts[cohort_name].date(timer.due.cohort_date)
            local = (
                value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
            )
            due = local.replace(tzinfo=zone)
            if timer.due.after is not None:
                due = (local + timer.due.after.delta).replace(tzinfo=zone)
        elif timer is not None:
            local = dt.datetime(2021, 1, 4, 9, 0)  # noqa: DTZ001 - local wall time
            if timer.due.after is not None:
                local += timer.due.after.delta
            elif timer.due.business_days is not None:
                local += dt.timedelta(days=round(timer.due.business_days * 7 / 5))
            if timer.due.time is not None:
                hour, minute = (int(part) for part in timer.due.time.split(":"))
                local = local.replace(hour=hour, minute=minute)
            due = local.replace(tzinfo=zone)
        deadline = DeadlineView(name=timer_name, due_at=due)

    event: EventView | None = None
    if kind is MailKind.EVENT:
        event = _sample_event(workflow, language, use, cohort_name, zone)

    now = dt.datetime(2020, 6, 15, 9, 0, tzinfo=zone)
    if deadline is not None:
        late = kind is MailKind.TIMER and (
            template is None or "overdue" in template or "escalation" in template
        )
        now = deadline.due_at + (dt.timedelta(hours=8) if late else -dt.timedelta(days=3))
    elif event is not None:
        now = event.starts_at - dt.timedelta(days=14)

    transition: TransitionView | None = None
    entering = [t for t in workflow.transitions if t.to == state_name]
    if kind is MailKind.TRANSITION or (kind is MailKind.STATE_ENTRY and entering and not sparse):
        trigger = use.trigger or (entering[0].trigger if entering else "withdraw")
        transition = TransitionView(
            trigger=trigger,
            comment=(
                "Se vores bemærkninger til de enkelte krav nedenfor."
                if language == "da"
                else "See our comments on each requirement below."
            ),
            actor=name,
        )

    checklist: ChecklistView | None = None
    if workflow.checklists and not sparse:
        checklist_name = next(iter(workflow.checklists))
        items = list(workflow.checklists[checklist_name].items)
        entries = {item: ChecklistEntry(status=ItemStatus.MET) for item in items}
        if len(items) > 2:
            entries[items[2]] = ChecklistEntry(
                status=ItemStatus.PARTLY_MET,
                comment="Delmål for 2030 mangler." if language == "da" else "2030 target missing.",
            )
        checklist = ChecklistView(name=checklist_name, entries=entries)

    return build_context(
        workflow,
        language,
        now=now,
        case=CaseView(
            id=SAMPLE_CASE_ID,
            reference=f"{workflow.workflow}-{organisation.code}",
            state=state_name,
            cohort=None if sparse else cohort_name,
            data={}
            if sparse
            else {"cohort": cohort_name, **_sample_data(workflow, language, cohort_name)},
            opened_at=dt.datetime(2020, 6, 15, 9, 0, tzinfo=zone),
        ),
        organisation=organisation,
        recipient=recipient or RecipientView(name=name, email=email, role=role),
        deadline=deadline,
        event=event,
        transition=transition,
        checklist=checklist,
        case_link="" if sparse else SAMPLE_CASE_LINK,
    )


SAMPLE_CASE_ID = 1
SAMPLE_CASE_LINK = (
    "https://portal.example.org/sign-in/case"
    "?token=1.1599170340.c2FtcGxlLW5vdC1hLXJlYWwtc2lnbmF0dXJlLXh4eHh4eHg"
)
"""The ``case_link`` of a sample (its signature is not a real one)."""


def _sample_event(
    workflow: Workflow,
    language: str,
    use: TemplateUse,
    cohort_name: str | None,
    zone: ZoneInfo,
) -> EventView:
    cohort = workflow.cohorts.get(use.cohort or cohort_name or "")
    if cohort is not None and cohort.events:
        event_name = use.event if use.event in cohort.events else next(iter(cohort.events))
        spec = cohort.events[event_name]
        starts = spec.at.replace(tzinfo=zone)
        return EventView(
            name=event_name,
            title=text_in(spec.title, language, event_name),
            starts_at=starts,
            ends_at=(spec.at + spec.duration.delta).replace(tzinfo=zone),
            location=spec.location,
            cancelled=spec.cancelled,
        )
    starts = dt.datetime(2020, 11, 26, 10, 0, tzinfo=zone)
    return EventView(
        name="event",
        title="Arrangement" if language == "da" else "Programme event",
        starts_at=starts,
        ends_at=starts + dt.timedelta(hours=6),
        location="Online",
    )


def event_view(
    workflow: Workflow,
    language: str,
    cohort: str,
    event: str,
    *,
    reminder: bool = False,
) -> EventView:
    """The view of a programme event as the workflow file describes it."""
    zone = ZoneInfo(workflow.timezone)
    spec = workflow.cohorts[cohort].events[event]
    return EventView(
        name=event,
        title=text_in(spec.title, language, event),
        starts_at=spec.at.replace(tzinfo=zone),
        ends_at=(spec.at + spec.duration.delta).replace(tzinfo=zone),
        location=spec.location,
        cancelled=spec.cancelled,
        reminder=reminder,
    )
