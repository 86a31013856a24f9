"""Clocks and --now parsing."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from dk2020flow.clock import Clock, FixedClock, ManualClock, SystemClock, parse_instant

UTC = dt.UTC
CPH = "Europe/Copenhagen"


def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None
    assert now.utcoffset() == dt.timedelta(0)
    assert isinstance(SystemClock(), Clock)


def test_fixed_clock_normalises_to_utc() -> None:
    clock = FixedClock(dt.datetime(2020, 8, 19, 12, 0, tzinfo=ZoneInfo(CPH)))
    assert clock.now() == dt.datetime(2020, 8, 19, 10, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
    assert clock.now() == clock.now()
    assert isinstance(clock, Clock)


def test_manual_clock_advances_and_sets() -> None:
    clock = ManualClock(dt.datetime(2021, 3, 27, 23, 0, tzinfo=UTC))
    assert isinstance(clock, Clock)
    assert clock.advance(dt.timedelta(hours=3)) == dt.datetime(2021, 3, 28, 2, 0, tzinfo=UTC)
    assert clock.now() == dt.datetime(2021, 3, 28, 2, 0, tzinfo=UTC)
    clock.advance(dt.timedelta(0))
    assert clock.now() == dt.datetime(2021, 3, 28, 2, 0, tzinfo=UTC)
    assert clock.set(dt.datetime(2020, 1, 1, 1, 0, tzinfo=ZoneInfo(CPH))) == dt.datetime(
        2020, 1, 1, 0, 0, tzinfo=UTC
    )
    assert clock.now() == dt.datetime(2020, 1, 1, 0, 0, tzinfo=UTC)


def test_manual_clock_refuses_going_backwards_by_advance() -> None:
    clock = ManualClock(dt.datetime(2021, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="non-negative"):
        clock.advance(dt.timedelta(seconds=-1))
    assert clock.now() == dt.datetime(2021, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "make",
    [
        FixedClock,
        ManualClock,
        lambda naive: ManualClock(dt.datetime(2020, 1, 1, tzinfo=UTC)).set(naive),
    ],
    ids=["fixed", "manual", "manual.set"],
)
def test_clocks_refuse_naive_datetimes(make: object) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make(dt.datetime(2020, 8, 19, 12, 0))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-08-19T12:00+02:00", dt.datetime(2020, 8, 19, 10, 0, tzinfo=UTC)),
        ("2020-09-01T10:00+02:00", dt.datetime(2020, 9, 1, 8, 0, tzinfo=UTC)),
        ("2020-08-19T10:00Z", dt.datetime(2020, 8, 19, 10, 0, tzinfo=UTC)),
        ("2020-08-19T10:00:30.5Z", dt.datetime(2020, 8, 19, 10, 0, 30, 500000, tzinfo=UTC)),
        ("  2020-08-19T10:00Z ", dt.datetime(2020, 8, 19, 10, 0, tzinfo=UTC)),
        # local time without an offset: the workflow's timezone (CEST in summer)
        ("2020-08-19T12:00", dt.datetime(2020, 8, 19, 10, 0, tzinfo=UTC)),
        ("2020-08-19 12:00", dt.datetime(2020, 8, 19, 10, 0, tzinfo=UTC)),
        ("2020-12-01T12:00", dt.datetime(2020, 12, 1, 11, 0, tzinfo=UTC)),
        # a plain date: local midnight
        ("2020-08-19", dt.datetime(2020, 8, 18, 22, 0, tzinfo=UTC)),
        ("2021-01-04", dt.datetime(2021, 1, 3, 23, 0, tzinfo=UTC)),
        # the DST rule: gap moves forward, fold means the first occurrence
        ("2021-03-28T02:30", dt.datetime(2021, 3, 28, 1, 30, tzinfo=UTC)),
        ("2021-10-31T02:30", dt.datetime(2021, 10, 31, 0, 30, tzinfo=UTC)),
        # ... and an explicit offset picks the second occurrence
        ("2021-10-31T02:30+01:00", dt.datetime(2021, 10, 31, 1, 30, tzinfo=UTC)),
    ],
)
def test_parse_instant(text: str, expected: dt.datetime) -> None:
    parsed = parse_instant(text, CPH)
    assert parsed == expected
    assert parsed.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "19-08-2020", "2020-13-01", "2020-02-30", "2020-08-19T25:00", "12:00"],
)
def test_parse_instant_refuses_with_the_expected_format(text: str) -> None:
    with pytest.raises(ValueError, match=r"2020-08-19T12:00\+02:00"):
        parse_instant(text, CPH)


def test_parse_instant_refuses_unknown_timezone() -> None:
    with pytest.raises(ValueError, match="unknown timezone 'Europe/Kobenhavn'") as caught:
        parse_instant("2020-08-19T12:00", "Europe/Kobenhavn")
    assert str(caught.value).endswith(
        "; use an IANA name such as Europe/Brussels or America/Toronto"
    )
