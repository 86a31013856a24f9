"""Where ``now`` comes from.

Every ``now`` in dk2020flow comes from a :class:`Clock` (docs/architecture.md,
invariant 5); this is the only module that reads the machine's clock (a test
greps for it). Production uses :class:`SystemClock`; ``--now`` on the command
line gives a :class:`FixedClock` (``scheduler run --now`` without ``--once``, a
:class:`ShiftedClock`); tests and simulation drive a :class:`ManualClock` and
never sleep on the wall clock. All clocks return timezone-aware UTC datetimes and
refuse naive ones.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dk2020flow.localtime import to_utc

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

INSTANT_FORMATS = (
    "an ISO 8601 date-time with an offset (2020-08-19T12:00+02:00 or 2020-08-19T10:00Z), "
    "a local date-time without one (2020-08-19T12:00, read in the workflow's timezone) "
    "or a date (2020-08-19, local midnight)"
)


@runtime_checkable
class Clock(Protocol):
    """A source of the current instant."""

    def now(self) -> dt.datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


def as_utc(instant: dt.datetime, what: str = "instant") -> dt.datetime:
    """``instant`` converted to UTC; a naive datetime is refused with a ValueError."""
    if not isinstance(instant, dt.datetime):
        raise TypeError(f"{what} must be a datetime, got {type(instant).__name__}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(
            f"{what} must be timezone-aware, got the naive time {instant.isoformat()}; "
            "give an offset (e.g. +00:00) or use parse_instant() with the workflow's timezone"
        )
    return instant.astimezone(dt.UTC)


class SystemClock:
    """The real clock of this machine."""

    __slots__ = ()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock:
    """A clock that always says the same instant (``--now``, replays)."""

    __slots__ = ("_instant",)

    def __init__(self, instant: dt.datetime) -> None:
        self._instant = as_utc(instant)

    def now(self) -> dt.datetime:
        return self._instant

    def __repr__(self) -> str:
        return f"FixedClock({self._instant.isoformat()})"


class ShiftedClock:
    """Starts at a given instant and advances with the wall clock (``run --now`` without --once)."""

    __slots__ = ("_offset", "_wall")

    def __init__(self, start: dt.datetime, wall: Clock | None = None) -> None:
        self._wall = wall or SystemClock()
        self._offset = as_utc(start, "start") - self._wall.now()

    def now(self) -> dt.datetime:
        return self._wall.now() + self._offset

    def __repr__(self) -> str:
        return f"ShiftedClock(now={self.now().isoformat()})"


class ManualClock:
    """A clock that moves only when told to: tests and simulations drive it.

    Time never goes backwards through :meth:`advance`; :meth:`set` may move it
    anywhere (to replay a period).
    """

    __slots__ = ("_instant",)

    def __init__(self, start: dt.datetime) -> None:
        self._instant = as_utc(start, "start")

    def now(self) -> dt.datetime:
        return self._instant

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move forward by ``delta`` (exact time) and return the new now."""
        if delta < dt.timedelta(0):
            raise ValueError(f"advance takes a non-negative span, got {delta}; use set()")
        self._instant += delta
        return self._instant

    def set(self, instant: dt.datetime) -> dt.datetime:
        """Jump to ``instant`` (aware) and return it, in UTC."""
        self._instant = as_utc(instant)
        return self._instant

    def __repr__(self) -> str:
        return f"ManualClock({self._instant.isoformat()})"


def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name``; a ValueError naming it when it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {name!r}; "
            "use an IANA name such as Europe/Brussels or America/Toronto"
        ) from exc


def parse_instant(text: str, tz: str) -> dt.datetime:
    """Read a ``--now`` value as an aware UTC instant.

    Accepts an ISO 8601 date-time with an offset (``2020-08-19T12:00+02:00``)
    or ``Z``; a local date-time without an offset, read in ``tz`` by the DST
    rule of :func:`dk2020flow.localtime.to_utc` (a time in the spring gap
    moves forward by the gap, a time that exists twice means its first
    occurrence); or a date alone, meaning local midnight. Anything else raises
    a ValueError naming the expected formats.
    """
    zoneinfo = zone(tz)
    cleaned = text.strip()
    if _DATE_ONLY.match(cleaned):
        try:
            day = dt.date.fromisoformat(cleaned)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a valid date; write {INSTANT_FORMATS}") from exc
        return to_utc(dt.datetime.combine(day, dt.time()), zoneinfo)
    try:
        parsed = dt.datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date-time; write {INSTANT_FORMATS}") from exc
    if parsed.tzinfo is None:
        return to_utc(parsed, zoneinfo)
    return parsed.astimezone(dt.UTC)
