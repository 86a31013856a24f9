"""The programme at a glance: what the console's home page shows.

Cases per state for each round and region, the cases late on a deadline, the
deadlines and programme dates of the coming days, and the mail waiting for an
operator. Everything is grouped or limited in SQL (``store/sql/overview.py``), so
the page costs the same on 100 000 cases as on 98; who is late is decided by the
project's one definition, ``engine.timers.is_late``, once per (definition, state,
timer) group — the same answer as ``Service.late_deadlines``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from dk2020flow.definition.model import COHORT_DATES, Text, Workflow
from dk2020flow.engine import timers as timing
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.localtime import to_utc
from dk2020flow.service.parts import ServiceParts
from dk2020flow.store.port import DeadlineLine, OutboxStatus, StateCount, Tx

__all__ = ["Overview", "ProgrammeDate", "ProgrammeMailing", "programme_overview"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ProgrammeDate:
    """A dated moment of a round: one of its events, or its application deadline,
    start or planned end (``kind``)."""

    workflow: str
    cohort: str
    cohort_title: Text
    kind: str
    """``event``, or one of ``definition.model.COHORT_DATES``."""
    name: str
    """The event's name (the date's kind for a cohort date)."""
    title: Text
    at: dt.datetime
    ends_at: dt.datetime | None = None
    location: str = ""
    cancelled: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class ProgrammeMailing:
    """A programme timer due in the window: an event's invitation, reminder, update or
    cancellation going out to the cases it concerns."""

    workflow: str
    cohort: str
    event: str
    event_title: Text
    kind: str
    due_at: dt.datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Overview:
    at: dt.datetime
    until: dt.datetime
    counts: list[StateCount]
    workflows: Mapping[str, Workflow]
    """The newest version of each workflow with cases (titles of states and rounds)."""
    late_total: int
    late: list[DeadlineLine]
    """The first cases late on a deadline, the longest late first."""
    deadlines_total: int
    deadlines: list[DeadlineLine]
    """The first pending deadlines in [at, until], the soonest first."""
    dates: list[ProgrammeDate]
    mailings: list[ProgrammeMailing]
    outbox: Mapping[OutboxStatus, int]


def programme_overview(
    parts: ServiceParts, *, at: dt.datetime, days: int = 14, limit: int = 50
) -> Overview:
    """The overview as of ``at``, looking ``days`` ahead; lists cut at ``limit``."""
    until = at + dt.timedelta(days=days)
    with parts.store.read() as tx:
        counts = tx.state_counts()
        newest: dict[str, int] = {}
        for definition_id, name in tx.definition_names():  # oldest first
            newest[name] = definition_id
        # ``parts.latest`` by id: a version compiled once is not read again.
        latest = {
            name: parts.compiled(tx, newest[name]) if name in newest else parts.latest(tx, name)
            for name in sorted({c.workflow for c in counts})
        }
        late_groups = [
            g
            for g in tx.passed_deadline_groups(at)
            if _is_late(parts.compiled(tx, g.definition_id), g.state, g.timer, at)
        ]
        late = tx.passed_deadlines(at, late_groups, limit)
        deadlines_total, deadlines = tx.pending_deadlines_between(at, until, limit)
        mailings = _mailings(parts, tx, at, until)
        outbox = tx.outbox_status_counts()
    dates = sorted(
        (d for wf in latest.values() for d in _dates(wf) if at <= d.at <= until),
        key=lambda d: (d.at, d.workflow, d.cohort, d.name),
    )
    return Overview(
        at=at,
        until=until,
        counts=counts,
        workflows={name: wf.workflow for name, wf in latest.items()},
        late_total=sum(g.count for g in late_groups),
        late=late,
        deadlines_total=deadlines_total,
        deadlines=deadlines,
        dates=dates,
        mailings=mailings,
        outbox=outbox,
    )


def _is_late(wf: CompiledWorkflow, state: str, timer: str, at: dt.datetime) -> bool:
    found = wf.workflow.states.get(state)
    # Every deadline of the group passed before `at` (the query's condition): the
    # instant passed to is_late only has to be one of them.
    return found is not None and timing.is_late(found, timer, at - dt.timedelta(seconds=1), at)


_DATES: dict[tuple[int, str], tuple[ProgrammeDate, ...]] = {}
"""``_dates`` per definition version (id and content hash): a stored version never
changes, so neither do its dates (a few versions per database)."""


def _dates(wf: CompiledWorkflow) -> tuple[ProgrammeDate, ...]:
    """Every event and date of every round of a definition version (worked out once)."""
    key = (wf.definition_id, wf.content_hash)
    found = _DATES.get(key)
    if found is None:
        found = _DATES[key] = tuple(_version_dates(wf))
    return found


def _version_dates(wf: CompiledWorkflow) -> list[ProgrammeDate]:
    found: list[ProgrammeDate] = []
    for cohort_name, cohort in wf.workflow.cohorts.items():
        for kind in COHORT_DATES:
            value = cohort.date(kind)
            local = (
                value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
            )
            at = local.astimezone(dt.UTC) if local.tzinfo else to_utc(local, wf.tz)
            found.append(
                ProgrammeDate(
                    workflow=wf.workflow.workflow,
                    cohort=cohort_name,
                    cohort_title=cohort.title,
                    kind=kind,
                    name=kind,
                    title=cohort.title,
                    at=at,
                )
            )
        for event_name, event in cohort.events.items():
            starts, ends = timing.event_instants(event, wf.tz)
            found.append(
                ProgrammeDate(
                    workflow=wf.workflow.workflow,
                    cohort=cohort_name,
                    cohort_title=cohort.title,
                    kind="event",
                    name=event_name,
                    title=event.title,
                    at=starts,
                    ends_at=ends,
                    location=event.location,
                    cancelled=event.cancelled,
                )
            )
    return found


def _mailings(
    parts: ServiceParts, tx: Tx, at: dt.datetime, until: dt.datetime
) -> list[ProgrammeMailing]:
    found: list[ProgrammeMailing] = []
    for row in tx.programme_timers():  # pending ones, earliest first; a few per event
        if row.due_at > until:
            break
        if row.due_at < at:
            continue
        wf = parts.compiled(tx, row.definition_id).workflow
        cohort = wf.cohorts.get(row.cohort)
        event = cohort.events.get(row.event) if cohort else None
        found.append(
            ProgrammeMailing(
                workflow=wf.workflow,
                cohort=row.cohort,
                event=row.event,
                event_title=event.title if event else row.event,
                kind=row.kind,
                due_at=row.due_at,
            )
        )
    return found
