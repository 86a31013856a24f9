"""`roll`: a deadline that falls on a weekend or holiday moves to a business day."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.model import Cohort, Due
from dk2020flow.engine.timers import compute_due

ROUND1 = Cohort(
    title="Runde 1",
    application_deadline=dt.date(2020, 10, 21),
    start=dt.date(2020, 11, 26),
    planned_end=dt.date(2022, 4, 30),
)


@pytest.mark.parametrize(
    ("due", "local"),
    [
        # 18 months after 26 November 2020 is Ascension Day 2022: the Friday after.
        ({"cohort_date": "start", "after": "P18M", "time": "23:59"}, "2022-05-26T23:59"),
        (
            {"cohort_date": "start", "after": "P18M", "time": "23:59", "roll": "next_business_day"},
            "2022-05-27T23:59",
        ),
        (
            {
                "cohort_date": "start",
                "after": "P18M",
                "time": "23:59",
                "roll": "previous_business_day",
            },
            "2022-05-25T23:59",
        ),
        # A Saturday moves to Monday; Easter Monday 2021 to the Tuesday.
        ({"at": "2021-01-16T10:00", "roll": "next_business_day"}, "2021-01-18T10:00"),
        ({"at": "2021-04-05T10:00", "roll": "next_business_day"}, "2021-04-06T10:00"),
        # A business day stays put.
        ({"at": "2021-04-07T10:00", "roll": "next_business_day"}, "2021-04-07T10:00"),
    ],
)
def test_roll(due: dict[str, str], local: str, tz: ZoneInfo, calendar: BusinessCalendar) -> None:
    instant = compute_due(
        Due.model_validate(due),
        tz=tz,
        calendar=calendar,
        entered_at=dt.datetime(2020, 12, 1, tzinfo=dt.UTC),
        cohort=ROUND1,
        fields={},
    )
    assert instant.astimezone(tz).replace(tzinfo=None) == dt.datetime.fromisoformat(local)
