"""Due-time computation: when a timer and each of its firings fall due.

Pure functions: no I/O and no clock reads; ``now`` and every instant are
arguments. Stored instants are timezone-aware UTC; the workflow's timezone
(its ``timezone:``, an IANA name) interprets local dates and times of day.
docs/time.md states the rules for process owners; in short:

- Local wall-clock times become instants through :func:`to_utc`, whose rule
  for the spring-forward gap and the autumn fold is stated there.
- Durations are ISO 8601 with calendar parts (RFC 5545 §3.3.6): years, months,
  weeks and days are *nominal* and added to the local date (``P1M`` from 31
  January is the last day of February, ``P1D`` keeps the local time of day
  across a DST change); hours, minutes and seconds are *exact* elapsed time
  (``PT8H`` is eight real hours, also on the night the clocks change).
- Business days count on the workflow's :class:`BusinessCalendar`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.durations import Duration
from dk2020flow.definition.model import (
    BusinessDays,
    CalendarEvent,
    Cohort,
    Due,
    Missed,
    MissedPolicy,
    OfficeHours,
    State,
    Timer,
)
from dk2020flow.errors import Dk2020flowError
from dk2020flow.localtime import require_aware, to_local, to_utc

UTC = dt.UTC

END_OF_DAY = dt.time(23, 59)
"""The local time of an absolute ``at`` given as a date alone: the end of that day."""

START_OF_DAY = dt.time(0, 0)
"""The local time of a cohort date or case date field given as a date alone."""

SUPERSEDED = "superseded by a later firing (policy latest_once)"


class DueUnavailable(Dk2020flowError):  # noqa: N818 - the name says what happened
    """A due time cannot be computed because its anchor is missing on the case.

    ``reason`` says which anchor and what to do (set the field, assign a cohort).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def add_duration(
    instant: dt.datetime, duration: Duration, tz: ZoneInfo, *, times: int = 1
) -> dt.datetime:
    """``instant + times * duration`` (negative ``times`` subtracts).

    Years, months and days are added to the local date in ``tz`` (keeping the
    local time of day, with :func:`to_utc`'s rule if that time does not exist
    or exists twice); hours, minutes and seconds are then added as exact time.
    A month added to the 31st gives the last day of a shorter month; a year
    added to 29 February gives 28 February.
    """
    instant = require_aware(instant, "instant").astimezone(UTC)
    nominal = _nominal(duration) * times
    if nominal:
        instant = to_utc(to_local(instant, tz) + nominal, tz)
    return instant + _exact(duration) * times


def add_offset(
    instant: dt.datetime,
    offset: Duration | BusinessDays,
    tz: ZoneInfo,
    calendar: BusinessCalendar | None,
    *,
    times: int = 1,
) -> dt.datetime:
    """``instant`` moved by a reminder's or escalation's offset (``times=-1``: before it).

    A calendar duration is added as :func:`add_duration` adds it. Business days
    are counted on the local date with :meth:`BusinessCalendar.add_business_days`
    (the instant's own day never counts), keeping the local time of day, which
    becomes UTC by :func:`to_utc`'s DST rule.
    """
    if not isinstance(offset, BusinessDays):
        return add_duration(instant, offset, tz, times=times)
    if calendar is None:
        raise TypeError("an offset in business days needs the workflow's business calendar")
    local = to_local(require_aware(instant, "instant").astimezone(UTC), tz)
    day = calendar.add_business_days(local.date(), offset.business_days * times)
    return to_utc(dt.datetime.combine(day, local.time()), tz)


# ----------------------------------------------------------------------------- the due time


def compute_due(
    due: Due,
    *,
    tz: ZoneInfo,
    calendar: BusinessCalendar,
    entered_at: dt.datetime,
    cohort: Cohort | None,
    fields: Mapping[str, dt.date | dt.datetime | None],
) -> dt.datetime:
    """When a timer falls due, as an aware UTC instant.

    1. The anchor, as a local wall-clock time:
       ``at`` (a date alone means 23:59 that day, unless ``time`` is given);
       ``cohort_date`` (the case's cohort's date; a date alone means 00:00);
       ``field`` (the case's date or date-time field; a date alone means 00:00);
       otherwise the moment the case entered the state.
    2. ``after`` is added (:func:`add_duration`: calendar days and months on the
       local date, hours as exact time), or ``business_days`` are counted on the
       local date (:meth:`BusinessCalendar.add_business_days`), keeping the
       local time of day.
    3. ``time`` replaces the local time of day.
    4. ``roll`` moves a date that is not a business day to the next (or the
       previous) business day, keeping the local time of day.
    5. The local result becomes UTC by :func:`to_utc`'s DST rule.

    Raises :class:`DueUnavailable` when the anchor is missing on the case.
    """
    local, instant = _anchor(due, tz=tz, entered_at=entered_at, cohort=cohort, fields=fields)
    # ``instant`` is the exact UTC instant of ``local`` while one is known (an
    # aware anchor, exact hours added); it keeps the second 02:30 of an autumn
    # fold apart from the first. Any wall-clock step makes ``local`` the truth.
    if due.business_days is not None:
        day = calendar.add_business_days(local.date(), due.business_days)
        local, instant = dt.datetime.combine(day, local.time()), None
    if due.after is not None:
        nominal = _nominal(due.after)
        if nominal:
            local, instant = local + nominal, None
        exact = _exact(due.after)
        if exact:
            instant = (instant if instant is not None else to_utc(local, tz)) + exact
            local = to_local(instant, tz)
    if due.time is not None:
        local, instant = dt.datetime.combine(local.date(), parse_time_of_day(due.time)), None
    if due.roll != "none" and not calendar.is_business_day(local.date()):
        day = (
            calendar.next_business_day(local.date(), inclusive=False)
            if due.roll == "next_business_day"
            else calendar.previous_business_day(local.date(), inclusive=False)
        )
        local, instant = dt.datetime.combine(day, local.time()), None
    return instant if instant is not None else to_utc(local, tz)


def _anchor(
    due: Due,
    *,
    tz: ZoneInfo,
    entered_at: dt.datetime,
    cohort: Cohort | None,
    fields: Mapping[str, dt.date | dt.datetime | None],
) -> tuple[dt.datetime, dt.datetime | None]:
    """The anchor as (local wall-clock time, exact UTC instant if the anchor is one)."""
    if due.at is not None:
        if isinstance(due.at, dt.datetime):
            return due.at.replace(tzinfo=None, fold=0), None
        return dt.datetime.combine(due.at, END_OF_DAY), None
    if due.cohort_date is not None:
        if cohort is None:
            raise DueUnavailable(
                f"the deadline counts from the cohort's {due.cohort_date}, "
                "but the case has no cohort; assign one to the case"
            )
        return _local_of(cohort.date(due.cohort_date), tz)
    if due.field is not None:
        value = fields.get(due.field)
        if value is None:
            raise DueUnavailable(
                f"the deadline counts from the case's field {due.field!r}, "
                "which is empty; set it on the case"
            )
        return _local_of(value, tz)
    entered_at = require_aware(entered_at, "entered_at").astimezone(UTC)
    return to_local(entered_at, tz), entered_at


def _local_of(value: dt.date | dt.datetime, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime | None]:
    """A cohort or field value as a local wall-clock time (a date alone: 00:00)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.replace(fold=0), None
        instant = value.astimezone(UTC)
        return to_local(instant, tz), instant
    return dt.datetime.combine(value, START_OF_DAY), None


def parse_time_of_day(text: str) -> dt.time:
    """``"HH:MM"`` as a time (the model has checked the format)."""
    hours, _, minutes = text.partition(":")
    return dt.time(int(hours), int(minutes))


def _nominal(duration: Duration) -> relativedelta:
    return relativedelta(years=duration.years, months=duration.months, days=duration.days)


def _exact(duration: Duration) -> dt.timedelta:
    return dt.timedelta(hours=duration.hours, minutes=duration.minutes, seconds=duration.seconds)


# ----------------------------------------------------------------------------- firings


class FiringKind(StrEnum):
    """What a firing of a timer does."""

    REMINDER = "reminder"
    DEADLINE = "deadline"
    REPEAT = "repeat"
    ESCALATION = "escalation"


@dataclass(frozen=True, kw_only=True, slots=True)
class Firing:
    """One instant at which a timer acts.

    ``index`` is the reminder's number (1 for the first ``before`` entry as
    written) or the repeat's number (1 for the first repeat); 0 for the
    deadline and the escalation.
    """

    kind: FiringKind
    index: int
    due_at: dt.datetime

    def __post_init__(self) -> None:
        require_aware(self.due_at, "due_at")

    @property
    def key(self) -> str:
        """A stable name within its timer, e.g. ``reminder.1``, ``deadline.0``."""
        return f"{self.kind.value}.{self.index}"


def schedule(
    timer: Timer,
    *,
    due_at: dt.datetime,
    tz: ZoneInfo,
    calendar: BusinessCalendar | None = None,
) -> list[Firing]:
    """Every firing of ``timer`` whose deadline is ``due_at``, sorted by instant.

    - reminders at ``due_at - before`` for each ``before`` (calendar arithmetic
      in local time: a P14D reminder before 09:00 is at 09:00 local, also
      across a DST change; ``{business_days: 5}`` is the fifth business day of
      ``calendar`` before the deadline's local date, at the same local time);
    - the deadline at ``due_at``;
    - repeats at ``due_at + k * every`` for k = 1 … times, each computed from
      the deadline (monthly repeats from 31 January: 28/29 Feb, 31 Mar, 30 Apr
      — no drift);
    - the escalation at ``due_at + after`` (business days as for reminders).

    ``calendar`` (the workflow's business calendar) is needed when an offset is
    in business days.

    Ties keep that order (reminders, deadline, repeats, escalation). Past
    reminders are not removed here: see :func:`drop_past_reminders`.
    """
    due_at = require_aware(due_at, "due_at").astimezone(UTC)
    firings: list[Firing] = []
    if timer.reminders is not None:
        firings.extend(
            Firing(
                kind=FiringKind.REMINDER,
                index=number,
                due_at=add_offset(due_at, before, tz, calendar, times=-1),
            )
            for number, before in enumerate(timer.reminders.before, start=1)
        )
    firings.append(Firing(kind=FiringKind.DEADLINE, index=0, due_at=due_at))
    if timer.repeat is not None:
        firings.extend(
            Firing(
                kind=FiringKind.REPEAT,
                index=k,
                due_at=add_duration(due_at, timer.repeat.every, tz, times=k),
            )
            for k in range(1, timer.repeat.times + 1)
        )
    if timer.escalate is not None:
        firings.append(
            Firing(
                kind=FiringKind.ESCALATION,
                index=0,
                due_at=add_offset(due_at, timer.escalate.after, tz, calendar),
            )
        )
    return sorted(firings, key=lambda firing: firing.due_at)


def split_past_reminders(
    firings: Sequence[Firing], armed_at: dt.datetime
) -> tuple[list[Firing], list[Firing]]:
    """Split into (kept, dropped): reminders due before ``armed_at`` are dropped.

    A reminder of a deadline that was already that close when the timer was
    armed (a case opened late, a deadline extended to a nearer date) would be
    noise after the fact. A reminder due exactly at ``armed_at`` is kept. The
    deadline, repeats and escalation are always kept: an overdue case is
    still overdue, and the timer's missed-firing policy decides how their past
    firings are handled.
    """
    armed_at = require_aware(armed_at, "armed_at")
    kept: list[Firing] = []
    dropped: list[Firing] = []
    for firing in firings:
        past = firing.kind is FiringKind.REMINDER and firing.due_at < armed_at
        (dropped if past else kept).append(firing)
    return kept, dropped


def drop_past_reminders(firings: Sequence[Firing], armed_at: dt.datetime) -> list[Firing]:
    """``firings`` without the reminders already past at ``armed_at`` (see split_past_reminders)."""
    return split_past_reminders(firings, armed_at)[0]


# ----------------------------------------------------------------------------- missed firings


class HasKind(Protocol):
    """A firing key: anything with the firing's kind (a :class:`Firing`, a timer row)."""

    @property
    def kind(self) -> str: ...


K = TypeVar("K", bound=HasKind)


@dataclass(frozen=True, kw_only=True, slots=True)
class MissedResolution(Generic[K]):
    """What to do now with the due firings of one timer.

    Every firing passed in is in exactly one of ``fire`` (now, oldest first),
    ``skip`` (never, with the reason to record in the case's log) or
    ``defer`` (over the burst cap: still due, resolve again on the next tick).
    """

    fire: tuple[K, ...]
    skip: tuple[tuple[K, str], ...]
    defer: tuple[K, ...]


def resolve_missed(
    firings_due: Sequence[tuple[K, dt.datetime]],
    *,
    now: dt.datetime,
    policy: Missed,
    burst_cap: int,
) -> MissedResolution[K]:
    """Apply a timer's missed-firing policy to its firings due at ``now``.

    ``firings_due`` are (key, due_at) pairs of ONE timer, all due (``due_at <=
    now``); they are ordered by due_at here (stable, so equal instants keep
    their given order).

    - ``fire_all``: all fire, oldest first.
    - ``latest_once``: of each kind (reminders, deadline, repeats, escalation)
      only the latest fires; the older ones are skipped as superseded.
    - ``skip_older_than``: firings due more than ``window`` before ``now`` are
      skipped (a calendar month counts 30 days here); a firing exactly
      ``window`` late still fires.

    Then at most ``burst_cap`` fire on this tick; the rest are deferred, never
    dropped. Nothing is dropped silently.
    """
    now = require_aware(now, "now")
    if burst_cap < 1:
        raise ValueError(f"burst_cap must be at least 1, got {burst_cap}")
    ordered = sorted(firings_due, key=lambda item: item[1])
    for key, due_at in ordered:
        if require_aware(due_at, "due_at") > now:
            raise ValueError(f"firing {key!r} is due at {due_at.isoformat()}, after now")

    candidates: list[tuple[K, dt.datetime]] = []
    skip: list[tuple[K, str]] = []
    if policy.policy is MissedPolicy.LATEST_ONCE:
        latest: dict[str, int] = {}
        for position, (key, _) in enumerate(ordered):
            latest[str(key.kind)] = position
        for position, (key, due_at) in enumerate(ordered):
            if latest[str(key.kind)] == position:
                candidates.append((key, due_at))
            else:
                skip.append((key, SUPERSEDED))
    elif policy.policy is MissedPolicy.SKIP_OLDER_THAN:
        assert policy.window is not None  # the model requires a window for this policy
        cutoff = now - policy.window.approximate()
        for key, due_at in ordered:
            if due_at < cutoff:
                late = _describe_lateness(now - due_at)
                skip.append(
                    (key, f"{late} late, more than {policy.window} (policy skip_older_than)")
                )
            else:
                candidates.append((key, due_at))
    else:
        candidates = list(ordered)

    fire = tuple(key for key, _ in candidates[:burst_cap])
    defer = tuple(key for key, _ in candidates[burst_cap:])
    return MissedResolution(fire=fire, skip=tuple(skip), defer=defer)


def _describe_lateness(late: dt.timedelta) -> str:
    if late >= dt.timedelta(days=1):
        return f"{late.days} days"
    hours, rest = divmod(int(late.total_seconds()), 3600)
    return f"{hours} h {rest // 60} min"


# ----------------------------------------------------------------------------- office hours


def next_office_opening(
    instant: dt.datetime, office_hours: OfficeHours, calendar: BusinessCalendar, tz: ZoneInfo
) -> dt.datetime:
    """``instant`` itself if the office is open then, else the next opening (UTC).

    The office is open on its days (business days of ``calendar``, or every
    day) from ``opens`` (included) to ``closes`` (excluded), local time. Mail
    that is not urgent and falls due outside these hours waits until then.
    """
    instant = require_aware(instant, "instant").astimezone(UTC)
    local = to_local(instant, tz)
    opens = parse_time_of_day(office_hours.opens)
    closes = parse_time_of_day(office_hours.closes)

    def open_day(day: dt.date) -> bool:
        return office_hours.days == "every_day" or calendar.is_business_day(day)

    day = local.date()
    if open_day(day):
        if opens <= local.time() < closes:
            return instant
        if local.time() < opens:
            return to_utc(dt.datetime.combine(day, opens), tz)
    day += dt.timedelta(days=1)
    if office_hours.days != "every_day":
        day = calendar.next_business_day(day, inclusive=True)
    return to_utc(dt.datetime.combine(day, opens), tz)


# ----------------------------------------------------------------------------- programme events


def event_instants(event: CalendarEvent, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """(starts_at, ends_at) of a programme event, as UTC instants."""
    starts_at = to_utc(event.at, tz)
    return starts_at, add_duration(starts_at, event.duration, tz)


def event_reminders(event: CalendarEvent, tz: ZoneInfo) -> list[Firing]:
    """The reminder firings of a programme event, sorted; ``index`` numbers them as written.

    A reminder ``P7D`` before a 09:30 workshop is at 09:30 local a week
    before, also across a DST change. Drop those already past when the event
    is announced with :func:`drop_past_reminders`.
    """
    starts_at, _ = event_instants(event, tz)
    firings = [
        Firing(
            kind=FiringKind.REMINDER,
            index=number,
            due_at=add_duration(starts_at, before, tz, times=-1),
        )
        for number, before in enumerate(event.reminders, start=1)
    ]
    return sorted(firings, key=lambda firing: firing.due_at)


# ----------------------------------------------------------------------------- who is late


def is_deadline(timer: Timer) -> bool:
    """A deadline someone must meet (it reminds, escalates, repeats or may be extended),
    rather than a timer that only sends a notice or moves the case itself."""
    return bool(timer.reminders or timer.escalate or timer.repeat or timer.extend_roles)


def is_late(state: State, timer: str, deadline_at: dt.datetime, at: dt.datetime) -> bool:
    """The one definition of late, used by ``case list --overdue``, the report and the console.

    A case is late on a deadline when it is still in the (non-terminal) state whose
    deadline timer ``timer`` it waits on, and that deadline (``deadline_at``: the one
    currently armed for the case, a moved one included) passed before ``at`` without
    the transition that leaves the state — whether or not the deadline's own firing,
    its repeats or its escalation have gone out. The caller passes the deadline of
    the case's current state entry (``store.sql.timers.latest_deadline_arms``).
    """
    spec = state.timers.get(timer)
    return not state.terminal and spec is not None and is_deadline(spec) and deadline_at < at
