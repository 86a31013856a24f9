"""Business days on a country's calendar.

A day is a business day when it is a weekday (Monday to Friday) and not a
public holiday of the workflow's ``calendar.country`` (and ``subdivision``: a
state, region or province), from the ``holidays`` package (a calendar without a
country has no public holidays: weekends only); nor one of the
workflow's own closed days (``closures``, ``extra_closed_days``); unless the
workflow lists it in ``extra_working_days``, which makes any day a business
day.

Denmark (``country: DK``) has optional days besides: 1 May, Constitution Day (5 June),
Christmas Eve (24 December) and New Year's Eve (31 December). Danish law does
not make them public holidays, so ``holidays`` keeps them in its *optional*
category; a Danish workflow says which of them its secretariat treats as
closed (``closed_on``; by default all but 1 May). Other countries' optional
categories are not closed (write their days as ``closures``).

Public holidays follow the law of their year: Great Prayer Day (Store bededag)
is a holiday in Denmark up to 2023 and a business day from 2024.

An organisation's calendar (:func:`organisation_calendar`, for the timers a workflow
marks ``calendar: organisation``) is the public holidays of its country and
subdivision alone, with weekends: none of a workflow's closures, optional days or
extra days, which are the programme office's.

Everything here is a pure function of the calendar spec and the date. The
holiday tables are built once per country, subdivision, year and language and
cached.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Final

from dk2020flow.definition.model import Calendar, OptionalHoliday, text_in

OPTIONAL_DAYS: Final[MappingProxyType[OptionalHoliday, tuple[int, int]]] = MappingProxyType(
    {
        OptionalHoliday.MAY_1: (5, 1),
        OptionalHoliday.CONSTITUTION_DAY: (6, 5),
        OptionalHoliday.CHRISTMAS_EVE: (12, 24),
        OptionalHoliday.NEW_YEARS_EVE: (12, 31),
    }
)
"""The (month, day) of each optional Danish day."""

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
    {"da": "Lukkedag", "en": "Closed day", "de": "Schließtag", "fr": "Jour de fermeture"}
)
"""The name :meth:`BusinessCalendar.holiday_name` gives an ``extra_closed_days`` entry
(English in a language not listed)."""

_MAX_SCAN_DAYS = 366
"""No run of closed days is longer than this; a longer scan means a broken calendar."""


@cache
def supported_countries() -> Mapping[str, tuple[str, ...]]:
    """The countries ``holidays`` knows, each with its subdivisions' codes."""
    import holidays  # where a calendar is computed: a read command needs none (#15.18)

    return MappingProxyType(
        {
            country: tuple(subdivisions)
            for country, subdivisions in holidays.list_supported_countries(
                include_aliases=False
            ).items()
        }
    )


def _holiday_language(country: str, language: str) -> str | None:
    """The ``holidays`` language code for our ``language`` (``en`` is ``en_US`` there);
    None — the country's own language — when it offers neither it nor English."""
    import holidays

    offered = holidays.country_holidays(country).supported_languages
    for code in (language, f"{language}_{country}", "en_US" if language == "en" else ""):
        if code in offered:
            return code
    prefixed = sorted(code for code in offered if code.startswith(f"{language}_"))
    if prefixed:
        return prefixed[0]
    return "en_US" if "en_US" in offered else None


@lru_cache(maxsize=1024)
def _public_days(
    country: str, subdivision: str | None, year: int, language: str
) -> MappingProxyType[dt.date, str]:
    """The public holidays of ``year``: date -> name in ``language`` (or the country's)."""
    import holidays

    found = holidays.country_holidays(
        country, subdiv=subdivision, years=year, language=_holiday_language(country, language)
    )
    return MappingProxyType({day: str(name) for day, name in found.items()})


_NO_DAYS: Final[Mapping[dt.date, str]] = MappingProxyType({})


@lru_cache(maxsize=512)
def _danish_optional_days(year: int, language: str) -> MappingProxyType[dt.date, str]:
    """Denmark's optional days of ``year`` as ``holidays`` names them."""
    import holidays

    found = holidays.country_holidays(
        "DK", years=year, language=_holiday_language("DK", language), categories=("optional",)
    )
    return MappingProxyType({day: str(name) for day, name in found.items()})


class BusinessCalendar:
    """Which days are business days, for one workflow's ``calendar`` spec.

    Instances are cheap to share and safe to use from several threads: the only
    state is a per-year cache of closed days, filled idempotently.
    """

    __slots__ = ("_closed", "_closed_optional", "_closures", "_extra", "_working", "spec")

    def __init__(self, spec: Calendar | None = None) -> None:
        self.spec: Calendar = spec if spec is not None else Calendar()
        country = self.spec.country
        if country is None:
            if self.spec.subdivision is not None:
                raise ValueError("a calendar without a country has no subdivisions")
        elif country not in supported_countries():
            raise ValueError(f"no public holidays are known for country {country!r}")
        elif self.spec.subdivision not in (None, *supported_countries()[country]):
            raise ValueError(f"{country} has no subdivision {self.spec.subdivision!r}")
        self._closed_optional: frozenset[tuple[int, int]] = frozenset(
            OPTIONAL_DAYS[day] for day in self.spec.optional_days_closed()
        )
        self._closures: dict[dt.date, int] = {
            day: index for index, closure in enumerate(self.spec.closures) for day in closure.days()
        }
        self._extra: frozenset[dt.date] = frozenset(self.spec.extra_closed_days)
        self._working: frozenset[dt.date] = frozenset(self.spec.extra_working_days)
        self._closed: dict[int, frozenset[dt.date]] = {}

    def __repr__(self) -> str:
        where = (self.spec.country or "none") + (
            f"-{self.spec.subdivision}" if self.spec.subdivision else ""
        )
        closed = ", ".join(day.value for day in self.spec.optional_days_closed())
        return f"BusinessCalendar(country={where}, closed_on=[{closed}])"

    # ------------------------------------------------------------------ single days

    def closed_days(self, year: int) -> frozenset[dt.date]:
        """The closed days of ``year`` whatever their weekday: holidays and the workflow's
        closures (the extra working days taken out)."""
        cached = self._closed.get(year)
        if cached is None:
            public = self._public(year, "en")
            optional = (dt.date(year, month, day) for month, day in self._closed_optional)
            own = (day for day in (*self._extra, *self._closures) if day.year == year)
            cached = frozenset((*public, *optional, *own)) - self._working
            self._closed[year] = cached
        return cached

    def is_business_day(self, day: dt.date) -> bool:
        """True for an extra working day, and for a weekday that is neither a holiday nor a
        day the workflow closes."""
        day = _as_date(day)
        if day in self._working:
            return True
        return day.weekday() < 5 and day not in self.closed_days(day.year)

    def holiday_name(self, day: dt.date, language: str = "da") -> str | None:
        """The name of the holiday or closure that closes ``day``, or None.

        Gives a name for public holidays (also on a weekend), for optional days
        that this calendar closes, and for the workflow's closures and extra closed
        days. Gives None for ordinary days, plain weekends, extra working days and
        optional days that stay open, so for a weekday ``is_business_day(day) ==
        (holiday_name(day) is None)``. ``language`` is a language code (``da``,
        ``en``, ``de`` …); a name the holiday tables lack in it comes in English or
        the country's own language.
        """
        day = _as_date(day)
        if day not in self.closed_days(day.year):
            return None
        if day in self._closures:
            closure = self.spec.closures[self._closures[day]]
            return text_in(closure.name, language, EXTRA_CLOSED_NAME["en"])
        public = self._public(day.year, language)
        if day in public:
            return public[day]
        if (day.month, day.day) in self._closed_optional:
            named = _danish_optional_days(day.year, language).get(day)
            if named is not None:
                return named
            for optional, month_day in OPTIONAL_DAYS.items():
                if (day.month, day.day) == month_day:
                    return OPTIONAL_NAMES.get(language, OPTIONAL_NAMES["en"])[optional]
        return EXTRA_CLOSED_NAME.get(language, EXTRA_CLOSED_NAME["en"])

    def _public(self, year: int, language: str) -> Mapping[dt.date, str]:
        """The public holidays of ``year`` (none for a calendar without a country)."""
        if self.spec.country is None:
            return _NO_DAYS
        return _public_days(self.spec.country, self.spec.subdivision, year, language)

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


@lru_cache(maxsize=256)
def organisation_calendar(country: str, subdivision: str = "") -> BusinessCalendar | None:
    """The business calendar of an organisation in ``country`` (and ``subdivision``):
    weekends and that country's public holidays, nothing else (no optional days, no
    closures). One instance per (country, subdivision), shared.

    None when ``country`` is '' or the ``holidays`` package knows no such country or
    subdivision (an import checks both, so only a later ``holidays`` could lose one): the
    caller then counts on the programme's calendar."""
    country = country.strip().upper()
    if not country or country not in supported_countries():
        return None
    subdivision = subdivision.strip()
    if subdivision and subdivision not in supported_countries()[country]:
        return None
    return BusinessCalendar(
        Calendar(country=country, subdivision=subdivision or None, closed_on=())
    )


def _as_date(day: dt.date) -> dt.date:
    """Accept a date (a datetime is reduced to its date)."""
    if isinstance(day, dt.datetime):
        return day.date()
    return day
