"""Calendars of other countries than Denmark: their public holidays (and a subdivision's),
named closures and extra working days. The expected dates are computed here from the
rules themselves (Easter by the Gregorian computus), not read from the holidays package."""

from __future__ import annotations

import datetime as dt

import pytest

from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.model import Calendar, Closure, OptionalHoliday

D = dt.date


def easter(year: int) -> dt.date:
    """Easter Sunday (the anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


@pytest.mark.parametrize("year", [2024, 2025, 2026, 2030])
def test_easter_monday_and_good_friday_close_german_offices(year: int) -> None:
    calendar = BusinessCalendar(Calendar(country="DE", subdivision="BE"))
    sunday = easter(year)
    assert not calendar.is_business_day(sunday + dt.timedelta(days=1))
    assert not calendar.is_business_day(sunday - dt.timedelta(days=2))
    assert calendar.is_business_day(sunday + dt.timedelta(days=2))


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_corpus_christi_closes_bavaria_but_not_berlin(year: int) -> None:
    corpus_christi = easter(year) + dt.timedelta(days=60)  # a Thursday
    assert corpus_christi.weekday() == 3
    assert not BusinessCalendar(Calendar(country="DE", subdivision="BY")).is_business_day(
        corpus_christi
    )
    assert BusinessCalendar(Calendar(country="DE", subdivision="BE")).is_business_day(
        corpus_christi
    )


def test_a_deadline_counted_in_business_days_skips_the_countrys_own_holidays() -> None:
    # Belgium's national day, Monday 21 July 2025; Denmark works that day.
    belgian = BusinessCalendar(Calendar(country="BE"))
    danish = BusinessCalendar(Calendar(country="DK"))
    assert belgian.add_business_days(D(2025, 7, 18), 1) == D(2025, 7, 22)
    assert danish.add_business_days(D(2025, 7, 18), 1) == D(2025, 7, 21)
    # Constitution Day (5 June) is Danish; a Belgian office works on it.
    assert not danish.is_business_day(D(2025, 6, 5))
    assert belgian.is_business_day(D(2025, 6, 5))


def test_optional_danish_days_are_not_closed_elsewhere() -> None:
    german = BusinessCalendar(Calendar(country="DE", subdivision="BE"))
    assert german.is_business_day(D(2025, 12, 24))  # a Wednesday
    assert german.is_business_day(D(2025, 12, 31))
    assert german.spec.optional_days_closed() == ()
    assert Calendar(country="DK").optional_days_closed() == (
        OptionalHoliday.CONSTITUTION_DAY,
        OptionalHoliday.CHRISTMAS_EVE,
        OptionalHoliday.NEW_YEARS_EVE,
    )
    assert Calendar().optional_days_closed() == ()  # no country: no Danish days


def test_a_calendar_without_a_country_closes_weekends_only() -> None:
    neutral = BusinessCalendar(Calendar())
    assert neutral.is_business_day(D(2025, 12, 25))  # Christmas Day, a Thursday
    assert neutral.is_business_day(D(2025, 1, 1))
    assert not neutral.is_business_day(D(2025, 12, 27))  # a Saturday
    assert neutral.holiday_name(D(2025, 12, 25)) is None
    assert neutral.add_business_days(D(2025, 12, 24), 1) == D(2025, 12, 25)
    closed = BusinessCalendar(Calendar(extra_closed_days=(D(2025, 12, 25),)))
    assert not closed.is_business_day(D(2025, 12, 25))


def test_named_closures_and_their_names() -> None:
    calendar = BusinessCalendar(
        Calendar(
            country="BE",
            closures=(
                Closure.model_validate(
                    {
                        "name": {"en": "Summer closing", "fr": "Fermeture d'été"},
                        "from": "2025-08-04",
                        "to": "2025-08-15",
                    }
                ),
                Closure(name="Bridge day", on=D(2025, 5, 30)),
            ),
        )
    )
    for offset in range(12):
        assert not calendar.is_business_day(D(2025, 8, 4) + dt.timedelta(days=offset))
    assert calendar.is_business_day(D(2025, 8, 18))
    assert calendar.holiday_name(D(2025, 8, 6), "fr") == "Fermeture d'été"
    assert calendar.holiday_name(D(2025, 8, 6), "de") == "Summer closing"
    assert calendar.holiday_name(D(2025, 5, 30), "en") == "Bridge day"
    assert calendar.add_business_days(D(2025, 8, 1), 1) == D(2025, 8, 18)


def test_an_extra_working_day_is_a_business_day_even_on_a_saturday_or_holiday() -> None:
    calendar = BusinessCalendar(
        Calendar(country="DK", extra_working_days=(D(2025, 6, 14), D(2025, 12, 24)))
    )
    assert calendar.is_business_day(D(2025, 6, 14))  # a Saturday
    assert calendar.is_business_day(D(2025, 12, 24))  # Christmas Eve, closed by default
    assert calendar.holiday_name(D(2025, 12, 24), "da") is None
    assert calendar.add_business_days(D(2025, 6, 13), 1) == D(2025, 6, 14)


def test_holiday_names_in_the_countrys_language_and_in_english() -> None:
    german = BusinessCalendar(Calendar(country="DE", subdivision="BY"))
    assert german.holiday_name(D(2025, 10, 3), "de") == "Tag der Deutschen Einheit"
    assert german.holiday_name(D(2025, 10, 3), "en") == "German Unity Day"


@pytest.mark.parametrize(
    "values",
    [
        {"name": "x"},
        {"name": "x", "on": "2025-01-02", "from": "2025-01-01", "to": "2025-01-03"},
        {"name": "x", "from": "2025-01-01"},
        {"name": "x", "from": "2025-01-05", "to": "2025-01-01"},
    ],
)
def test_a_closure_is_one_day_or_a_run_in_order(values: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="closure"):
        Closure.model_validate(values)


def test_an_unknown_country_or_subdivision_has_no_calendar() -> None:
    with pytest.raises(ValueError, match="country 'XX'"):
        BusinessCalendar(Calendar(country="XX"))
    with pytest.raises(ValueError, match="no subdivision 'ZZ'"):
        BusinessCalendar(Calendar(country="DE", subdivision="ZZ"))
