"""Business days on the Danish calendar.

A day is a business day when it is a weekday (Monday to Friday), not a Danish
public holiday (from the ``holidays`` package, country DK), not one of the
optional days the workflow's ``calendar.closed_on`` lists, and not one of its
``calendar.extra_closed_days``.

The optional days are 1 May, Constitution Day (5 June), Christmas Eve (24
December) and New Year's Eve (31 December). Danish law does not make them
public holidays, so ``holidays`` keeps them in its *optional* category; each
workflow file says which of them its secretariat treats as closed.

Public holidays follow the law of their year: Great Prayer Day (Store bededag)
is a holiday up to 2023 and a business day from 2024.

Everything here is a pure function of the calendar spec and the date. The
holiday tables are built once per year and language and cached.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from types import MappingProxyType
from typing import Final

import holidays

from dk2020flow.definition.model import Calendar, OptionalHoliday

OPTIONAL_DAYS: Final[MappingProxyType[OptionalHoliday, tuple[int, int]]] = MappingProxyType(
    {
        OptionalHoliday.MAY_1: (5, 1),
        OptionalHoliday.CONSTITUTION_DAY: (6, 5),
        OptionalHoliday.CHRISTMAS_EVE: (12, 24),
        OptionalHoliday.NEW_YEARS_EVE: (12, 31),
    }
)
"""The (month, day) of each optional Danish day."""

LANGUAGES: Final[MappingProxyType[str, str]] = MappingProxyType({"da": "da", "en": "en_US"})
"""Our language codes and the ``holidays`` package's codes for them."""

OPTIONAL_NAMES: Final[MappingProxyType[str, dict[OptionalHoliday, str]]] = MappingProxyType(
    {
        "da": {
            OptionalHoliday.MAY_1: "Arbejdernes kampdag",
            OptionalHoliday.CONSTITUTION_DAY: "Grundlovsdag",
            OptionalHoliday.CHRISTMAS_EVE: "Juleaftensdag",
            OptionalHoliday.NEW_YEARS_EVE: "Nytårsaften",
        },
        "en": {
            OptionalHoliday.MAY_1: "Workers' Day",
            OptionalHoliday.CONSTITUTION_DAY: "Constitution Day",
            OptionalHoliday.CHRISTMAS_EVE: "Christmas Eve",
            OptionalHoliday.NEW_YEARS_EVE: "New Year's Eve",
        },
    }
)
"""Names for the optional days in a year where ``holidays`` does not list them."""

EXTRA_CLOSED_NAME: Final[MappingProxyType[str, str]] = MappingProxyType(
    {"da": "Lukkedag", "en": "Closed day"}
)
"""The name :meth:`BusinessCalendar.holiday_name` gives an ``extra_closed_days`` entry."""

_MAX_SCAN_DAYS = 366
"""No run of closed days is longer than this; a longer scan means a broken calendar."""


@lru_cache(maxsize=512)
def _danish_days(year: int, language: str) -> MappingProxyType[dt.date, tuple[str, bool]]:
    """Every public and optional Danish day of ``year``: date -> (name, is_optional)."""
    code = LANGUAGES[language]
    public = holidays.country_holidays("DK", years=year, language=code)
    optional = holidays.country_holidays("DK", years=year, language=code, categories=("optional",))
    days: dict[dt.date, tuple[str, bool]] = {
        day: (str(name), True) for day, name in optional.items()
    }
    days.update({day: (str(name), False) for day, name in public.items()})
    return MappingProxyType(days)


class BusinessCalendar:
    """Which days are business days, for one workflow's ``calendar`` spec.

    Instances are cheap to share and safe to use from several threads: the only
    state is a per-year cache of closed days, filled idempotently.
    """

    __slots__ = ("_closed", "_closed_optional", "_extra", "spec")

    def __init__(self, spec: Calendar | None = None) -> None:
        self.spec: Calendar = spec if spec is not None else Calendar()
        if self.spec.country != "DK":  # pragma: no cover - the model allows only DK
            raise ValueError(f"no business calendar for country {self.spec.country!r}")
        self._closed_optional: frozenset[tuple[int, int]] = frozenset(
            OPTIONAL_DAYS[day] for day in self.spec.closed_on
        )
        self._extra: frozenset[dt.date] = frozenset(self.spec.extra_closed_days)
        self._closed: dict[int, frozenset[dt.date]] = {}

    def __repr__(self) -> str:
        closed = ", ".join(day.value for day in self.spec.closed_on)
        return f"BusinessCalendar(country=DK, closed_on=[{closed}])"

    # ------------------------------------------------------------------ single days

    def closed_days(self, year: int) -> frozenset[dt.date]:
        """The closed days of ``year`` whatever their weekday: holidays and extra days."""
        cached = self._closed.get(year)
        if cached is None:
            public = (
                day for day, (_, optional) in _danish_days(year, "en").items() if not optional
            )
            optional = (dt.date(year, month, day) for month, day in self._closed_optional)
            extra = (day for day in self._extra if day.year == year)
            cached = frozenset((*public, *optional, *extra))
            self._closed[year] = cached
        return cached

    def is_business_day(self, day: dt.date) -> bool:
        """True for a weekday that is neither a closed holiday nor an extra closed day."""
        day = _as_date(day)
        return day.weekday() < 5 and day not in self.closed_days(day.year)

    def holiday_name(self, day: dt.date, language: str = "da") -> str | None:
        """The name of the holiday that closes ``day``, or None.

        Gives a name for public holidays (also on a weekend), for optional days
        that this calendar closes, and for extra closed days. Gives None for
        ordinary days, plain weekends and optional days that stay open, so for a
        weekday ``is_business_day(day) == (holiday_name(day) is None)``.
        """
        if language not in LANGUAGES:
            raise ValueError(f"holiday names are offered in da and en, not {language!r}")
        day = _as_date(day)
        if day not in self.closed_days(day.year):
            return None
        found = _danish_days(day.year, language).get(day)
        if found is not None:
            return found[0]
        for optional, month_day in OPTIONAL_DAYS.items():
            if (day.month, day.day) == month_day and optional in self.spec.closed_on:
                return OPTIONAL_NAMES[language][optional]
        return EXTRA_CLOSED_NAME[language]

    # ------------------------------------------------------------------ arithmetic

    def next_business_day(self, day: dt.date, *, inclusive: bool) -> dt.date:
        """The first business day on or after ``day`` (inclusive) or strictly after it."""
        day = _as_date(day)
        if inclusive and self.is_business_day(day):
            return day
        return self._step(day, 1)

    def previous_business_day(self, day: dt.date, *, inclusive: bool) -> dt.date:
        """The last business day on or before ``day`` (inclusive) or strictly before it."""
        day = _as_date(day)
        if inclusive and self.is_business_day(day):
            return day
        return self._step(day, -1)

    def add_business_days(self, day: dt.date, n: int) -> dt.date:
        """The ``n``-th business day after ``day`` (before it when ``n`` is negative).

        ``day`` itself is never counted, so one business day after a Friday is
        the Monday and one after a Saturday is also the Monday. ``n == 0`` gives
        ``day`` when it is a business day, else the next business day.
        """
        day = _as_date(day)
        if n == 0:
            return self.next_business_day(day, inclusive=True)
        step = 1 if n > 0 else -1
        for _ in range(abs(n)):
            day = self._step(day, step)
        return day

    def business_days_between(self, start: dt.date, end: dt.date) -> int:
        """How many business days lie after ``start`` up to and including ``end``.

        Negative when ``end`` is before ``start``: then it counts the business
        days from ``end`` (included) up to ``start`` (excluded). So for a
        business day ``end``, ``add_business_days(start, business_days_between(start, end))
        == end``.
        """
        start, end = _as_date(start), _as_date(end)
        if start <= end:
            first, last, sign = start + dt.timedelta(days=1), end, 1
        else:
            first, last, sign = end, start - dt.timedelta(days=1), -1
        count = 0
        day = first
        while day <= last:
            if self.is_business_day(day):
                count += 1
            day += dt.timedelta(days=1)
        return sign * count

    def _step(self, day: dt.date, step: int) -> dt.date:
        for _ in range(_MAX_SCAN_DAYS):
            day += dt.timedelta(days=step)
            if self.is_business_day(day):
                return day
        raise ValueError(f"no business day within {_MAX_SCAN_DAYS} days of {day}")


def _as_date(day: dt.date) -> dt.date:
    """Accept a date (a datetime is reduced to its date)."""
    if isinstance(day, dt.datetime):
        return day.date()
    return day
