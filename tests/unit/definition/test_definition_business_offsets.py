"""Reminders and escalations in business days (#15.8): ``before: [{business_days: 5}]``,
``escalate: {after: {business_days: 3}}``, counted on the workflow's Danish calendar.

The expected dates are worked out by hand from the Danish public holidays (Easter 2021 is
4 April: Maundy Thursday 1 April, Good Friday 2 April, Easter Monday 5 April; Ascension
Day 13 May; Whit Monday 24 May), not with the calendar code under test.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from definition_helpers import TEMPLATES

from dk2020flow.definition import DefinitionError, load_workflow_text
from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.model import BusinessDays, Calendar, Timer
from dk2020flow.definition.schema_export import workflow_schema
from dk2020flow.engine.timers import FiringKind, schedule

TZ = ZoneInfo("Europe/Copenhagen")
DANISH = BusinessCalendar(Calendar(country="DK"))
MAIL = {"template": "hello", "to": "clerk"}
R, DL, ES = FiringKind.REMINDER, FiringKind.DEADLINE, FiringKind.ESCALATION


def local(year: int, month: int, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=TZ).astimezone(dt.UTC)


def timer(**spec: Any) -> Timer:
    return Timer.model_validate({"due": {"after": "P1D"}, **spec})


def test_reminders_in_business_days_skip_weekends_and_easter() -> None:
    # Deadline Wednesday 7 April 2021 12:00. Five business days before: Tue 6 (1);
    # Mon 5 Easter Monday, Sun 4, Sat 3, Fri 2 Good Friday, Thu 1 Maundy Thursday are
    # closed; Wed 31 Mar (2), Tue 30 (3), Mon 29 (4), Fri 26 March (5), still 12:00 local
    # although summer time began on 28 March.
    spec = timer(reminders={"before": [{"business_days": 5}, "P1D"], "mail": MAIL})
    firings = schedule(spec, due_at=local(2021, 4, 7), tz=TZ, calendar=DANISH)
    assert [(f.kind, f.index, f.due_at) for f in firings] == [
        (R, 1, local(2021, 3, 26)),
        (R, 2, local(2021, 4, 6)),
        (DL, 0, local(2021, 4, 7)),
    ]
    assert firings[0].due_at == dt.datetime(2021, 3, 26, 11, 0, tzinfo=dt.UTC)  # CET


def test_an_escalation_in_business_days_skips_ascension_day() -> None:
    # Deadline Wednesday 12 May 2021 12:00; three business days late: Thu 13 Ascension Day
    # is closed, Fri 14 (1), Mon 17 (2), Tue 18 May (3).
    spec = timer(escalate={"after": {"business_days": 3}, "to": "clerk", "mail": MAIL})
    firings = schedule(spec, due_at=local(2021, 5, 12), tz=TZ, calendar=DANISH)
    assert [(f.kind, f.due_at) for f in firings] == [
        (DL, local(2021, 5, 12)),
        (ES, local(2021, 5, 18)),
    ]


def test_business_days_follow_the_workflow_s_own_closed_days() -> None:
    # The same escalation with Friday 14 May 2021 closed as well: Mon 17, Tue 18, Wed 19.
    calendar = BusinessCalendar(Calendar(country="DK", extra_closed_days=(dt.date(2021, 5, 14),)))
    spec = timer(escalate={"after": {"business_days": 3}, "to": "clerk", "mail": MAIL})
    firings = schedule(spec, due_at=local(2021, 5, 12), tz=TZ, calendar=calendar)
    assert firings[-1].due_at == local(2021, 5, 19)


def test_business_days_need_the_calendar() -> None:
    spec = timer(escalate={"after": {"business_days": 3}, "to": "clerk", "mail": MAIL})
    with pytest.raises(TypeError, match="business calendar"):
        schedule(spec, due_at=local(2021, 5, 12), tz=TZ)


WORKFLOW = """workflow: mini
version: "1"
title: Mini
roles:
  clerk: {{receives_mail: true}}
states:
  open:
    initial: true
    timers:
      reply:
        due: {{business_days: 20}}
        reminders: {{before: {before}, mail: {{template: hello, to: clerk}}}}
        escalate: {{after: {after}, to: clerk, mail: {{template: hello, to: clerk}}}}
  done: {{terminal: true}}
transitions:
  - {{trigger: finish, from: open, to: done, roles: clerk}}
"""


def load(before: str, after: str) -> Any:
    return load_workflow_text(
        WORKFLOW.format(before=before, after=after), "wf.yaml", templates=TEMPLATES
    )


def test_a_workflow_file_may_write_business_day_offsets() -> None:
    loaded = load("[{business_days: 10}, P3D]", "{business_days: 5}")
    timer_spec = loaded.workflow.states["open"].timers["reply"]
    assert timer_spec.reminders is not None and timer_spec.escalate is not None
    assert timer_spec.reminders.before[0] == BusinessDays(business_days=10)
    assert str(timer_spec.reminders.before[1]) == "P3D"
    assert str(timer_spec.escalate.after) == "5 business days"
    one = load("{business_days: 10}", "P1D").workflow.states["open"].timers["reply"]
    assert one.reminders is not None and len(one.reminders.before) == 1


@pytest.mark.parametrize(
    ("before", "after", "code", "where"),
    [
        ("[{business_days: 0}]", "P1D", "DF051", (12, 30)),
        ("[P1D]", "{business_days: -2}", "DF051", (13, 27)),
        ("[{business_dys: 3}]", "P1D", "DF010", (12, 31)),
        ("[{business_days: many}]", "P1D", "DF012", (12, 46)),
        ("[P1D]", "5", "DF013", (13, 27)),
    ],
)
def test_bad_business_day_offsets_are_located(
    before: str, after: str, code: str, where: tuple[int, int]
) -> None:
    with pytest.raises(DefinitionError) as caught:
        load(before, after)
    found = [(d.code, d.line, d.column) for d in caught.value.errors]
    assert found == [(code, *where)], [str(d) for d in caught.value.diagnostics]


def test_the_json_schema_offers_business_days_for_before_and_after() -> None:
    definitions = workflow_schema()["$defs"]
    assert "BusinessDays" in definitions
    assert definitions["BusinessDays"]["required"] == ["business_days"]
    text = str(definitions["Reminders"]["properties"]["before"])
    assert "BusinessDays" in text and "P(?!$)" in text
    assert "BusinessDays" in str(definitions["Escalate"]["properties"]["after"])


def test_schema_file_is_regenerated() -> None:
    shipped = Path(__file__).resolve().parents[3] / "src/dk2020flow/schema/workflow.schema.json"
    assert "business_days" in shipped.read_text(encoding="utf-8").split('"Escalate"')[1]
