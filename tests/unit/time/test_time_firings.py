"""Firings of a timer, missed-firing policies, office hours and programme events."""

from __future__ import annotations

import datetime as dt
from dataclasses import FrozenInstanceError
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dk2020flow.clock import parse_instant
from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.model import CalendarEvent, Missed, OfficeHours, Timer
from dk2020flow.engine.timers import (
    SUPERSEDED,
    Firing,
    FiringKind,
    MissedResolution,
    drop_past_reminders,
    event_instants,
    event_reminders,
    next_office_opening,
    resolve_missed,
    schedule,
    split_past_reminders,
)

UTC = dt.UTC
R, DL, RP, ES = FiringKind.REMINDER, FiringKind.DEADLINE, FiringKind.REPEAT, FiringKind.ESCALATION
MAIL = {"template": "t", "to": "mayor"}


def U(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def timer(**spec: Any) -> Timer:
    return Timer.model_validate({"due": {"after": "P1D"}, **spec})


# The DK2020 reply deadline (workflows/dk2020.yaml, state invited)
REPLY = timer(
    due={"at": "2020-08-31T23:59"},
    reminders={"before": ["P14D", "P3D"], "mail": MAIL},
    repeat={"every": "P14D", "times": 2, "mail": MAIL},
    escalate={"after": "PT8H", "to": "follow_up", "mail": MAIL},
    missed={"policy": "latest_once"},
)
REPLY_DUE = U(2020, 8, 31, 21, 59)


def test_schedule_the_reply_deadline(tz: ZoneInfo) -> None:
    assert [(f.kind, f.index, f.due_at) for f in schedule(REPLY, due_at=REPLY_DUE, tz=tz)] == [
        (R, 1, U(2020, 8, 17, 21, 59)),
        (R, 2, U(2020, 8, 28, 21, 59)),
        (DL, 0, U(2020, 8, 31, 21, 59)),
        (ES, 0, U(2020, 9, 1, 5, 59)),  # 07:59 local
        (RP, 1, U(2020, 9, 14, 21, 59)),
        (RP, 2, U(2020, 9, 28, 21, 59)),
    ]


@pytest.mark.parametrize(
    ("due_at", "before", "expected"),
    [
        # P14D before Easter Monday 2021 09:00 CEST is 22 March 09:00 CET
        (U(2021, 4, 5, 7, 0), "P14D", U(2021, 3, 22, 8, 0)),
        # ... and back across the autumn change: 09:00 CET <- 09:00 CEST
        (U(2021, 11, 8, 8, 0), "P14D", U(2021, 10, 25, 7, 0)),
        # a month before 31 March is 28 February
        (U(2021, 3, 31, 21, 59), "P1M", U(2021, 2, 28, 22, 59)),
        # hours are exact: 2 h before 03:30 CEST on the spring-forward night is 00:30 CET
        (U(2021, 3, 28, 1, 30), "PT2H", U(2021, 3, 27, 23, 30)),
    ],
)
def test_reminders_keep_local_time_across_dst(
    tz: ZoneInfo, due_at: dt.datetime, before: str, expected: dt.datetime
) -> None:
    firings = schedule(timer(reminders={"before": [before], "mail": MAIL}), due_at=due_at, tz=tz)
    assert firings[0] == Firing(kind=R, index=1, due_at=expected)
    assert firings[1] == Firing(kind=DL, index=0, due_at=due_at)


def test_monthly_repeats_do_not_drift(tz: ZoneInfo) -> None:
    firings = schedule(
        timer(repeat={"every": "P1M", "times": 4, "mail": MAIL}),
        due_at=U(2021, 1, 31, 22, 59),  # 31 Jan 23:59 CET
        tz=tz,
    )
    assert [f.due_at for f in firings if f.kind is RP] == [
        U(2021, 2, 28, 22, 59),
        U(2021, 3, 31, 21, 59),  # 23:59 CEST
        U(2021, 4, 30, 21, 59),
        U(2021, 5, 31, 21, 59),
    ]
    assert [f.index for f in firings if f.kind is RP] == [1, 2, 3, 4]


def test_plan_due_round1(tz: ZoneInfo) -> None:
    """drafting.plan_due: 18 months after 2020-11-26, 23:59; reminders P1M and P14D."""
    plan = timer(
        due={"cohort_date": "start", "after": "P18M", "time": "23:59"},
        reminders={"before": ["P1M", "P14D"], "mail": MAIL},
        escalate={"after": "P1M", "to": "follow_up", "mail": MAIL},
    )
    firings = schedule(plan, due_at=U(2022, 5, 26, 21, 59), tz=tz)
    assert [(f.key, f.due_at) for f in firings] == [
        ("reminder.1", U(2022, 4, 26, 21, 59)),
        ("reminder.2", U(2022, 5, 12, 21, 59)),
        ("deadline.0", U(2022, 5, 26, 21, 59)),
        ("escalation.0", U(2022, 6, 26, 21, 59)),
    ]


def test_ties_keep_reminder_deadline_repeat_escalation_order(tz: ZoneInfo) -> None:
    odd = timer(
        reminders={"before": ["PT0S"], "mail": MAIL},
        escalate={"after": "PT0S", "to": "follow_up", "mail": MAIL},
    )
    assert [f.kind for f in schedule(odd, due_at=U(2021, 1, 1), tz=tz)] == [R, DL, ES]


def test_firing_is_frozen_and_aware() -> None:
    firing = Firing(kind=DL, index=0, due_at=U(2021, 1, 1))
    with pytest.raises(FrozenInstanceError):
        firing.index = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="timezone-aware"):
        Firing(kind=DL, index=0, due_at=dt.datetime(2021, 1, 1))
    with pytest.raises(TypeError):
        Firing(DL, 0, U(2021, 1, 1))  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("armed_at", "kept"),
    [
        (
            U(2020, 8, 1),
            ["reminder.1", "reminder.2", "deadline.0", "escalation.0", "repeat.1", "repeat.2"],
        ),
        # a case opened on 20 August: the 14-day reminder (17 Aug) is past
        (U(2020, 8, 20), ["reminder.2", "deadline.0", "escalation.0", "repeat.1", "repeat.2"]),
        # exactly at a reminder's instant: kept
        (
            U(2020, 8, 28, 21, 59),
            ["reminder.2", "deadline.0", "escalation.0", "repeat.1", "repeat.2"],
        ),
        # armed after the deadline: no reminders, but the deadline and the rest stay
        (U(2020, 9, 2), ["deadline.0", "escalation.0", "repeat.1", "repeat.2"]),
    ],
)
def test_drop_past_reminders(tz: ZoneInfo, armed_at: dt.datetime, kept: list[str]) -> None:
    firings = schedule(REPLY, due_at=REPLY_DUE, tz=tz)
    assert [f.key for f in drop_past_reminders(firings, armed_at)] == kept
    kept_f, dropped = split_past_reminders(firings, armed_at)
    assert sorted(kept_f + dropped, key=lambda f: f.due_at) == firings
    assert all(f.kind is R for f in dropped)


# ----------------------------------------------------------------------------- missed


NOW = U(2020, 10, 1, 8, 0)


def reply_due_by(now: dt.datetime, tz: ZoneInfo) -> list[tuple[Firing, dt.datetime]]:
    return [(f, f.due_at) for f in schedule(REPLY, due_at=REPLY_DUE, tz=tz) if f.due_at <= now]


def keys(items: Any) -> list[str]:
    return [item.key for item in items]


@pytest.mark.parametrize(
    ("missed", "cap", "fire", "skip", "defer"),
    [
        (
            {"policy": "fire_all"},
            10,
            ["reminder.1", "reminder.2", "deadline.0", "escalation.0", "repeat.1", "repeat.2"],
            [],
            [],
        ),
        (
            {"policy": "fire_all"},
            2,
            ["reminder.1", "reminder.2"],
            [],
            ["deadline.0", "escalation.0", "repeat.1", "repeat.2"],
        ),
        (
            {"policy": "fire_all"},
            1,
            ["reminder.1"],
            [],
            ["reminder.2", "deadline.0", "escalation.0", "repeat.1", "repeat.2"],
        ),
        (
            {"policy": "latest_once"},
            10,
            ["reminder.2", "deadline.0", "escalation.0", "repeat.2"],
            ["reminder.1", "repeat.1"],
            [],
        ),
        (
            {"policy": "latest_once"},
            3,
            ["reminder.2", "deadline.0", "escalation.0"],
            ["reminder.1", "repeat.1"],
            ["repeat.2"],
        ),
        # now = 1 Oct 08:00; window P14D: cut-off 17 Sep 08:00
        (
            {"policy": "skip_older_than", "window": "P14D"},
            10,
            ["repeat.2"],
            ["reminder.1", "reminder.2", "deadline.0", "escalation.0", "repeat.1"],
            [],
        ),
        (
            {"policy": "skip_older_than", "window": "P31D"},
            10,
            ["deadline.0", "escalation.0", "repeat.1", "repeat.2"],
            ["reminder.1", "reminder.2"],
            [],
        ),
        (
            {"policy": "skip_older_than", "window": "P31D"},
            1,
            ["deadline.0"],
            ["reminder.1", "reminder.2"],
            ["escalation.0", "repeat.1", "repeat.2"],
        ),
    ],
)
def test_missed_policies(
    tz: ZoneInfo,
    missed: dict[str, str],
    cap: int,
    fire: list[str],
    skip: list[str],
    defer: list[str],
) -> None:
    due = reply_due_by(NOW, tz)
    result = resolve_missed(due, now=NOW, policy=Missed.model_validate(missed), burst_cap=cap)
    assert keys(result.fire) == fire
    assert [key.key for key, _ in result.skip] == skip
    assert keys(result.defer) == defer
    # nothing is dropped silently: every firing is in exactly one list
    assert sorted(keys(result.fire) + skip + keys(result.defer)) == sorted(keys(f for f, _ in due))
    assert all(reason for _, reason in result.skip)


def test_missed_reasons(tz: ZoneInfo) -> None:
    due = reply_due_by(NOW, tz)
    latest = resolve_missed(due, now=NOW, policy=Missed(), burst_cap=10)
    assert latest.skip == ()
    latest = resolve_missed(
        due, now=NOW, policy=Missed.model_validate({"policy": "latest_once"}), burst_cap=10
    )
    assert {reason for _, reason in latest.skip} == {SUPERSEDED}
    assert SUPERSEDED == "superseded by a later firing (policy latest_once)"
    window = resolve_missed(
        due,
        now=NOW,
        policy=Missed.model_validate({"policy": "skip_older_than", "window": "P31D"}),
        burst_cap=10,
    )
    assert window.skip[0][1] == "44 days late, more than P31D (policy skip_older_than)"


def test_skip_older_than_boundary_fires() -> None:
    firing = Firing(kind=DL, index=0, due_at=U(2021, 1, 1, 8, 0))
    policy = Missed.model_validate({"policy": "skip_older_than", "window": "PT1H"})
    at_edge = resolve_missed(
        [(firing, firing.due_at)], now=U(2021, 1, 1, 9, 0), policy=policy, burst_cap=5
    )
    assert at_edge.fire == (firing,)
    past_edge = resolve_missed(
        [(firing, firing.due_at)], now=U(2021, 1, 1, 9, 1), policy=policy, burst_cap=5
    )
    assert past_edge.fire == ()
    assert past_edge.skip == ((firing, "1 h 1 min late, more than PT1H (policy skip_older_than)"),)


def test_burst_defers_then_drains(tz: ZoneInfo) -> None:
    """The deferred firings come back on the next tick; over a few ticks all fire once."""
    due = reply_due_by(NOW, tz)
    fired: list[str] = []
    pending = due
    for _ in range(10):
        result = resolve_missed(pending, now=NOW, policy=Missed(), burst_cap=4)
        fired += keys(result.fire)
        pending = [(f, f.due_at) for f in result.defer]
        if not pending:
            break
    assert fired == keys(f for f, _ in due)


def test_resolve_missed_sorts_its_input_and_checks_it(tz: ZoneInfo) -> None:
    due = list(reversed(reply_due_by(NOW, tz)))
    result = resolve_missed(due, now=NOW, policy=Missed(), burst_cap=10)
    assert keys(result.fire) == keys(sorted((f for f, _ in due), key=lambda f: f.due_at))
    with pytest.raises(ValueError, match="after now"):
        resolve_missed(due, now=U(2020, 9, 1), policy=Missed(), burst_cap=10)
    with pytest.raises(ValueError, match="burst_cap"):
        resolve_missed(due, now=NOW, policy=Missed(), burst_cap=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        resolve_missed(due, now=dt.datetime(2020, 10, 1), policy=Missed(), burst_cap=1)


def test_resolve_missed_nothing_due() -> None:
    result: MissedResolution[Firing] = resolve_missed([], now=NOW, policy=Missed(), burst_cap=1)
    assert (result.fire, result.skip, result.defer) == ((), (), ())


# ----------------------------------------------------------------------------- office hours


OFFICE = OfficeHours()  # business days 08:00-17:00


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # Wednesday 2021-01-06 10:00 CET: open
        (U(2021, 1, 6, 9, 0), U(2021, 1, 6, 9, 0)),
        # exactly 08:00 is open, exactly 17:00 is closed
        (U(2021, 1, 6, 7, 0), U(2021, 1, 6, 7, 0)),
        (U(2021, 1, 6, 16, 0), U(2021, 1, 7, 7, 0)),
        # early morning -> 08:00 the same day
        (U(2021, 1, 6, 5, 0), U(2021, 1, 6, 7, 0)),
        # Friday 17:30 -> Monday 08:00
        (U(2021, 1, 8, 16, 30), U(2021, 1, 11, 7, 0)),
        # Saturday -> Monday
        (U(2021, 1, 9, 12, 0), U(2021, 1, 11, 7, 0)),
        # Maundy Thursday 2021 (holiday) -> Tuesday after Easter, 08:00 CEST
        (U(2021, 4, 1, 10, 0), U(2021, 4, 6, 6, 0)),
        # Wednesday evening before Easter -> Tuesday 6 April
        (U(2021, 3, 31, 18, 0), U(2021, 4, 6, 6, 0)),
        # Christmas Eve 2020 (closed in DK2020) -> Monday 28 December
        (U(2020, 12, 24, 9, 0), U(2020, 12, 28, 7, 0)),
        # Friday evening before the spring change -> Monday 08:00 CEST
        (U(2021, 3, 26, 17, 0), U(2021, 3, 29, 6, 0)),
        # Saturday before the autumn change -> Monday 08:00 CET
        (U(2021, 10, 30, 10, 0), U(2021, 11, 1, 7, 0)),
    ],
)
def test_next_office_opening(
    tz: ZoneInfo, calendar: BusinessCalendar, instant: dt.datetime, expected: dt.datetime
) -> None:
    assert next_office_opening(instant, OFFICE, calendar, tz) == expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (U(2021, 1, 9, 12, 0), U(2021, 1, 9, 12, 0)),  # Saturday noon: open every day
        (U(2021, 1, 9, 17, 0), U(2021, 1, 10, 7, 0)),  # Saturday 18:00 -> Sunday 08:00
        (U(2021, 4, 1, 10, 0), U(2021, 4, 1, 10, 0)),  # holidays are open too
    ],
)
def test_next_office_opening_every_day(
    tz: ZoneInfo, calendar: BusinessCalendar, instant: dt.datetime, expected: dt.datetime
) -> None:
    office = OfficeHours(days="every_day")
    assert next_office_opening(instant, office, calendar, tz) == expected


def test_next_office_opening_accepts_any_offset(tz: ZoneInfo, calendar: BusinessCalendar) -> None:
    friday_evening = dt.datetime(2021, 1, 8, 17, 30, tzinfo=tz)
    result = next_office_opening(friday_evening, OFFICE, calendar, tz)
    assert result == U(2021, 1, 11, 7, 0)
    assert result.tzinfo is UTC


# ----------------------------------------------------------------------------- events


def test_event_instants_and_reminders(tz: ZoneInfo) -> None:
    """Round 1 workshop 2 (10 June 2021 09:30, PT6H, reminders P14D and P2D)."""
    event = CalendarEvent.model_validate(
        {
            "title": "Workshop 2",
            "at": "2021-06-10T09:30",
            "duration": "PT6H",
            "states": ["guidance"],
            "mail": MAIL,
            "reminders": ["P2D", "P14D"],
        }
    )
    assert event_instants(event, tz) == (U(2021, 6, 10, 7, 30), U(2021, 6, 10, 13, 30))
    assert event_reminders(event, tz) == [
        Firing(kind=R, index=2, due_at=U(2021, 5, 27, 7, 30)),
        Firing(kind=R, index=1, due_at=U(2021, 6, 8, 7, 30)),
    ]


def test_event_over_the_autumn_change(tz: ZoneInfo) -> None:
    event = CalendarEvent.model_validate(
        {
            "title": "Night event",
            "at": "2021-10-31T01:00",
            "duration": "PT3H",
            "states": ["guidance"],
            "mail": MAIL,
            "reminders": ["P7D"],
        }
    )
    starts_at, ends_at = event_instants(event, tz)
    assert starts_at == U(2021, 10, 30, 23, 0)
    assert ends_at - starts_at == dt.timedelta(hours=3)  # three real hours, 03:00 CET local
    assert event_reminders(event, tz)[0].due_at == U(2021, 10, 23, 23, 0)  # 01:00 CEST


@pytest.mark.parametrize(
    ("now_text", "due_keys"),
    [
        # the "done when" of issue 4: the two-week reminders are due on 19 August ...
        ("2020-08-19T12:00+02:00", ["reminder.1"]),
        # ... and on 1 September at 10:00 the escalation (07:59 local) is due too
        ("2020-09-01T10:00+02:00", ["reminder.1", "reminder.2", "deadline.0", "escalation.0"]),
        ("2020-09-01T07:58", ["reminder.1", "reminder.2", "deadline.0"]),
    ],
)
def test_reply_deadline_due_at_cli_instants(
    tz: ZoneInfo, now_text: str, due_keys: list[str]
) -> None:
    now = parse_instant(now_text, "Europe/Copenhagen")
    firings = drop_past_reminders(schedule(REPLY, due_at=REPLY_DUE, tz=tz), U(2020, 8, 1))
    assert [f.key for f in firings if f.due_at <= now] == due_keys


def test_a_window_month_counts_thirty_days() -> None:
    firing = Firing(kind=DL, index=0, due_at=U(2021, 1, 1))
    policy = Missed.model_validate({"policy": "skip_older_than", "window": "P1M"})
    kept = resolve_missed([(firing, firing.due_at)], now=U(2021, 1, 31), policy=policy, burst_cap=1)
    assert kept.fire == (firing,)
    late = resolve_missed(
        [(firing, firing.due_at)], now=U(2021, 1, 31, 0, 1), policy=policy, burst_cap=1
    )
    assert late.fire == ()
    assert len(late.skip) == 1
