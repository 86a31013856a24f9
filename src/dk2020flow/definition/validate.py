"""The checks a schema cannot express: references, the state graph, types of values, time.

``validate`` runs every check over a ``Workflow`` that passed the schema and
returns all problems at once, each located at the node that causes it. The
codes are listed in ``diagnostics.CODES`` and explained in docs/diagnostics.md.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dk2020flow.definition.calendar import supported_countries
from dk2020flow.definition.diagnostics import Diagnostic, Severity
from dk2020flow.definition.durations import Duration
from dk2020flow.definition.model import (
    ANY_OPEN_STATE,
    DOCUMENT_TYPES,
    BusinessDays,
    Condition,
    FieldDef,
    FieldType,
    Workflow,
    parse_size,
)
from dk2020flow.definition.partial import Damage
from dk2020flow.definition.source import Locator, NodePath
from dk2020flow.definition.template_check import TemplateSet, check_templates, mail_uses

EARLIEST = dt.datetime(2000, 1, 1)  # noqa: DTZ001 - local times of the workflow's own zone
LATEST = dt.datetime(2100, 12, 31, 23, 59)  # noqa: DTZ001
EVENT_SLACK = dt.timedelta(days=183)
"""How far before its cohort's start or after its planned end an event may plausibly be."""


class _Report:
    def __init__(self, locator: Locator, file: str, damage: Damage | None = None) -> None:
        self.locator = locator
        self.file = file
        self.items: list[Diagnostic] = []
        self.damage = damage if damage is not None else Damage()

    def damaged(self, kind: str, name: object) -> bool:
        """True when ``name`` had a shape error (already reported): say nothing more of it."""
        return self.damage.has(kind, name)

    def add(
        self,
        code: str,
        path: NodePath,
        message: str,
        hint: str,
        *,
        key: bool = False,
        severity: Severity = Severity.ERROR,
    ) -> None:
        line, column = self.locator.find(path, key=key)
        self.items.append(
            Diagnostic(
                file=self.file,
                line=line,
                column=column,
                code=code,
                message=message,
                hint=hint,
                severity=severity,
            )
        )

    def unknown(
        self,
        code: str,
        path: NodePath,
        what: str,
        name: str,
        known: Iterable[str],
        *,
        key: bool = False,
    ) -> None:
        if self.damaged(what, name):
            return
        self.add(code, path, f"unknown {what} `{name}`", _suggest(name, known, what), key=key)


def validate(
    workflow: Workflow,
    locator: Locator,
    file: str,
    *,
    templates: TemplateSet | None,
    damage: Damage | None = None,
    folder: Path | None = None,
) -> list[Diagnostic]:
    """Every cross-reference and semantic problem of ``workflow``; templates too when given.

    ``folder`` is the workflow file's folder when it was read from disk: the files the
    workflow names (its ``organisations:`` data set) must be there.

    ``damage`` says what ``partial.salvage`` cut from a file with shape errors: problems
    that only the cut causes are not reported, and the graph checks are skipped when a
    state or transition was cut.
    """
    report = _Report(locator, file, damage)
    graph = not report.damage.graph
    if graph:
        _initial_state(workflow, report)
    _timezone(workflow, report)
    _calendar(workflow, report)
    _transitions(workflow, report)
    _mail_recipients(workflow, report)
    _checklists(workflow, report)
    _documents(workflow, report)
    _timers(workflow, report, cohort_warnings=graph)
    _cohorts(workflow, report)
    if graph:
        _graph(workflow, report)
    if folder is not None:
        _data_set(workflow, folder, report)
    if templates is not None:
        report.items += check_templates(workflow, templates, locator, file)
    return report.items


def _data_set(workflow: Workflow, folder: Path, report: _Report) -> None:
    """DF064: the ``organisations:`` file is a readable file beside the workflow.

    Its rows are checked when ``workflow load`` imports it (``service/participants.py``)."""
    if workflow.organisations is None:
        return
    path = folder / workflow.organisations
    if not path.is_file():
        report.add(
            "DF064",
            ("organisations",),
            f"the organisations file `{workflow.organisations}` is not there (looked for {path})",
            "give a CSV file's path relative to the workflow file's folder",
        )


# ----------------------------------------------------------------------------- metadata


def _initial_state(workflow: Workflow, report: _Report) -> None:
    initial = [name for name, state in workflow.states.items() if state.initial]
    if not initial:
        report.add(
            "DF020",
            ("states",),
            "no state is marked `initial: true`",
            "mark the state every case starts in with `initial: true`",
            key=True,
        )
    for extra in initial[1:]:
        report.add(
            "DF020",
            ("states", extra, "initial"),
            f"`{extra}` is a second initial state (`{initial[0]}` is the first)",
            "keep `initial: true` on one state; mark other entry points `may_open_here: true`",
            key=True,
        )


def _timezone(workflow: Workflow, report: _Report) -> None:
    try:
        ZoneInfo(workflow.timezone)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        report.add(
            "DF050",
            ("timezone",),
            f"unknown timezone `{workflow.timezone}`",
            "use a name from the IANA time zone database, "
            "such as Europe/Brussels or America/Toronto",
        )


def _calendar(workflow: Workflow, report: _Report) -> None:
    spec = workflow.calendar
    countries = supported_countries()
    if spec.country is None:
        if spec.subdivision is not None:
            report.add(
                "DF056",
                ("calendar", "subdivision"),
                "a calendar without a country has no subdivisions",
                "write the `country` whose subdivision this is, or remove `subdivision`",
            )
    elif spec.country not in countries:
        close = difflib.get_close_matches(spec.country.upper(), sorted(countries), n=1)
        report.add(
            "DF055",
            ("calendar", "country"),
            f"no public holidays are known for country `{spec.country}`",
            f"did you mean `{close[0]}`?"
            if close
            else "write an ISO 3166-1 code in capitals, such as DK, DE, BE or FR",
        )
    elif spec.subdivision is not None and spec.subdivision not in countries[spec.country]:
        known = countries[spec.country]
        report.add(
            "DF056",
            ("calendar", "subdivision"),
            f"{spec.country} has no subdivision `{spec.subdivision}`",
            _suggest(spec.subdivision, known, "subdivision")
            if known
            else f"{spec.country}'s holidays are the same everywhere: remove `subdivision`",
        )
    if spec.closed_on is not None and spec.country != "DK":
        whose = "has no country" if spec.country is None else f"is {spec.country}'s"
        report.add(
            "DF057",
            ("calendar", "closed_on"),
            f"`closed_on` names Danish optional days, but the calendar {whose}",
            "write the days your office closes as `closures` (name and date) instead"
            if spec.country is not None
            else "write `country: DK` for Denmark's calendar, or the days your office "
            "closes as `closures` (name and date)",
        )
    for key in ("extra_closed_days", "extra_working_days"):
        for position, day in enumerate(getattr(spec, key)):
            _plausible(report, day, ("calendar", key, position))
    for position, closure in enumerate(spec.closures):
        for date_key, day in (("on", closure.on), ("from", closure.from_), ("to", closure.to)):
            if day is not None:
                _plausible(report, day, ("calendar", "closures", position, date_key))


# ----------------------------------------------------------------------------- transitions


def _transitions(workflow: Workflow, report: _Report) -> None:
    for index, transition in enumerate(workflow.transitions):
        base: NodePath = ("transitions", index)
        for position, source in enumerate(transition.from_):
            if source == ANY_OPEN_STATE:
                continue
            if source not in workflow.states:
                report.unknown("DF021", (*base, "from", position), "state", source, workflow.states)
            elif workflow.states[source].terminal and not report.damaged("state", source):
                report.add(
                    "DF031",
                    (*base, "from", position),
                    f"`{transition.trigger}` leaves the terminal state `{source}`",
                    "a terminal state ends a case: remove `terminal: true` or this source",
                )
        if transition.to not in workflow.states:
            report.unknown("DF021", (*base, "to"), "state", transition.to, workflow.states)
        for position, role in enumerate(transition.roles):
            if role not in workflow.roles:
                report.unknown("DF022", (*base, "roles", position), "role", role, workflow.roles)
        for part in ("requires", "accepts"):
            for position, name in enumerate(getattr(transition, part)):
                if name not in workflow.fields:
                    report.unknown("DF024", (*base, part, position), "field", name, workflow.fields)
        for name, value in transition.sets.items():
            path = (*base, "sets", name)
            if name not in workflow.fields:
                report.unknown("DF024", path, "field", name, workflow.fields, key=True)
            else:
                _check_value(workflow, report, name, value, path, "sets")
        _conditions(workflow, report, transition.when, (*base, "when"))


def _conditions(
    workflow: Workflow, report: _Report, conditions: Sequence[Condition], path: NodePath
) -> None:
    for index, condition in enumerate(conditions):
        here = (*path, index)
        if condition.field is not None:
            if condition.field not in workflow.fields:
                report.unknown("DF024", (*here, "field"), "field", condition.field, workflow.fields)
            elif condition.equals is not None:
                _check_value(
                    workflow, report, condition.field, condition.equals, (*here, "equals"), "equals"
                )
            elif condition.in_ is not None:
                for position, value in enumerate(condition.in_):
                    _check_value(
                        workflow, report, condition.field, value, (*here, "in", position), "in"
                    )
        for position, name in enumerate(condition.all_true or ()):
            field = workflow.fields.get(name)
            if field is None:
                report.unknown(
                    "DF024", (*here, "all_true", position), "field", name, workflow.fields
                )
            elif field.type is not FieldType.BOOLEAN and not report.damaged("field", name):
                report.add(
                    "DF041",
                    (*here, "all_true", position),
                    f"all_true needs boolean fields; `{name}` is of type {field.type}",
                    f"give `{name}` `type: boolean`, or test it with `field: {name}` and `equals:`",
                )
        if condition.checklist is not None and condition.checklist not in workflow.checklists:
            report.unknown(
                "DF026", (*here, "checklist"), "checklist", condition.checklist, workflow.checklists
            )
        if condition.any is not None:
            _conditions(workflow, report, condition.any, (*here, "any"))


def _check_value(
    workflow: Workflow, report: _Report, name: str, value: Any, path: NodePath, where: str
) -> None:
    """DF040/DF025 when ``value`` cannot be a value of field ``name``."""
    field = workflow.fields[name]
    if value is None or report.damaged("field", name):
        return
    if field.type is FieldType.COHORT and isinstance(value, str):
        if value not in workflow.cohorts:
            report.unknown("DF025", path, "cohort", value, workflow.cohorts)
        return
    expected = _value_fits(field, value)
    if expected:
        report.add(
            "DF040",
            path,
            f"{where}: {value!r} is not a value of `{name}` (type {field.type})",
            f"write {expected}",
        )


def _value_fits(field: FieldDef, value: Any) -> str:
    """What a value of ``field`` looks like, or "" when ``value`` is one."""
    match field.type:
        case FieldType.BOOLEAN:
            return "" if isinstance(value, bool) else "true or false"
        case FieldType.INTEGER:
            ok = isinstance(value, int) and not isinstance(value, bool)
            return "" if ok else "a whole number"
        case FieldType.CHOICE:
            ok = isinstance(value, str) and value in field.choices
            return "" if ok else "one of " + ", ".join(field.choices)
        case FieldType.COHORT:
            return "the name of a cohort"
        case FieldType.DATE:
            return "" if _parses(dt.date.fromisoformat, value) else "a date such as 2021-06-30"
        case FieldType.DATETIME:
            ok = _parses(dt.datetime.fromisoformat, value)
            return "" if ok else "a date and time such as 2021-06-30T12:00"
        case _:
            return "" if isinstance(value, str) else "a text (in quotes)"


def _parses(parse: Any, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse(value)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------- mail, checklists


def _mail_recipients(workflow: Workflow, report: _Report) -> None:
    for use in mail_uses(workflow):
        for part in ("to", "cc"):
            for position, role in enumerate(getattr(use.spec, part)):
                path = (*use.path, part, position)
                if role not in workflow.roles:
                    report.unknown("DF022", path, "role", role, workflow.roles)
                elif not workflow.roles[role].receives_mail and not report.damaged("role", role):
                    report.add(
                        "DF023",
                        path,
                        f"role `{role}` does not receive mail",
                        f"mark the role `receives_mail: true` or send to one of: "
                        f"{', '.join(workflow.contact_roles()) or '(no role receives mail)'}",
                    )


def _checklists(workflow: Workflow, report: _Report) -> None:
    """DF022 for the roles that record and answer a checklist; DF034 for a role that does
    both (it would answer its own comments)."""
    for name, checklist in workflow.checklists.items():
        for part in ("roles", "answered_by"):
            for position, role in enumerate(getattr(checklist, part)):
                if role not in workflow.roles:
                    path = ("checklists", name, part, position)
                    report.unknown("DF022", path, "role", role, workflow.roles)
        for position, role in enumerate(checklist.answered_by):
            if role in checklist.roles and role in workflow.roles:
                report.add(
                    "DF034",
                    ("checklists", name, "answered_by", position),
                    f"role `{role}` both records and answers checklist `{name}`",
                    f"take `{role}` out of `answered_by` (or out of `roles`): the answers "
                    "are the other side's reply to the reviewer's comments",
                    severity=Severity.WARNING,
                )


# ----------------------------------------------------------------------------- documents


def _documents(workflow: Workflow, report: _Report) -> None:
    """DF070–DF074: the documents' types, sizes and roles, and the documents transitions need."""
    for name, spec in workflow.documents.items():
        base: NodePath = ("documents", name)
        for position, kind in enumerate(spec.types):
            if kind not in DOCUMENT_TYPES:
                report.add(
                    "DF071",
                    (*base, "types", position),
                    f"unknown document type `{kind}`",
                    _suggest(kind, DOCUMENT_TYPES, "document type"),
                )
        try:
            parse_size(spec.max_size)
        except ValueError as exc:
            report.add(
                "DF072",
                (*base, "max_size"),
                f"max_size: {exc}",
                "write a number and a unit, e.g. 20MB (20,000,000 bytes), 500kB or 20MiB; "
                "at most 100MB",
            )
        for position, role in enumerate(spec.roles):
            if role not in workflow.roles:
                report.unknown("DF022", (*base, "roles", position), "role", role, workflow.roles)
        if not workflow.upload_roles(name) and "transitions" not in report.damage.top:
            report.add(
                "DF073",
                base,
                f"nobody may upload `{name}`: it has no `roles` and no transition with roles "
                "needs it",
                "give the document `roles: [...]`, or name it in the `needs_documents` of a "
                "transition people fire",
                key=True,
                severity=Severity.WARNING,
            )
    for index, transition in enumerate(workflow.transitions):
        for position, name in enumerate(transition.needs_documents):
            path: NodePath = ("transitions", index, "needs_documents", position)
            needed = workflow.documents.get(name)
            if needed is None:
                report.unknown("DF070", path, "document", name, workflow.documents)
                continue
            if not needed.roles or any(r not in workflow.roles for r in needed.roles):
                continue  # every role that fires it may upload it, or DF022 said the list is wrong
            barred = [r for r in transition.roles if r not in needed.roles and r in workflow.roles]
            if barred:
                report.add(
                    "DF074",
                    path,
                    f"{'role' if len(barred) == 1 else 'roles'} "
                    f"{', '.join(f'`{r}`' for r in barred)} may fire `{transition.trigger}` "
                    f"but not upload `{name}`, which it needs",
                    f"add {', '.join(barred)} to the `roles` of document `{name}`, or let someone "
                    "else fire the transition",
                    severity=Severity.WARNING,
                )


# ----------------------------------------------------------------------------- timers and time


def _timers(workflow: Workflow, report: _Report, *, cohort_warnings: bool = True) -> None:
    without_cohort = _states_without_cohort(workflow) if cohort_warnings else set()
    for state_name, state in workflow.states.items():
        for name, timer in state.timers.items():
            path: NodePath = ("states", state_name, "timers", name)
            if timer.on_due.trigger is not None:
                _timer_trigger(workflow, report, state_name, timer.on_due.trigger, path, "on_due")
            if timer.escalate is not None:
                escalate = timer.escalate
                for position, role in enumerate(escalate.to):
                    if role not in workflow.roles:
                        where = (*path, "escalate", "to", position)
                        report.unknown("DF022", where, "role", role, workflow.roles)
                if escalate.trigger is not None:
                    _timer_trigger(workflow, report, state_name, escalate.trigger, path, "escalate")
                _positive(report, escalate.after, (*path, "escalate", "after"), "escalate after")
            for position, role in enumerate(timer.extend_roles):
                if role not in workflow.roles:
                    where = (*path, "extend_roles", position)
                    report.unknown("DF022", where, "role", role, workflow.roles)
            _due(workflow, report, state_name, path, without_cohort)
            if timer.reminders is not None:
                for position, before in enumerate(timer.reminders.before):
                    where = (*path, "reminders", "before", position)
                    _positive(report, before, where, "a reminder offset")
            if timer.repeat is not None:
                _positive(report, timer.repeat.every, (*path, "repeat", "every"), "repeat every")
            if timer.missed.window is not None:
                _positive(report, timer.missed.window, (*path, "missed", "window"), "the window")


def _timer_trigger(
    workflow: Workflow, report: _Report, state: str, trigger: str, path: NodePath, part: str
) -> None:
    where = (*path, part, "trigger")
    candidates = workflow.transitions_named(trigger)
    if not candidates:
        known = sorted({t.trigger for t in workflow.transitions})
        report.unknown("DF027", where, "trigger", trigger, known)
        return
    if not any(state in workflow.sources(t) for t in candidates) and not report.damaged(
        "trigger", trigger
    ):
        sources = sorted({s for t in candidates for s in workflow.sources(t)})
        report.add(
            "DF028",
            where,
            f"trigger `{trigger}` is not valid from state `{state}` "
            f"(only from {', '.join(sources) or 'no state'})",
            f"add `{state}` to the `from:` of the transition `{trigger}`, or fire another trigger",
        )


def _due(
    workflow: Workflow, report: _Report, state: str, path: NodePath, without_cohort: set[str]
) -> None:
    due = workflow.states[state].timers[path[-1]].due
    here = (*path, "due")
    if due.at is not None:
        _plausible(report, due.at, (*here, "at"))
    if due.field is not None:
        field = workflow.fields.get(due.field)
        if field is None:
            report.unknown("DF024", (*here, "field"), "field", due.field, workflow.fields)
        elif field.type not in {FieldType.DATE, FieldType.DATETIME} and not report.damaged(
            "field", due.field
        ):
            report.add(
                "DF042",
                (*here, "field"),
                f"a deadline can be counted from a date field; `{due.field}` is of type "
                f"{field.type}",
                "name a field of type date or datetime",
            )
    if due.cohort_date is not None:
        if not workflow.cohorts:
            report.add(
                "DF025",
                (*here, "cohort_date"),
                "the deadline counts from a cohort date, but the workflow has no cohorts",
                "add `cohorts:` or anchor the deadline elsewhere (at, after, business_days)",
            )
        elif state in without_cohort:
            report.add(
                "DF054",
                (*here, "cohort_date"),
                f"a case can reach `{state}` without a cohort; this deadline then has no date",
                "require a field of type cohort on every way into this state",
                severity=Severity.WARNING,
            )
    if due.at is None and due.cohort_date is None and due.field is None:
        # Counted from entering the state: zero means at once, negative means in the past.
        if due.after is not None and due.after.approximate() < dt.timedelta(0):
            report.add(
                "DF051",
                (*here, "after"),
                f"a deadline counted from entering the state cannot be in the past ({due.after})",
                "write it without a minus sign, e.g. P14D",
            )
        if due.business_days is not None and due.business_days < 0:
            report.add(
                "DF051",
                (*here, "business_days"),
                "a deadline counted from entering the state cannot be in the past "
                f"({due.business_days} business days)",
                "count forwards, e.g. business_days: 10",
            )


def _positive(report: _Report, span: Duration | BusinessDays, path: NodePath, what: str) -> None:
    if span.approximate() <= dt.timedelta(0):
        example = "business_days: 5" if isinstance(span, BusinessDays) else "P7D"
        report.add(
            "DF051",
            path,
            f"{what} must be a positive span, not {span}",
            f"write it without a minus sign and not zero, e.g. {example}",
        )


def _as_datetime(value: dt.datetime | dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.combine(value, dt.time())


def _plausible(report: _Report, value: dt.datetime | dt.date, path: NodePath) -> None:
    if not EARLIEST <= _as_datetime(value) <= LATEST:
        report.add(
            "DF052",
            path,
            f"{value.isoformat()} is outside the years 2000–2100",
            "check the year",
        )


def _cohorts(workflow: Workflow, report: _Report) -> None:
    for name, cohort in workflow.cohorts.items():
        base: NodePath = ("cohorts", name)
        for date_name in ("application_deadline", "start", "planned_end"):
            _plausible(report, cohort.date(date_name), (*base, date_name))
        earliest = _as_datetime(cohort.start) - EVENT_SLACK
        latest = _as_datetime(cohort.planned_end) + EVENT_SLACK
        for event_name, event in cohort.events.items():
            here = (*base, "events", event_name)
            _plausible(report, event.at, (*here, "at"))
            if not earliest <= event.at <= latest:
                report.add(
                    "DF053",
                    (*here, "at"),
                    f"event `{event_name}` on {event.at:%Y-%m-%d} is far outside cohort "
                    f"`{name}` ({cohort.start} to {cohort.planned_end})",
                    "check the year, or move the event to the cohort it belongs to",
                    severity=Severity.WARNING,
                )
            for position, state in enumerate(event.states):
                if state not in workflow.states:
                    where = (*here, "states", position)
                    report.unknown("DF021", where, "state", state, workflow.states)
            _positive(report, event.duration, (*here, "duration"), "an event's duration")
            for position, before in enumerate(event.reminders):
                _positive(report, before, (*here, "reminders", position), "a reminder offset")


# ----------------------------------------------------------------------------- the state graph


def _edges(workflow: Workflow, *, skip: Any = None) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in workflow.states}
    for transition in workflow.transitions:
        if transition.to not in workflow.states or (skip is not None and skip(transition)):
            continue
        for source in workflow.sources(transition):
            if source in edges:
                edges[source].add(transition.to)
    return edges


def _reach(edges: dict[str, set[str]], starts: Iterable[str]) -> set[str]:
    seen = set(starts)
    queue = deque(seen)
    while queue:
        for target in edges.get(queue.popleft(), ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _states_without_cohort(workflow: Workflow) -> set[str]:
    """States a case opened in the initial state can reach without being given a cohort."""
    cohort_fields = {n for n, f in workflow.fields.items() if f.type is FieldType.COHORT}

    def gives_cohort(transition: Any) -> bool:
        return bool(cohort_fields & set(transition.requires)) or any(
            name in cohort_fields and value is not None for name, value in transition.sets.items()
        )

    starts = [name for name, state in workflow.states.items() if state.initial]
    return _reach(_edges(workflow, skip=gives_cohort), starts)


def _graph(workflow: Workflow, report: _Report) -> None:
    edges = _edges(workflow)
    entries = [n for n, s in workflow.states.items() if s.initial or s.may_open_here]
    reachable = _reach(edges, entries)
    for name, state in workflow.states.items():
        if entries and name not in reachable:
            report.add(
                "DF029",
                ("states", name),
                f"state `{name}` cannot be reached from `{entries[0]}`",
                "add a transition into it, mark it `may_open_here: true`, or remove it",
                key=True,
            )
        if not state.terminal and not (edges[name] - {name}):
            report.add(
                "DF030",
                ("states", name),
                f"state `{name}` is not terminal but no transition leaves it",
                "add a transition from it (a timer can fire one), or mark it `terminal: true`",
                key=True,
            )
    _ambiguous(workflow, report)
    _unfireable(workflow, report)
    _never_set(workflow, report)


def _ambiguous(workflow: Workflow, report: _Report) -> None:
    seen: dict[tuple[str, str], list[int]] = {}
    for index, transition in enumerate(workflow.transitions):
        for source in workflow.sources(transition):
            seen.setdefault((transition.trigger, source), []).append(index)
    reported: set[int] = set()
    for (trigger, source), indexes in seen.items():
        unguarded = [i for i in indexes if not workflow.transitions[i].when]
        if len(indexes) < 2 or not unguarded:
            continue
        for index in indexes[1:]:
            if index in reported:
                continue
            reported.add(index)
            report.add(
                "DF032",
                ("transitions", index, "trigger"),
                f"`{trigger}` from `{source}` is also transition #{indexes[0] + 1}, "
                "and not every one of them has a `when` guard",
                "give each a `when` guard that tells them apart, or rename one trigger",
            )


def _unfireable(workflow: Workflow, report: _Report) -> None:
    fired_by_timers = {
        trigger
        for state in workflow.states.values()
        for timer in state.timers.values()
        for trigger in (timer.on_due.trigger, timer.escalate.trigger if timer.escalate else None)
        if trigger is not None
    }
    for index, transition in enumerate(workflow.transitions):
        if transition.automatic or transition.roles or transition.trigger in fired_by_timers:
            continue
        report.add(
            "DF033",
            ("transitions", index, "trigger"),
            f"`{transition.trigger}` has no roles, is not automatic and no timer fires it",
            "add `roles: [...]` for the people who may fire it",
            severity=Severity.WARNING,
        )


def _never_set(workflow: Workflow, report: _Report) -> None:
    settable = {
        name
        for transition in workflow.transitions
        for name in (*transition.requires, *transition.accepts, *transition.sets)
    }
    for index, transition in enumerate(workflow.transitions):
        if not transition.automatic:
            continue
        for path, name in _condition_fields(transition.when, ("transitions", index, "when")):
            if name in workflow.fields and name not in settable:
                report.add(
                    "DF043",
                    path,
                    f"automatic `{transition.trigger}` waits for `{name}`, "
                    "which no transition requires, accepts or sets",
                    f"add `{name}` to the `requires`, `accepts` or `sets` of some transition",
                    severity=Severity.WARNING,
                )


def _condition_fields(
    conditions: Sequence[Condition], path: NodePath
) -> Iterable[tuple[NodePath, str]]:
    for index, condition in enumerate(conditions):
        here = (*path, index)
        if condition.field is not None:
            yield (*here, "field"), condition.field
        for position, name in enumerate(condition.all_true or ()):
            yield (*here, "all_true", position), name
        if condition.any is not None:
            yield from _condition_fields(condition.any, (*here, "any"))


def _suggest(name: str, known: Iterable[str], what: str) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f"did you mean `{close[0]}`?"
    if not names:
        return f"this workflow defines no {what}s yet"
    shown = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
    return f"known {what}s: {shown}"
