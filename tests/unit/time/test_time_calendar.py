"""Business days on the Danish calendar."""

from __future__ import annotations

import datetime as dt

import holidays
import pytest

from dk2020flow.definition.calendar import OPTIONAL_DAYS, BusinessCalendar
from dk2020flow.definition.model import Calendar, OptionalHoliday

D = dt.date
ALL_OPEN = BusinessCalendar(Calendar(country="DK", closed_on=()))
ALL_CLOSED = BusinessCalendar(Calendar(country="DK", closed_on=tuple(OptionalHoliday)))


@pytest.mark.parametrize(
    ("day", "business", "name_da", "name_en"),
    [
        (D(2021, 3, 31), True, None, None),  # Wednesday before Easter
        (D(2021, 4, 1), False, "Skærtorsdag", "Maundy Thursday"),
        (D(2021, 4, 2), False, "Langfredag", "Good Friday"),
        (D(2021, 4, 3), False, None, None),  # plain Saturday
        (D(2021, 4, 4), False, "Påskedag", "Easter Sunday"),
        (D(2021, 4, 5), False, "Anden påskedag", "Easter Monday"),
        (D(2021, 4, 6), True, None, None),
        (D(2021, 4, 30), False, "Store bededag", "Great Prayer Day"),
        (D(2024, 4, 26), True, None, None),  # Great Prayer Day abolished from 2024
        (D(2021, 5, 13), False, "Kristi himmelfartsdag", "Ascension Day"),
        (D(2021, 5, 14), True, None, None),  # the Friday after Ascension is not a holiday
        (D(2021, 5, 24), False, "Anden pinsedag", "Pentecost Monday"),
        (D(2020, 6, 5), False, "Grundlovsdag", "Constitution Day"),  # Friday, closed in DK2020
        (D(2020, 5, 1), True, None, None),  # Friday, 1 May is open in DK2020
        (D(2020, 12, 24), False, "Juleaftensdag", "Christmas Eve"),
        (D(2020, 12, 25), False, "Juledag", "Christmas Day"),
        (D(2020, 12, 28), True, None, None),
        (D(2020, 12, 31), False, "Nytårsaften", "New Year's Eve"),
        (D(2021, 1, 1), False, "Nytårsdag", "New Year's Day"),
    ],
)
def test_dk2020_calendar_days(
    calendar: BusinessCalendar,
    day: dt.date,
    business: bool,
    name_da: str | None,
    name_en: str | None,
) -> None:
    assert calendar.is_business_day(day) is business
    assert calendar.holiday_name(day) == name_da
    assert calendar.holiday_name(day, "da") == name_da
    assert calendar.holiday_name(day, "en") == name_en


@pytest.mark.parametrize(
    ("day", "open_everywhere"),
    [
        (D(2020, 5, 1), True),
        (D(2020, 6, 5), True),
        (D(2020, 12, 24), True),
        (D(2020, 12, 31), True),
    ],
)
def test_optional_days_follow_closed_on(day: dt.date, open_everywhere: bool) -> None:
    assert ALL_OPEN.is_business_day(day) is open_everywhere
    assert ALL_OPEN.holiday_name(day) is None
    assert not ALL_CLOSED.is_business_day(day)
    assert ALL_CLOSED.holiday_name(day) is not None


def test_optional_days_match_the_holidays_package() -> None:
    """If ``holidays`` changes its optional category, we want to know."""
    for year in (2020, 2021, 2024):
        optional = holidays.country_holidays("DK", years=year, categories=("optional",))
        assert {(d.month, d.day) for d in optional} == set(OPTIONAL_DAYS.values())


def test_extra_closed_days() -> None:
    cal = BusinessCalendar(Calendar(country="DK", extra_closed_days=(D(2021, 5, 14),)))
    assert not cal.is_business_day(D(2021, 5, 14))
    assert cal.holiday_name(D(2021, 5, 14), "da") == "Lukkedag"
    assert cal.holiday_name(D(2021, 5, 14), "en") == "Closed day"
    assert cal.add_business_days(D(2021, 5, 12), 1) == D(2021, 5, 17)


def test_holiday_names_in_a_language_the_tables_lack_come_in_english(
    calendar: BusinessCalendar,
) -> None:
    assert calendar.holiday_name(D(2021, 12, 25), "fi") == "Christmas Day"
    assert calendar.holiday_name(D(2021, 12, 24), "fi") == "Christmas Eve"
    assert calendar.holiday_name(D(2021, 12, 25), "da") == "Juledag"


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        # across Easter 2021: Thu 1, Fri 2, Mon 5 April are holidays
        (D(2021, 3, 31), 1, D(2021, 4, 6)),
        (D(2021, 3, 30), 2, D(2021, 4, 6)),
        (D(2021, 3, 29), 10, D(2021, 4, 15)),
        (D(2021, 4, 6), -1, D(2021, 3, 31)),
        (D(2021, 4, 5), -1, D(2021, 3, 31)),
        # Ascension (Thu 13 May 2021) and Whit Monday (24 May 2021)
        (D(2021, 5, 12), 1, D(2021, 5, 14)),
        (D(2021, 5, 21), 1, D(2021, 5, 25)),
        (D(2021, 5, 25), -1, D(2021, 5, 21)),
        # Constitution Day 2020 (Friday, closed)
        (D(2020, 6, 4), 1, D(2020, 6, 8)),
        # Christmas 2020: 24 (Thu), 25 (Fri), 31 (Thu) closed; 1 Jan holiday
        (D(2020, 12, 23), 1, D(2020, 12, 28)),
        (D(2020, 12, 30), 1, D(2021, 1, 4)),
        (D(2020, 12, 21), 6, D(2021, 1, 4)),
        (D(2021, 1, 4), -2, D(2020, 12, 29)),
        # weekends
        (D(2021, 1, 8), 1, D(2021, 1, 11)),  # Friday -> Monday
        (D(2021, 1, 9), 1, D(2021, 1, 11)),  # Saturday -> Monday
        (D(2021, 1, 10), -1, D(2021, 1, 8)),  # Sunday -> Friday
        # n = 0: the day itself if a business day, else the next one
        (D(2021, 1, 8), 0, D(2021, 1, 8)),
        (D(2021, 1, 9), 0, D(2021, 1, 11)),
        (D(2021, 4, 1), 0, D(2021, 4, 6)),
    ],
)
def test_add_business_days(
    calendar: BusinessCalendar, start: dt.date, n: int, expected: dt.date
) -> None:
    assert calendar.add_business_days(start, n) == expected


@pytest.mark.parametrize(
    ("start", "n", "dk2020", "all_open"),
    [
        # Christmas with and without the optional days
        (D(2020, 12, 23), 1, D(2020, 12, 28), D(2020, 12, 24)),
        (D(2020, 12, 30), 1, D(2021, 1, 4), D(2020, 12, 31)),
        (D(2020, 12, 22), 3, D(2020, 12, 29), D(2020, 12, 28)),
        # Constitution Day 2020
        (D(2020, 6, 4), 1, D(2020, 6, 8), D(2020, 6, 5)),
    ],
)
def test_optional_days_change_the_sum(
    calendar: BusinessCalendar, start: dt.date, n: int, dk2020: dt.date, all_open: dt.date
) -> None:
    assert calendar.add_business_days(start, n) == dk2020
    assert ALL_OPEN.add_business_days(start, n) == all_open


def test_may_day_closed_when_listed() -> None:
    assert ALL_CLOSED.add_business_days(D(2020, 4, 30), 1) == D(2020, 5, 4)
    assert ALL_OPEN.add_business_days(D(2020, 4, 30), 1) == D(2020, 5, 1)


@pytest.mark.parametrize(
    ("day", "inclusive", "expected"),
    [
        (D(2021, 4, 1), True, D(2021, 4, 6)),
        (D(2021, 4, 1), False, D(2021, 4, 6)),
        (D(2021, 4, 6), True, D(2021, 4, 6)),
        (D(2021, 4, 6), False, D(2021, 4, 7)),
        (D(2020, 12, 24), True, D(2020, 12, 28)),
    ],
)
def test_next_business_day(
    calendar: BusinessCalendar, day: dt.date, inclusive: bool, expected: dt.date
) -> None:
    assert calendar.next_business_day(day, inclusive=inclusive) == expected


@pytest.mark.parametrize(
    ("a", "b", "count"),
    [
        (D(2021, 3, 31), D(2021, 4, 6), 1),
        (D(2021, 3, 31), D(2021, 3, 31), 0),
        (D(2021, 4, 6), D(2021, 3, 31), -1),
        (D(2021, 1, 4), D(2021, 1, 11), 5),
        (D(2021, 1, 11), D(2021, 1, 4), -5),
        (D(2020, 12, 18), D(2021, 1, 8), 11),  # 21-23, 28-30, 4-8 Jan
    ],
)
def test_business_days_between(
    calendar: BusinessCalendar, a: dt.date, b: dt.date, count: int
) -> None:
    assert calendar.business_days_between(a, b) == count
    if calendar.is_business_day(b):
        assert calendar.add_business_days(a, count) == b


def test_datetime_is_read_as_its_date(calendar: BusinessCalendar) -> None:
    assert calendar.is_business_day(dt.datetime(2021, 4, 1, 12, 0)) is False
    assert calendar.add_business_days(dt.datetime(2021, 3, 31, 12, 0), 1) == D(2021, 4, 6)
