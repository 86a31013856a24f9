"""The programme report: plain dataclasses, computed from the event logs as of an instant.

As of a past instant everything is replayed from the append-only event log (DESIGN.md
invariant 2), so ``--at 2021-06-01`` shows the programme as it stood then: each case's
state, cohort and checklist as of that instant, its live deadlines, and the number of
cases in each state at the start of every month up to then.

As it stands (``report`` without ``--at``) the same numbers come from what the store
keeps of that log instead of a replay of every case: the counts per state, cohort and
region, the cases whose deadline has passed, the screenings alone, and the moves between
states counted per month in the database. Both ways end in the same functions below, and
a test holds them equal; only this one is cheap on a million cases.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from dk2020flow.definition.loader import load_workflow_text
from dk2020flow.definition.model import ANY_OPEN_STATE, ItemStatus, Workflow, text_in
from dk2020flow.engine.timers import is_late
from dk2020flow.errors import NotFoundError
from dk2020flow.store.port import (
    DeadlineArm,
    DefinitionsTx,
    EventLine,
    ReportsTx,
)

STATUSES = tuple(s.value for s in ItemStatus)
HOLDING_BACK = (ItemStatus.PARTLY_MET.value, ItemStatus.NOT_MET.value)


@dataclass(frozen=True, kw_only=True, slots=True)
class RegionDecisions:
    """Decisions and sign-ups of one region: who joined which round, and where the others
    are (still deciding, declined, not selected …), in the workflow's own states."""

    region: str
    cases: int
    by_round: dict[str, int]
    """Cases that joined each round (pilot, round1, round2 … in DK2020)."""
    by_state: dict[str, int]
    """Cases in each of the report's ``region_states``: the states before joining a round
    (the initial state: still deciding), then the end states (withdrawn, approved …)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StateCount:
    state: str
    cohort: str
    region: str
    cases: int


@dataclass(frozen=True, kw_only=True, slots=True)
class OverdueCase:
    case_id: int
    organisation: str
    region: str
    state: str
    deadline: str
    """The timer's name."""
    description: str
    due_at: dt.datetime
    days_overdue: int
    owners: tuple[str, ...]
    """The roles the deadline mails (To), as their titles."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RequirementStatus:
    item: str
    title: str
    by_status: dict[str, int]
    """Cases whose latest screening gave this status (met, partly_met, not_met, not_applicable)."""
    holding_back: int
    """Open cases in screening or revision with this item partly or not met."""
    needed_revision: int = 0
    """Cases where this item was partly or not met in at least one screening."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MonthlyStates:
    months: list[dt.date]
    states: list[str]
    counts: list[list[int]]
    """counts[i][j]: cases in states[j] at the start of months[i]."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Report:
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
    """Cases that joined each round (whatever became of them afterwards)."""
    regions: list[RegionDecisions]
    region_states: list[str]
    """The states of ``RegionDecisions.by_state``, in the workflow's order."""
    completed_states: list[str]
    """The end states a case reaches by completing the programme (approved in DK2020):
    terminal states after joining that no transition from any open state leads to."""
    states: list[StateCount]
    overdue: list[OverdueCase]
    checklist: str
    checklist_title: str
    requirements: list[RequirementStatus]
    screened_cases: int
    mail: dict[str, int]
    over_time: MonthlyStates
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- building


@dataclass(slots=True)
class _Replayed:
    case_id: int
    organisation: str
    region: str
    state: str = ""
    cohort: str | None = None
    epoch: int = 0
    opened: bool = False
    checklists: dict[str, dict[str, str]] = field(default_factory=dict)
    fell_short: dict[str, set[str]] = field(default_factory=dict)
    history: list[tuple[dt.datetime, str]] = field(default_factory=list)


class ReportSource(DefinitionsTx, ReportsTx, Protocol):
    """What a report reads: a read transaction of the store (``Service.report`` opens it)."""


Tally = Counter[tuple[str, str | None, str]]
"""Cases per (state, cohort or None, region)."""

Changes = dict[tuple[int, str | None, str], int]
"""Moves between states per period: (period, from state or None, to state) → cases; period
``i`` ends at the month start ``instants[i]`` (included)."""


@dataclass(frozen=True, slots=True)
class _Late:
    """What the overdue table shows of a case besides its deadline."""

    organisation: str
    region: str
    state: str
    epoch: int


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the report is computed from, replayed or as the store keeps it."""

    tally: Tally
    screened: list[_Replayed]
    """The cases with a screening: their current state, checklists and shortfalls."""
    arms: list[DeadlineArm]
    late: dict[int, _Late]
    """The cases the overdue table may show (those ``arms`` are checked against)."""
    mail: dict[str, int]
    moves: Changes


def build_report(
    tx: ReportSource,
    *,
    workflow: str | None,
    at: dt.datetime | dt.date,
    replay: bool = True,
    chunk_size: int = 0,
) -> Report:
    """The report of ``workflow`` (the only or the largest one when None) as of ``at`` (a
    date: the end of that day in the workflow's time zone).

    ``replay=False``: the programme as it stands, from the kept counts and indexes without
    reading every case, when nothing in the store is later than ``at`` (give or take
    ``PRESENT_SLACK``; else replayed).
    ``chunk_size``: cases replayed at a time (``REPLAY_CHUNK`` when 0)."""
    name = workflow or _default_workflow(tx.definitions(), tx.report_case_totals())
    stored = tx.latest_definition(name)
    if stored is None:
        raise NotFoundError(
            f"no workflow {name!r} in the database; load it with "
            f"`dk2020flow workflow load workflows/{name}.yaml` (or run `dk2020flow demo`)"
        )
    implied = tuple(sorted(stored.implied_defaults.items()))
    definition = _workflow(stored.source_text, stored.source_path, implied)
    if not isinstance(at, dt.datetime):
        at = dt.datetime.combine(at, dt.time(23, 59, 59), tzinfo=ZoneInfo(definition.timezone))
    tz = ZoneInfo(definition.timezone)
    months, instants = _month_starts(tx.report_first_move(name), at, tz)
    facts = None
    if not replay and not tx.report_changed_after(name, at + PRESENT_SLACK):
        facts = _kept_facts(tx, name, at, instants)
    if facts is None:  # as of the past: what the store keeps is the present
        facts = _replayed_facts(tx, name, at, instants, chunk_size or REPLAY_CHUNK)
    language = definition.default_language
    before = before_joining(definition)
    return Report(
        title=text_in(definition.title, language, definition.workflow),
        workflow=name,
        version=definition.version,
        at=at,
        timezone=definition.timezone,
        cases=sum(facts.tally.values()),
        state_titles={s: text_in(v.title, language, s) for s, v in definition.states.items()},
        cohort_titles={c: text_in(v.title, language, c) for c, v in definition.cohorts.items()},
        by_state=_by_state(definition, facts.tally),
        signups=_signups(definition, facts.tally, before),
        regions=_regions(definition, facts.tally, before),
        region_states=region_states(definition),
        completed_states=completed_states(definition),
        states=_state_matrix(definition, facts.tally),
        overdue=_overdue(definition, facts.arms, facts.late, at),
        checklist=next(iter(definition.checklists), ""),
        checklist_title=next(
            (text_in(c.title, language) for c in definition.checklists.values()), ""
        ),
        requirements=_requirements(definition, facts.screened),
        screened_cases=len(facts.screened),
        mail={s: facts.mail.get(s, 0) for s in MAIL_STATUSES},
        over_time=_monthly(definition, facts, months, at, tz),
    )


MAIL_STATUSES = ("sent", "pending", "sending", "parked", "dead")

PRESENT_SLACK = dt.timedelta(minutes=5)
"""How much later than the report's instant a change may be and still count as the
present: a daemon's event committed while the report starts, or stamped by a clock a
little ahead of this machine's, must not send a million-case report to a replay. What
the check is for are clocks days or years behind the store (a test's, ``serve --now``)."""


REPLAY_CHUNK = 2000
"""Cases replayed at a time: the replay holds one chunk's events, never the programme's."""


def _replayed_facts(
    tx: ReportSource,
    workflow: str,
    at: dt.datetime,
    instants: list[dt.datetime],
    chunk_size: int,
) -> _Facts:
    """Every case of the workflow replayed from its log up to ``at``, ``chunk_size``
    cases at a time: what is kept of each is its counts, and the case itself only when
    it was screened or may be late."""
    tally: Tally = Counter()
    moves: Changes = Counter()
    screened: list[_Replayed] = []
    arms: list[DeadlineArm] = []
    late: dict[int, _Late] = {}
    after = 0
    while chunk := tx.report_case_regions(workflow, after_id=after, limit=chunk_size):
        after = chunk[-1][0]
        regions: dict[int | None, str] = dict(chunk)
        replayed = _replay(tx.report_events_of([case_id for case_id, _ in chunk]), regions, at)
        for case in replayed.values():
            if not case.opened:
                continue
            tally[(case.state, case.cohort, case.region)] += 1
            previous: str | None = None
            for instant, state in case.history:
                moves[(bisect_left(instants, instant), previous, state)] += 1
                previous = state
            if case.checklists:
                screened.append(case)
        # Only a deadline passed before ``at`` can make a case late.
        for arm in tx.report_deadline_arms_of(list(replayed)):
            if arm.deadline_at < at:
                arms.append(arm)
                case = replayed[arm.case_id]
                late[case.case_id] = _Late(
                    organisation=case.organisation,
                    region=case.region,
                    state=case.state,
                    epoch=case.epoch,
                )
    return _Facts(
        tally=tally,
        screened=screened,
        arms=arms,
        late=late,
        mail=tx.report_mail_counts(workflow, created_by=at),
        moves=moves,
    )


def _kept_facts(
    tx: ReportSource, workflow: str, at: dt.datetime, instants: list[dt.datetime]
) -> _Facts | None:
    """The workflow as the store keeps it now: no case's log is read but its screenings.
    None when a screening is later than ``at``."""
    lines, states = tx.report_screenings(workflow)
    if any(line.at > at + PRESENT_SLACK for line in lines):
        return None
    tally: Tally = Counter()
    for count in tx.report_state_counts(workflow):
        tally[(count.state, count.cohort, count.region)] += count.count
    screened = [c for c in _replay(lines, {}, at + PRESENT_SLACK).values() if c.checklists]
    for case in screened:
        case.state = states[case.case_id]
    candidates = tx.report_late_candidates(workflow, at)
    return _Facts(
        tally=tally,
        screened=screened,
        arms=tx.report_deadline_arms_of([c.case_id for c in candidates]),
        late={
            c.case_id: _Late(
                organisation=c.organisation_name, region=c.region, state=c.state, epoch=c.epoch
            )
            for c in candidates
        },
        mail=tx.report_mail_counts(workflow),
        moves=tx.report_moves(workflow, instants),
    )


def _default_workflow(definitions: Sequence[Any], totals: Mapping[str, int]) -> str:
    if any(totals.values()):
        return max(totals, key=lambda name: (totals[name], name))
    if definitions:
        return str(definitions[-1].name)
    raise NotFoundError(
        "the database has no workflow yet: load one with `dk2020flow workflow load FILE`, "
        "or run `dk2020flow demo`"
    )


@lru_cache(maxsize=8)
def _workflow(
    source_text: str, source_path: str, implied: tuple[tuple[str, str | None], ...]
) -> Workflow:
    return load_workflow_text(source_text, source_path, implied=dict(implied)).workflow


def _replay(
    lines: Sequence[EventLine], regions: dict[int | None, str], at: dt.datetime
) -> dict[int, _Replayed]:
    cases: dict[int, _Replayed] = {}
    for line in lines:
        if line.at > at:
            continue
        case = cases.get(line.case_id)
        if case is None:
            case = cases[line.case_id] = _Replayed(
                case_id=line.case_id,
                organisation=line.organisation_name,
                region=regions.get(line.case_id, ""),
            )
        case.epoch = line.epoch
        cohort = line.data.get("cohort")
        if isinstance(cohort, str) and line.kind in {"opened", "transition", "data_set"}:
            case.cohort = cohort
        if line.kind == "opened":
            case.opened = True
        if line.to_state and line.to_state != case.state:
            case.state = line.to_state
            case.history.append((line.at, line.to_state))
        if line.kind == "checklist":
            items = line.data.get("items", {})
            name = str(line.data.get("checklist", line.trigger))
            recorded = case.checklists.setdefault(name, {})
            short = case.fell_short.setdefault(name, set())
            for item, value in items.items():
                if isinstance(value, dict):
                    recorded[str(item)] = str(value.get("status", ""))
                    if recorded[str(item)] in HOLDING_BACK:
                        short.add(str(item))
    return cases


def _state_order(definition: Workflow, states: Sequence[str]) -> list[str]:
    order = list(definition.states)
    return sorted(set(states), key=lambda s: order.index(s) if s in order else len(order))


def _by_state(definition: Workflow, tally: Tally) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for (state, _, _), n in tally.items():
        counts[state] += n
    return {s: counts[s] for s in _state_order(definition, list(counts))}


def before_joining(definition: Workflow) -> frozenset[str]:
    """The states a case is in before it joins a round: those the initial state leads to
    without a transition that takes the cohort (one that requires or sets ``cohort``).
    A transition from any open state (``from: "*"``, a withdrawal) is not a step of
    deciding. DK2020: invited, declined, not_participating; EU Mission: invited,
    no_expression, eoi_submitted, not_selected, selected."""
    reached = {definition.initial_state}
    frontier = [definition.initial_state]
    while frontier:
        state = frontier.pop()
        for transition in definition.transitions:
            if state not in transition.from_ or transition.to in reached:
                continue
            if "cohort" in transition.requires or "cohort" in transition.sets:
                continue
            reached.add(transition.to)
            frontier.append(transition.to)
    return frozenset(reached)


def region_states(definition: Workflow) -> list[str]:
    """The states the region table counts: those before joining a round, then the
    terminal states after it, in the workflow's order."""
    before = before_joining(definition)
    return [s for s in definition.states if s in before] + [
        s for s, state in definition.states.items() if state.terminal and s not in before
    ]


def completed_states(definition: Workflow) -> list[str]:
    """The terminal states after joining a round that only a step of the programme leads
    to, not a transition from any open state (a withdrawal)."""
    before = before_joining(definition)
    left = {t.to for t in definition.transitions if ANY_OPEN_STATE in t.from_}
    return [
        s
        for s, state in definition.states.items()
        if state.terminal and s not in before and s not in left
    ]


def _joined(
    state: str, cohort: str | None, definition: Workflow, before: frozenset[str]
) -> str | None:
    """The round a case joined: it has a cohort and has left the states before joining."""
    if cohort and cohort in definition.cohorts and state not in before:
        return cohort
    return None


def _signups(definition: Workflow, tally: Tally, before: frozenset[str]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for (state, cohort, _), n in tally.items():
        if joined := _joined(state, cohort, definition, before):
            counts[joined] += n
    return {cohort: counts[cohort] for cohort in definition.cohorts}


def _regions(definition: Workflow, tally: Tally, before: frozenset[str]) -> list[RegionDecisions]:
    by_region: dict[str, Tally] = defaultdict(Counter)
    for (state, cohort, region), n in tally.items():
        by_region[region][(state, cohort, region)] += n
    shown = region_states(definition)
    rows = []
    for region, members in sorted(by_region.items()):
        joined: Counter[str] = Counter()
        in_state: Counter[str] = Counter()
        for (state, cohort, _), n in members.items():
            if j := _joined(state, cohort, definition, before):
                joined[j] += n
            in_state[state] += n
        rows.append(
            RegionDecisions(
                region=region,
                cases=sum(members.values()),
                by_round={cohort: joined[cohort] for cohort in definition.cohorts},
                by_state={state: in_state[state] for state in shown},
            )
        )
    return rows


def _state_matrix(definition: Workflow, tally: Tally) -> list[StateCount]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for (state, cohort, region), n in tally.items():
        counts[(state, cohort or "—", region)] += n
    order = list(definition.states)
    return [
        StateCount(state=s, cohort=cohort, region=region, cases=n)
        for (s, cohort, region), n in sorted(
            counts.items(),
            key=lambda kv: (order.index(kv[0][0]) if kv[0][0] in order else 99, kv[0][1:]),
        )
    ]


def _overdue(
    definition: Workflow,
    arms: Sequence[DeadlineArm],
    cases: Mapping[int, _Late],
    at: dt.datetime,
) -> list[OverdueCase]:
    """Who is late at ``at``: the one definition, ``engine.timers.is_late``, on each case's
    current deadline (``ReportsTx.report_deadline_arms_of``), as ``case list --overdue``."""
    language = definition.default_language
    rows = []
    for line in arms:
        case = cases.get(line.case_id)
        if case is None or case.epoch != line.epoch:
            continue
        state = definition.states.get(case.state)
        if state is None or not is_late(state, line.timer, line.deadline_at, at):
            continue
        spec = state.timers[line.timer]
        owners = spec.on_due.mail[0].to if spec.on_due.mail else ()
        if not owners and spec.reminders is not None:
            owners = spec.reminders.mail.to
        rows.append(
            OverdueCase(
                case_id=line.case_id,
                organisation=case.organisation,
                region=case.region,
                state=case.state,
                deadline=line.timer,
                description=spec.description,
                due_at=line.deadline_at,
                days_overdue=(at - line.deadline_at).days,
                owners=tuple(
                    text_in(definition.roles[r].title, language, r) if r in definition.roles else r
                    for r in owners
                ),
            )
        )
    return sorted(rows, key=lambda r: (-r.days_overdue, r.organisation))


def _under_review(definition: Workflow, checklist: str) -> set[str]:
    """The states where a checklist item can hold a plan back: the states whose way on
    depends on the checklist (a transition out of them has a ``when`` on it: DK2020's
    ``screening``) and the states a review sends a case to that lead straight back into
    it (a revision: ``revising``; not the drafting before the first review)."""
    review = {
        source
        for transition in definition.transitions
        if any(condition.checklist == checklist for condition in transition.when)
        for source in transition.from_
    }
    sent_back = {t.to for t in definition.transitions if review.intersection(t.from_)}
    back = {
        source
        for transition in definition.transitions
        if transition.to in review
        for source in transition.from_
        if source in sent_back and source not in review
    }
    return review | back


def _requirements(definition: Workflow, cases: Sequence[_Replayed]) -> list[RequirementStatus]:
    if not definition.checklists:
        return []
    name, checklist = next(iter(definition.checklists.items()))
    language = definition.default_language
    waiting = _under_review(definition, name)
    rows = []
    for item, title in checklist.items.items():
        statuses = Counter(
            c.checklists[name][item] for c in cases if item in c.checklists.get(name, {})
        )
        rows.append(
            RequirementStatus(
                item=item,
                title=text_in(title, language, item),
                by_status={s: statuses[s] for s in STATUSES},
                holding_back=sum(
                    1
                    for c in cases
                    if c.state in waiting and c.checklists.get(name, {}).get(item) in HOLDING_BACK
                ),
                needed_revision=sum(1 for c in cases if item in c.fell_short.get(name, set())),
            )
        )
    return rows


def _month_starts(
    first: dt.datetime | None, at: dt.datetime, tz: ZoneInfo
) -> tuple[list[dt.date], list[dt.datetime]]:
    """The months of the chart, from the month of the first case's opening to ``at``, and
    the instant each starts (midnight in the workflow's time zone)."""
    if first is None or first > at:
        return [], []
    months: list[dt.date] = []
    month = first.astimezone(tz).date().replace(day=1)
    last = at.astimezone(tz).date()
    while month <= last:
        months.append(month)
        month = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    instants = [dt.datetime.combine(m, dt.time(), tzinfo=tz).astimezone(dt.UTC) for m in months]
    return months, instants


def _monthly(
    definition: Workflow, facts: _Facts, months: list[dt.date], at: dt.datetime, tz: ZoneInfo
) -> MonthlyStates:
    """Cases per state at the start of every month (then at ``at`` itself): the moves
    between states summed up to each month start."""
    if not months:
        return MonthlyStates(months=[], states=[], counts=[])
    months = list(months)
    last = at.astimezone(tz).date()
    states = _state_order(definition, [to for (_, _, to), n in facts.moves.items() if n])
    index = {s: j for j, s in enumerate(states)}
    by_period = [[0] * len(states) for _ in range(len(months) + 1)]
    for (period, source, target), n in facts.moves.items():
        by_period[period][index[target]] += n
        if source is not None and source in index:
            by_period[period][index[source]] -= n
    counts: list[list[int]] = []
    running = [0] * len(states)
    for period in range(len(months)):
        running = [a + b for a, b in zip(running, by_period[period], strict=True)]
        counts.append(running)
    # The last point is the report instant itself, so the chart ends where the tables do.
    if months[-1] != last:
        months.append(last)
        now = [0] * len(states)
        for (state, _, _), n in facts.tally.items():
            if state in index:
                now[index[state]] += n
        counts.append(now)
    return MonthlyStates(months=months, states=states, counts=counts)
