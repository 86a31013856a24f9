"""What a simulation returns: the timeline, the summary and the problems found."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class ProblemKind(StrEnum):
    STUCK = "stuck"
    """An open case nothing will move: no planned action and no timer that fires a trigger."""
    CLOSED_DAY_DEADLINE = "closed_day_deadline"
    """A deadline on a weekend, a public holiday or a day the secretariat is closed."""
    REMINDER_LATE = "reminder_late"
    """A reminder that reaches people only after its deadline, or is never sent."""
    PARKED_MAIL = "parked_mail"
    """Mail with no recipient: parked in the outbox."""
    DEAD_MAIL = "dead_mail"
    """Mail the transport refused for good."""
    MAIL_FAILED = "mail_failed"
    """A template that failed to render (the change or timer firing that needed it failed)."""
    REFUSED = "refused"
    """The engine refused an action the behaviour expected to work."""
    TIMER_TRIGGER_REFUSED = "timer_trigger_refused"
    """A timer's trigger was refused when it fired."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    kind: ProblemKind
    message: str
    hint: str
    cases: tuple[str, ...] = ()
    """Organisations affected (a few examples when there are many)."""
    count: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class TimelineEntry:
    at: dt.datetime
    case_id: int | None
    organisation: str
    kind: str
    text: str
    state: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Summary:
    cases: int
    by_state: dict[str, int]
    by_cohort: dict[str, int]
    by_cohort_state: dict[str, dict[str, int]]
    mail: dict[str, int]
    actions: int
    refusals: int
    timer_firings: int
    instants: int
    wall_seconds: float


@dataclass(frozen=True, kw_only=True, slots=True)
class SimulationResult:
    workflow: str
    version: str
    profile: str
    seed: int
    start: dt.datetime
    end: dt.datetime
    db_url: str | None
    """The database the run wrote (None when it was a throwaway, deleted afterwards)."""
    out_dir: Path | None
    timezone: str = "UTC"
    """The workflow's time zone: the timeline is shown in it."""
    timeline: list[TimelineEntry] = field(default_factory=list)
    summary: Summary | None = None
    problems: list[Problem] = field(default_factory=list)
