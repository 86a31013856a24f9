"""Local times to UTC, and the due time of a timer."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.durations import parse_duration
from dk2020flow.definition.model import Cohort, Due
from dk2020flow.engine.timers import (
    DueUnavailable,
    add_duration,
    compute_due,
)
from dk2020flow.errors import Dk2020flowError
from dk2020flow.localtime import is_local_fold, is_local_gap, to_local, to_utc

UTC = dt.UTC
L = dt.datetime


def U(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


ROUND1 = Cohort.model_validate(
    {
        "title": "Runde 1",
        "application_deadline": "2020-10-21T23:59",
        "start": "2020-11-26",
        "planned_end": "2022-04-30",
    }
)
ENTERED = U(2021, 1, 6, 9, 15)  # Wednesday 10:15 CET


# ----------------------------------------------------------------------------- to_utc


@pytest.mark.parametrize(
    ("wall", "expected", "gap", "fold"),
    [
        # the reply deadline: "31 August 2020 23:59" (CEST)
        (L(2020, 8, 31, 23, 59), U(2020, 8, 31, 21, 59), False, False),
        (L(2020, 12, 31, 23, 59), U(2020, 12, 31, 22, 59), False, False),
        # spring forward 2020-03-29 and 2021-03-28: 02:00-03:00 does not exist
        (L(2020, 3, 29, 1, 59), U(2020, 3, 29, 0, 59), False, False),
        (L(2020, 3, 29, 2, 0), U(2020, 3, 29, 1, 0), True, False),
        (L(2020, 3, 29, 2, 30), U(2020, 3, 29, 1, 30), True, False),
        (L(2020, 3, 29, 3, 0), U(2020, 3, 29, 1, 0), False, False),
        (L(2021, 3, 28, 2, 30), U(2021, 3, 28, 1, 30), True, False),  # = 03:30 CEST
        (L(2021, 3, 28, 2, 59), U(2021, 3, 28, 1, 59), True, False),
        (L(2021, 3, 28, 3, 30), U(2021, 3, 28, 1, 30), False, False),
        # fall back 2020-10-25 and 2021-10-31: 02:00-03:00 happens twice; the first counts
        (L(2020, 10, 25, 1, 59), U(2020, 10, 24, 23, 59), False, False),
        (L(2020, 10, 25, 2, 0), U(2020, 10, 25, 0, 0), False, True),
        (L(2020, 10, 25, 2, 30), U(2020, 10, 25, 0, 30), False, True),
        (L(2020, 10, 25, 3, 0), U(2020, 10, 25, 2, 0), False, False),
        (L(2021, 10, 31, 2, 30), U(2021, 10, 31, 0, 30), False, True),  # CEST, first
        (L(2021, 10, 31, 2, 30, fold=1), U(2021, 10, 31, 0, 30), False, True),  # fold ignored
    ],
)
def test_to_utc_dst_rule(
    tz: ZoneInfo, wall: dt.datetime, expected: dt.datetime, gap: bool, fold: bool
) -> None:
    result = to_utc(wall, tz)
    assert result == expected
    assert result.tzinfo is UTC
    assert is_local_gap(wall, tz) is gap
    assert is_local_fold(wall, tz) is fold


def test_gap_moves_forward_by_the_gap(tz: ZoneInfo) -> None:
    assert to_local(to_utc(L(2021, 3, 28, 2, 30), tz), tz) == L(2021, 3, 28, 3, 30)


def test_to_utc_refuses_aware(tz: ZoneInfo) -> None:
    with pytest.raises(ValueError, match="without an offset"):
        to_utc(U(2020, 1, 1), tz)


def test_to_local_refuses_naive(tz: ZoneInfo) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_local(L(2020, 1, 1), tz)


# ----------------------------------------------------------------------------- add_duration


@pytest.mark.parametrize(
    ("start", "duration", "times", "expected"),
    [
        # calendar months: month ends
        (U(2021, 1, 31, 11), "P1M", 1, U(2021, 2, 28, 11)),
        (U(2020, 1, 31, 11), "P1M", 1, U(2020, 2, 29, 11)),
        (U(2021, 3, 31, 10), "P1M", -1, U(2021, 2, 28, 11)),  # 12:00 local both sides
        # leap day
        (U(2020, 2, 29, 11), "P1Y", 1, U(2021, 2, 28, 11)),
        (U(2020, 2, 29, 11), "P12M", 1, U(2021, 2, 28, 11)),
        (U(2020, 2, 29, 11), "P4Y", 1, U(2024, 2, 29, 11)),
        # days keep the local time of day across DST; hours are exact
        (U(2021, 3, 27, 11), "P1D", 1, U(2021, 3, 28, 10)),  # 12:00 CET -> 12:00 CEST
        (U(2021, 3, 27, 11), "PT24H", 1, U(2021, 3, 28, 11)),  # = 13:00 CEST
        (U(2021, 10, 30, 10), "P1D", 1, U(2021, 10, 31, 11)),
        (U(2020, 8, 31, 21, 59), "PT8H", 1, U(2020, 9, 1, 5, 59)),
        (U(2021, 1, 31, 11), "P1M", 3, U(2021, 4, 30, 10)),  # no drift, 12:00 local
    ],
)
def test_add_duration(
    tz: ZoneInfo, start: dt.datetime, duration: str, times: int, expected: dt.datetime
) -> None:
    assert add_duration(start, parse_duration(duration), tz, times=times) == expected


def test_exact_hours_keep_the_second_fold_occurrence(tz: ZoneInfo) -> None:
    second = U(2021, 10, 31, 1, 30)  # 02:30 CET, the second 02:30
    assert add_duration(second, parse_duration("PT1H"), tz) == U(2021, 10, 31, 2, 30)


# ----------------------------------------------------------------------------- compute_due


def due(**spec: Any) -> Due:
    return Due.model_validate(spec)


@pytest.mark.parametrize(
    ("spec", "fields", "expected"),
    [
        # absolute
        ({"at": "2020-08-31T23:59"}, {}, U(2020, 8, 31, 21, 59)),
        ({"at": "2020-08-31"}, {}, U(2020, 8, 31, 21, 59)),  # a date alone: 23:59 local
        ({"at": "2020-12-31"}, {}, U(2020, 12, 31, 22, 59)),
        ({"at": "2020-08-31", "time": "12:00"}, {}, U(2020, 8, 31, 10, 0)),
        ({"at": "2021-05-03T09:00"}, {}, U(2021, 5, 3, 7, 0)),
        ({"at": "2021-03-28T02:30"}, {}, U(2021, 3, 28, 1, 30)),  # gap: 03:30 CEST
        ({"at": "2021-10-31T02:30"}, {}, U(2021, 10, 31, 0, 30)),  # fold: first
        ({"at": "2020-03-29T02:30"}, {}, U(2020, 3, 29, 1, 30)),
        ({"at": "2020-10-25T02:30"}, {}, U(2020, 10, 25, 0, 30)),
        # cohort-relative: round 1 starts 2020-11-26 (00:00 local)
        ({"cohort_date": "start"}, {}, U(2020, 11, 25, 23, 0)),
        ({"cohort_date": "start", "time": "09:00"}, {}, U(2020, 11, 26, 8, 0)),
        ({"cohort_date": "start", "after": "P18M", "time": "23:59"}, {}, U(2022, 5, 26, 21, 59)),
        ({"cohort_date": "start", "after": "P12M", "time": "23:59"}, {}, U(2021, 11, 26, 22, 59)),
        ({"cohort_date": "application_deadline"}, {}, U(2020, 10, 21, 21, 59)),
        ({"cohort_date": "start", "business_days": 1}, {}, U(2020, 11, 26, 23, 0)),
        # field-relative: a date (00:00 local) or a date-time
        (
            {"field": "decision_date", "after": "P14D"},
            {"decision_date": dt.date(2021, 3, 20)},
            U(2021, 4, 2, 22, 0),
        ),
        (
            {"field": "decision_date", "after": "P1M", "time": "12:00"},
            {"decision_date": dt.date(2021, 1, 31)},
            U(2021, 2, 28, 11, 0),
        ),
        (
            {"field": "decision_date", "business_days": 1, "time": "16:00"},
            {"decision_date": dt.date(2021, 3, 31)},
            U(2021, 4, 6, 14, 0),
        ),
        (
            {"field": "meeting_at", "after": "P1D"},
            {"meeting_at": U(2021, 3, 27, 11, 0)},
            U(2021, 3, 28, 10, 0),
        ),
        (
            {"field": "meeting_at", "after": "P1D"},
            {"meeting_at": L(2021, 3, 27, 12, 0)},
            U(2021, 3, 28, 10, 0),
        ),
        # entry-relative: entered Wednesday 2021-01-06 10:15 CET
        ({"after": "P6W", "time": "12:00"}, {}, U(2021, 2, 17, 11, 0)),
        ({"after": "P9M", "time": "10:00"}, {}, U(2021, 10, 6, 8, 0)),
        ({"after": "P8W", "time": "23:59"}, {}, U(2021, 3, 3, 22, 59)),
        ({"after": "PT2H"}, {}, U(2021, 1, 6, 11, 15)),
        ({"business_days": 10, "time": "16:00"}, {}, U(2021, 1, 20, 15, 0)),
        ({"business_days": 10}, {}, U(2021, 1, 20, 9, 15)),  # keeps 10:15 local
        ({"business_days": -1}, {}, U(2021, 1, 5, 9, 15)),
    ],
)
def test_compute_due(
    tz: ZoneInfo,
    calendar: BusinessCalendar,
    spec: dict[str, Any],
    fields: dict[str, dt.date | dt.datetime | None],
    expected: dt.datetime,
) -> None:
    result = compute_due(
        due(**spec), tz=tz, calendar=calendar, entered_at=ENTERED, cohort=ROUND1, fields=fields
    )
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("entered", "spec", "expected"),
    [
        # ten business days over Easter 2021, entered on Maundy Thursday evening
        (U(2021, 4, 1, 18, 0), {"business_days": 10, "time": "16:00"}, U(2021, 4, 19, 14, 0)),
        # entered Wednesday 31 March: Thu, Fri and Mon are holidays
        (U(2021, 3, 31, 8, 0), {"business_days": 1}, U(2021, 4, 6, 8, 0)),
        # twenty business days across Christmas 2020 (24, 25, 31 Dec and 1 Jan closed)
        (U(2020, 12, 14, 9, 0), {"business_days": 20, "time": "16:00"}, U(2021, 1, 15, 15, 0)),
        # six weeks after entry, over the spring DST change: same local time of day
        (U(2021, 3, 1, 11, 0), {"after": "P6W"}, U(2021, 4, 12, 10, 0)),
        # entered in the second 02:30 of the autumn fold: an exact offset keeps it
        (U(2021, 10, 31, 1, 30), {"after": "PT30M"}, U(2021, 10, 31, 2, 0)),
        # a day after a time that lands in the gap moves forward by the gap
        (U(2021, 3, 27, 1, 30), {"after": "P1D"}, U(2021, 3, 28, 1, 30)),
    ],
)
def test_compute_due_relative_to_entry(
    tz: ZoneInfo,
    calendar: BusinessCalendar,
    entered: dt.datetime,
    spec: dict[str, Any],
    expected: dt.datetime,
) -> None:
    result = compute_due(
        due(**spec), tz=tz, calendar=calendar, entered_at=entered, cohort=None, fields={}
    )
    assert result == expected


@pytest.mark.parametrize(
    ("spec", "cohort", "fields", "message"),
    [
        ({"cohort_date": "start", "after": "P18M"}, None, {}, "no cohort"),
        ({"field": "decision_date", "after": "P14D"}, ROUND1, {}, "'decision_date'"),
        ({"field": "decision_date"}, ROUND1, {"decision_date": None}, "empty"),
    ],
)
def test_missing_anchor(
    tz: ZoneInfo,
    calendar: BusinessCalendar,
    spec: dict[str, Any],
    cohort: Cohort | None,
    fields: dict[str, dt.date | None],
    message: str,
) -> None:
    with pytest.raises(DueUnavailable, match=message) as caught:
        compute_due(
            due(**spec), tz=tz, calendar=calendar, entered_at=ENTERED, cohort=cohort, fields=fields
        )
    assert message.strip("'") in caught.value.reason
    assert isinstance(caught.value, Dk2020flowError)  # the CLI shows it as one line


def test_compute_due_refuses_naive_entry(tz: ZoneInfo, calendar: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="entered_at must be timezone-aware"):
        compute_due(
            due(after="P1D"),
            tz=tz,
            calendar=calendar,
            entered_at=L(2021, 1, 1),
            cohort=None,
            fields={},
        )
