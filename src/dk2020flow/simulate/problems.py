"""The problems a process owner must fix, found in what a simulation left in the database.

Every check reads the real rows the engine wrote (timers, events, outbox) and
the workflow's own rules (its business calendar, office hours, timer specs);
nothing here re-models the programme.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.model import Timer
from dk2020flow.engine import timers as timing
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.localtime import to_local
from dk2020flow.simulate.result import Problem, ProblemKind
from dk2020flow.store.port import EventLine, OutboxLine, ReportsTx, TimerLine

EXAMPLES = 5
_ROLE = re.compile(r"no recipient in role ([^ ]+)")
_CASE_PREFIX = re.compile(r"^case \d+: ")


def find_problems(
    wf: CompiledWorkflow,
    tx: ReportsTx,
    *,
    open_cases: Mapping[int, tuple[str, str]],
    planned: set[int],
    dispatch_errors: Sequence[str] = (),
    earlier: Sequence[Problem] = (),
) -> list[Problem]:
    """Every problem, grouped so that one cause is one line (with a few example cases)."""
    name = wf.workflow.workflow
    timer_rows = tx.report_timers(workflow=name)
    return [
        *_merge(earlier),
        *_stuck(wf, timer_rows, open_cases, planned),
        *_closed_day_deadlines(wf, timer_rows),
        *_late_reminders(wf, timer_rows),
        *_mail(tx.report_outbox_lines(workflow=name)),
        *_dispatch_failures(dispatch_errors),
        *_refused_timer_triggers(tx.report_events(workflow=name)),
    ]


def _examples(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(names)))[:EXAMPLES]


def _merge(problems: Sequence[Problem]) -> list[Problem]:
    grouped: dict[tuple[ProblemKind, str, str], list[Problem]] = defaultdict(list)
    for problem in problems:
        grouped[(problem.kind, problem.message, problem.hint)].append(problem)
    return [
        Problem(
            kind=kind,
            message=message,
            hint=hint,
            cases=_examples(c for p in group for c in p.cases),
            count=len(group),
        )
        for (kind, message, hint), group in grouped.items()
    ]


def _timer_specs(wf: CompiledWorkflow) -> dict[str, tuple[str, Timer]]:
    """Timer name -> (state, spec); the first state that declares the name."""
    specs: dict[str, tuple[str, Timer]] = {}
    for state_name, state in wf.workflow.states.items():
        for timer_name, timer in state.timers.items():
            specs.setdefault(timer_name, (state_name, timer))
    return specs


def _moves(timer: Timer, kind: str) -> bool:
    """Whether this firing of the timer fires a trigger (and so may move the case)."""
    if kind == "deadline":
        return timer.on_due.trigger is not None
    if kind == "escalation":
        return timer.escalate is not None and timer.escalate.trigger is not None
    return False


def _stuck(
    wf: CompiledWorkflow,
    rows: Sequence[TimerLine],
    open_cases: Mapping[int, tuple[str, str]],
    planned: set[int],
) -> list[Problem]:
    """Open cases nothing will move: no planned action and no pending timer that fires a trigger."""
    moving: set[int] = set()
    pending: set[int] = set()
    for row in rows:
        if row.status != "pending" or row.epoch != row.case_epoch:
            continue
        pending.add(row.case_id)
        spec_state = wf.workflow.states.get(row.case_state)
        spec = spec_state.timers.get(row.timer) if spec_state else None
        if spec is not None and _moves(spec, row.kind):
            moving.add(row.case_id)
    by_state: dict[str, list[int]] = defaultdict(list)
    for case_id, (_, current) in open_cases.items():
        if case_id not in planned and case_id not in moving:
            by_state[current].append(case_id)
    problems = []
    for state, ids in sorted(by_state.items()):
        waiting = (
            " (their remaining timers only send mail)" if any(i in pending for i in ids) else ""
        )
        problems.append(
            Problem(
                kind=ProblemKind.STUCK,
                message=f"{len(ids)} open case(s) stuck in {state!r}: no participant action "
                f"is expected and no timer will move them{waiting}",
                hint=f"give {state!r} a way out: a timer whose on_due fires a trigger, a "
                "transition someone in the behaviour profile fires, or make the state terminal",
                cases=_examples(open_cases[i][0] for i in ids),
                count=len(ids),
            )
        )
    return problems


def _closed_day_deadlines(wf: CompiledWorkflow, rows: Sequence[TimerLine]) -> list[Problem]:
    specs = _timer_specs(wf)
    found: dict[str, dict[tuple[int, dt.datetime], str]] = defaultdict(dict)
    days: dict[str, set[tuple[dt.date, BusinessCalendar]]] = defaultdict(set)
    for row in rows:
        if row.kind != "deadline":
            continue
        local = to_local(row.deadline_at, wf.tz).date()
        spec = specs.get(row.timer, ("", None))[1]
        # A timer marked `calendar: organisation` counts the case's organisation's days.
        calendar = (
            wf.calendar if spec is None else wf.timer_calendar(spec, row.country, row.subdivision)
        )
        if calendar.is_business_day(local):
            continue
        found[row.timer][(row.case_id, row.deadline_at)] = row.organisation_name
        days[row.timer].add((local, calendar))
    problems = []
    for timer, cases in sorted(found.items()):
        state = specs.get(timer, ("?", None))[0]
        dates = sorted(days[timer], key=lambda found: found[0])
        shown = ", ".join(_day_name(d, c) for d, c in dates[:3]) + (" …" if len(dates) > 3 else "")
        problems.append(
            Problem(
                kind=ProblemKind.CLOSED_DAY_DEADLINE,
                message=f"deadline {timer!r} ({state}) fell on a weekend or holiday "
                f"for {len(cases)} case(s): {shown}",
                hint="count it in business days (`due: {business_days: N}`), or move the date "
                "to a business day in the workflow file",
                cases=_examples(cases.values()),
                count=len(cases),
            )
        )
    return problems


def _day_name(day: dt.date, calendar: BusinessCalendar) -> str:
    holiday = calendar.holiday_name(day, "en")
    return f"{day:%A} {day.isoformat()}" + (f" ({holiday})" if holiday else "")


def _late_reminders(wf: CompiledWorkflow, rows: Sequence[TimerLine]) -> list[Problem]:
    specs = _timer_specs(wf)
    office = wf.workflow.office_hours
    after: dict[str, dict[int, str]] = defaultdict(dict)
    held: dict[str, dict[int, str]] = defaultdict(dict)
    dropped: dict[str, dict[int, str]] = defaultdict(dict)
    groups: dict[tuple[int, str, int], list[TimerLine]] = defaultdict(list)
    for row in rows:
        groups[(row.case_id, row.timer, row.epoch)].append(row)
        if row.kind != "reminder":
            continue
        spec = specs.get(row.timer, ("", None))[1]
        if row.due_at >= row.deadline_at:
            after[row.timer][row.case_id] = row.organisation_name
        elif spec is not None and spec.reminders is not None and not spec.reminders.mail.urgent:
            goes_out = timing.next_office_opening(row.due_at, office, wf.calendar, wf.tz)
            if goes_out >= row.deadline_at:
                held[row.timer][row.case_id] = row.organisation_name
    for (_case_id, timer, _epoch), group in groups.items():
        spec = specs.get(timer, ("", None))[1]
        if spec is None or spec.reminders is None:
            continue
        deadlines = {r.deadline_at for r in group if r.kind == "deadline"}
        reminders = [r for r in group if r.kind == "reminder"]
        if deadlines and len(reminders) < len(spec.reminders.before) * len(deadlines):
            dropped[timer][group[0].case_id] = group[0].organisation_name
    problems: list[Problem] = []
    for timer, cases in sorted(after.items()):
        problems.append(
            Problem(
                kind=ProblemKind.REMINDER_LATE,
                message=f"reminders of {timer!r} are scheduled after its deadline "
                f"for {len(cases)} case(s)",
                hint="a reminder's `before` must be a positive span before the deadline",
                cases=_examples(cases.values()),
                count=len(cases),
            )
        )
    for timer, cases in sorted(held.items()):
        problems.append(
            Problem(
                kind=ProblemKind.REMINDER_LATE,
                message=f"reminders of {timer!r} fall outside office hours and go out only "
                f"after the deadline for {len(cases)} case(s)",
                hint="send the reminder earlier (a longer `before`), mark its mail `urgent: true`, "
                "or move the deadline into office hours",
                cases=_examples(cases.values()),
                count=len(cases),
            )
        )
    for timer, cases in sorted(dropped.items()):
        state = specs.get(timer, ("?", None))[0]
        problems.append(
            Problem(
                kind=ProblemKind.REMINDER_LATE,
                message=f"reminders of {timer!r} ({state}) were never sent to {len(cases)} "
                f"case(s): the deadline was already nearer than the reminder when they "
                f"entered {state!r}",
                hint="shorten the reminder's `before`, or give the deadline more time",
                cases=_examples(cases.values()),
                count=len(cases),
            )
        )
    return problems


def _mail(lines: Sequence[OutboxLine]) -> list[Problem]:
    parked: dict[tuple[str, str], list[str]] = defaultdict(list)
    dead: dict[tuple[str, str], list[str]] = defaultdict(list)
    for line in lines:
        if line.status == "parked":
            role = _ROLE.search(line.reason)
            why = (
                f"no recipient in role {role.group(1)}" if role else (line.reason or "no recipient")
            )
            parked[(line.template, why)].append(line.organisation_name)
        elif line.status == "dead":
            error = _CASE_PREFIX.sub("", line.last_error)[:200]
            dead[(line.template, error)].append(line.organisation_name)
    problems = [
        Problem(
            kind=ProblemKind.PARKED_MAIL,
            message=f"{len(names)} {template!r} message(s) parked: {why}",
            hint="add the contacts (`dk2020flow orgs import`) or the profile's "
            "`contacts:`, or mail a role that has a shared mailbox in the workflow file",
            cases=_examples(n for n in names if n),
            count=len(names),
        )
        for (template, why), names in sorted(parked.items())
    ]
    problems.extend(
        Problem(
            kind=ProblemKind.DEAD_MAIL,
            message=f"{len(names)} {template!r} message(s) could not be delivered: {error}",
            hint="fix the address or the template, then `dk2020flow outbox retry`",
            cases=_examples(n for n in names if n),
            count=len(names),
        )
        for (template, error), names in sorted(dead.items())
    )
    return problems


def _dispatch_failures(errors: Sequence[str]) -> list[Problem]:
    grouped: dict[str, int] = defaultdict(int)
    for error in errors:
        grouped[_CASE_PREFIX.sub("", error)] += 1
    return [
        Problem(
            kind=ProblemKind.MAIL_FAILED,
            message=f"{n} timer firing(s) failed: {error}",
            hint="a template does not render for these cases: fix it and "
            "`dk2020flow workflow validate` the file",
            count=n,
        )
        for error, n in sorted(grouped.items())
    ]


def _refused_timer_triggers(lines: Sequence[EventLine]) -> list[Problem]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        if line.kind == "timer" and "refused" in line.comment:
            grouped[str(line.data.get("timer", line.trigger))].append(line.organisation_name)
    return [
        Problem(
            kind=ProblemKind.TIMER_TRIGGER_REFUSED,
            message=f"timer {timer!r} fired its trigger and the engine refused it "
            f"for {len(names)} case(s)",
            hint="the trigger is not valid from the state, or its guard or required data "
            "fails: `dk2020flow case history` shows the reason",
            cases=_examples(names),
            count=len(names),
        )
        for timer, names in sorted(grouped.items())
    ]
