"""Properties of the local-time rule and the business calendar (hypothesis)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.model import Calendar
from dk2020flow.localtime import is_local_gap, to_local, to_utc

CPH = ZoneInfo("Europe/Copenhagen")
DK2020 = BusinessCalendar(Calendar(country="DK"))
ONE_HOUR = dt.timedelta(hours=1)

local_times = st.datetimes(
    min_value=dt.datetime(2019, 1, 1), max_value=dt.datetime(2024, 12, 31, 23, 59, 59)
)
# minutes near the DST changes, so the gap and the fold are hit often
dst_days = st.sampled_from(
    [
        dt.date(2019, 3, 31), dt.date(2019, 10, 27),
        dt.date(2020, 3, 29), dt.date(2020, 10, 25),
        dt.date(2021, 3, 28), dt.date(2021, 10, 31),
        dt.date(2022, 3, 27), dt.date(2022, 10, 30),
        dt.date(2023, 3, 26), dt.date(2023, 10, 29),
        dt.date(2024, 3, 31), dt.date(2024, 10, 27),
    ]
)  # fmt: skip
near_dst = st.builds(
    lambda day, minute: dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minute),
    dst_days,
    st.integers(min_value=0, max_value=6 * 60),
)
any_local = st.one_of(local_times, near_dst)


@given(any_local)
def test_round_trip_keeps_the_wall_time_except_in_the_gap(wall: dt.datetime) -> None:
    instant = to_utc(wall, CPH)
    assert instant.utcoffset() == dt.timedelta(0)
    back = to_local(instant, CPH)
    if is_local_gap(wall, CPH):
        assert back == wall + ONE_HOUR  # moved forward by the gap (one hour in Denmark)
        assert (wall.month, wall.hour) in {(3, 2)}
    else:
        assert back == wall


@given(any_local, any_local)
def test_to_utc_is_monotonic_outside_the_gap(a: dt.datetime, b: dt.datetime) -> None:
    a, b = min(a, b), max(a, b)
    if not is_local_gap(a, CPH) and not is_local_gap(b, CPH):
        assert to_utc(a, CPH) <= to_utc(b, CPH)
    # inside the gap the rule may put a time up to one gap-length after a later wall time
    # (02:30 -> 03:30 CEST, while 03:00 stays 03:00), never more
    assert to_utc(a, CPH) <= to_utc(b, CPH) + ONE_HOUR


@given(any_local)
def test_the_fold_means_the_first_occurrence(wall: dt.datetime) -> None:
    instant = to_utc(wall, CPH)
    first = wall.replace(tzinfo=CPH, fold=0).astimezone(dt.UTC)
    second = wall.replace(tzinfo=CPH, fold=1).astimezone(dt.UTC)
    if not is_local_gap(wall, CPH):
        assert instant == min(first, second)


days = st.dates(min_value=dt.date(2019, 1, 1), max_value=dt.date(2024, 12, 31))


@settings(deadline=None)
@given(days)
def test_business_day_is_a_weekday_without_a_holiday_name(day: dt.date) -> None:
    named = DK2020.holiday_name(day) is not None
    assert DK2020.is_business_day(day) == (day.weekday() < 5 and not named)


@settings(deadline=None)
@given(days, st.integers(min_value=-60, max_value=60))
def test_business_day_arithmetic_round_trips(day: dt.date, n: int) -> None:
    target = DK2020.add_business_days(day, n)
    assert DK2020.is_business_day(target)
    if n > 0:
        assert target > day
        assert DK2020.business_days_between(day, target) == n
    elif n < 0:
        assert target < day
        assert DK2020.business_days_between(day, target) == n
    else:
        assert target == DK2020.next_business_day(day, inclusive=True)
    assert DK2020.add_business_days(day, DK2020.business_days_between(day, target)) == target
