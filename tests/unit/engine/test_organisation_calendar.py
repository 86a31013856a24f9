"""A timer marked `calendar: organisation` counts the business days of the case's
organisation (its country's and subdivision's public holidays); every other timer, and an
organisation with no country, counts the programme's (docs/workflow-format.md#calendars).
Pure engine: no database, no clock."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest
from ruamel.yaml import YAML

from dk2020flow.definition.calendar import organisation_calendar
from dk2020flow.definition.model import Timer, Workflow
from dk2020flow.engine import decide
from dk2020flow.engine.decide import Actor
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import TimerArm, TimerKind

BERLIN = ZoneInfo("Europe/Berlin")
OPENED = dt.datetime(2025, 6, 16, 9, 0, tzinfo=BERLIN)  # Monday; Corpus Christi is Thursday 19 June
OFFICE = Actor(name="office", role="office")

WORKFLOW = """
workflow: calendars
version: "1"
title: Calendars
timezone: Europe/Berlin
languages: [en]
calendar:
  country: DE
  subdivision: BE             # Berlin: no Corpus Christi
  closures:
    - {name: Office outing, on: 2025-06-20}
roles:
  office: {title: Office}
states:
  waiting:
    initial: true
    timers:
      theirs:
        due: {business_days: 5, time: "16:00"}
        calendar: organisation
        escalate:
          after: {business_days: 1}
          to: office
          mail: {template: note, to: office}
      ours:
        due: {business_days: 5, time: "16:00"}
      their_day:
        due: {at: 2025-06-19T12:00, roll: next_business_day}
        calendar: organisation
  done:
    terminal: true
transitions:
  - {trigger: finish, from: waiting, to: done, roles: [office]}
"""


def _workflow(text: str = WORKFLOW) -> Workflow:
    return Workflow.model_validate(YAML(typ="safe").load(text))


@pytest.fixture(scope="module")
def wf() -> CompiledWorkflow:
    return CompiledWorkflow(_workflow(), 1, "hash", {})


def _arms(wf: CompiledWorkflow, country: str, subdivision: str = "") -> dict[str, TimerArm]:
    organisation = decide.Organisation(
        code="X", name="X", region="", country=country, subdivision=subdivision
    )
    decision = decide.open_case(wf, organisation=organisation, actor=OFFICE, now=OPENED)
    return {f"{a.timer}.{a.kind.value}": a for a in decision.arm}


def _local(arm: TimerArm) -> dt.datetime:
    return arm.due_at.astimezone(BERLIN).replace(tzinfo=None)


def test_the_organisations_timer_counts_its_own_holidays(wf: CompiledWorkflow) -> None:
    """München (BY) closes on Corpus Christi, Thursday 19 June 2025: five of its business
    days after Monday 16 June end on Tuesday 24 June, its escalation one later, and its
    meeting on the 19th rolls to Friday. A Berlin city works on both the 19th and the
    programme's outing day (the 20th): its five days end on Monday 23 June. The programme
    (Berlin, with its outing) ends on Tuesday 24 June for both cities."""
    munich = _arms(wf, "DE", "BY")
    assert _local(munich["theirs.deadline"]) == dt.datetime(2025, 6, 24, 16, 0)
    assert _local(munich["theirs.escalation"]) == dt.datetime(2025, 6, 25, 16, 0)
    assert _local(munich["their_day.deadline"]) == dt.datetime(2025, 6, 20, 12, 0)
    berlin = _arms(wf, "DE", "BE")
    assert _local(berlin["theirs.deadline"]) == dt.datetime(2025, 6, 23, 16, 0)
    assert _local(berlin["their_day.deadline"]) == dt.datetime(2025, 6, 19, 12, 0)
    assert _local(berlin["theirs.escalation"]) == dt.datetime(2025, 6, 24, 16, 0)
    # The programme's timer is the same for both: Berlin's holidays and the outing.
    assert munich["ours.deadline"].due_at == berlin["ours.deadline"].due_at
    assert _local(berlin["ours.deadline"]) == dt.datetime(2025, 6, 24, 16, 0)


@pytest.mark.parametrize(
    ("country", "subdivision"),
    [("", ""), ("XX", ""), ("DE", "NOWHERE")],
    ids=["no country", "unknown country", "unknown subdivision"],
)
def test_without_a_known_country_the_programmes_calendar_counts(
    wf: CompiledWorkflow, country: str, subdivision: str
) -> None:
    arms = _arms(wf, country, subdivision)
    assert arms["theirs.deadline"].due_at == arms["ours.deadline"].due_at
    assert _local(arms["theirs.deadline"]) == dt.datetime(2025, 6, 24, 16, 0)
    assert _local(arms["theirs.escalation"]) == dt.datetime(2025, 6, 25, 16, 0)
    assert _local(arms["their_day.deadline"]) == dt.datetime(2025, 6, 19, 12, 0)


def test_a_snapshot_from_the_store_carries_the_country(wf: CompiledWorkflow) -> None:
    """The engine reads the country off the case, so a case loaded later (a transition,
    a migration, a moved deadline) counts on the same calendar as when it was opened."""
    organisation = decide.Organisation(
        code="X", name="X", region="", country="DE", subdivision="BY"
    )
    case = decide.open_case(wf, organisation=organisation, actor=OFFICE, now=OPENED).case
    assert (case.country, case.subdivision) == ("DE", "BY")
    spec = wf.workflow.states["waiting"].timers["theirs"]
    assert wf.calendar_for(spec, case) is organisation_calendar("DE", "BY")
    assert wf.calendar_for(wf.workflow.states["waiting"].timers["ours"], case) is wf.calendar


def test_organisation_calendars_are_shared_and_hold_public_holidays_only() -> None:
    assert organisation_calendar("DE", "BY") is organisation_calendar("DE", "BY")
    assert organisation_calendar("de", "BY") is not None
    danish = organisation_calendar("DK")
    assert danish is not None
    # Denmark's optional days (Constitution Day, Christmas Eve) close a programme's Danish
    # calendar by default, never an organisation's; its public holidays do.
    assert danish.is_business_day(dt.date(2025, 6, 5))
    assert danish.is_business_day(dt.date(2025, 12, 24))
    assert not danish.is_business_day(dt.date(2025, 12, 25))
    assert organisation_calendar("") is None


def test_a_timers_calendar_is_programme_by_default_and_nothing_else() -> None:
    due: dict[str, Any] = {"due": {"business_days": 3}}
    assert Timer.model_validate(due).calendar == "programme"
    assert Timer.model_validate({**due, "calendar": "organisation"}).calendar == "organisation"
    with pytest.raises(pydantic.ValidationError, match="'programme' or 'organisation'"):
        Timer.model_validate({**due, "calendar": "city"})


def test_reminders_in_business_days_follow_the_timers_calendar() -> None:
    """Two business days before a deadline of Tuesday 24 June: for München Friday 20 June
    (the programme's outing is not its closure), for the programme (Berlin) Thursday 19
    June (the outing skipped)."""
    text = WORKFLOW.replace(
        """      ours:
        due: {business_days: 5, time: "16:00"}
""",
        """      ours:
        due: {at: 2025-06-24T16:00}
        reminders:
          before: [{business_days: 2}]
          mail: {template: note, to: office}
      theirs_fixed:
        due: {at: 2025-06-24T16:00}
        calendar: organisation
        reminders:
          before: [{business_days: 2}]
          mail: {template: note, to: office}
""",
    )
    wf = CompiledWorkflow(_workflow(text), 2, "hash2", {})
    arms = _arms(wf, "DE", "BY")
    reminder = {name: arm for name, arm in arms.items() if arm.kind is TimerKind.REMINDER}
    assert _local(reminder["theirs_fixed.reminder"]) == dt.datetime(2025, 6, 20, 16, 0)
    assert _local(reminder["ours.reminder"]) == dt.datetime(2025, 6, 19, 16, 0)
