"""The engine assumes no country (#18): a file that leaves out ``timezone`` and
``calendar`` is UTC on weekends alone; a stored text is read with the defaults it was
loaded under (``definitions.implied_defaults``, migration 0007)."""

from __future__ import annotations

import datetime as dt

import pytest

from dk2020flow.definition import DefinitionError, load_workflow_text
from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.loader import current_defaults
from dk2020flow.service.timezone import written_timezone

BARE = """\
workflow: mini
version: "1"
title: Mini
roles:
  clerk: {receives_mail: true}
states:
  open: {initial: true}
  done: {terminal: true}
transitions:
  - {trigger: finish, from: open, to: done, roles: clerk}
"""
DANISH_DEFAULTS = {"timezone": "Europe/Copenhagen", "calendar_country": "DK"}


def test_a_file_without_timezone_or_calendar_is_utc_on_weekends_only() -> None:
    workflow = load_workflow_text(BARE, "mini.yaml").workflow
    assert workflow.timezone == "UTC"
    assert workflow.calendar.country is None
    assert workflow.calendar.optional_days_closed() == ()
    calendar = BusinessCalendar(workflow.calendar)
    assert calendar.is_business_day(dt.date(2025, 12, 25))  # Christmas Day, a Thursday
    assert calendar.is_business_day(dt.date(2025, 6, 5))  # Danish Constitution Day
    assert not calendar.is_business_day(dt.date(2025, 12, 27))  # Saturday


def test_the_code_records_its_own_defaults() -> None:
    assert current_defaults() == {"timezone": "UTC", "calendar_country": None}


def test_a_stored_text_keeps_the_defaults_it_was_loaded_under() -> None:
    old = load_workflow_text(BARE, "mini.yaml", implied=DANISH_DEFAULTS).workflow
    assert old.timezone == "Europe/Copenhagen"
    assert old.calendar.country == "DK"
    assert not BusinessCalendar(old.calendar).is_business_day(dt.date(2025, 12, 24))
    # The same text read with this code's defaults (the parse cache keeps them apart).
    assert load_workflow_text(BARE, "mini.yaml").workflow.timezone == "UTC"
    assert load_workflow_text(BARE, "mini.yaml", implied=DANISH_DEFAULTS).workflow == old


def test_what_the_text_says_wins_over_the_recorded_defaults() -> None:
    text = BARE.replace(
        "roles:",
        "timezone: Europe/Brussels\ncalendar:\n  closures:\n"
        "    - {name: {en: Summer}, on: 2025-08-04}\nroles:",
        1,
    )
    workflow = load_workflow_text(text, "mini.yaml", implied=DANISH_DEFAULTS).workflow
    assert workflow.timezone == "Europe/Brussels"
    assert workflow.calendar.country == "DK"  # the calendar left its country unsaid
    assert len(workflow.calendar.closures) == 1
    belgian = text.replace("calendar:\n", "calendar:\n  country: BE\n")
    workflow = load_workflow_text(belgian, "mini.yaml", implied=DANISH_DEFAULTS).workflow
    assert workflow.calendar.country == "BE"


def _problems(text: str) -> list[tuple[str, int, str]]:
    with pytest.raises(DefinitionError) as caught:
        load_workflow_text(text, "mini.yaml")
    return [(d.code, d.line, d.message) for d in caught.value.diagnostics if d.is_error]


def test_danish_optional_days_need_the_danish_calendar() -> None:
    text = BARE.replace("roles:", "calendar:\n  closed_on: [christmas_eve]\nroles:", 1)
    assert _problems(text) == [
        (
            "DF057",
            5,
            "`closed_on` names Danish optional days, but the calendar has no country",
        )
    ]
    with_dk = text.replace("calendar:\n", "calendar:\n  country: DK\n")
    assert load_workflow_text(with_dk, "mini.yaml").workflow.calendar.closed_on


def test_a_subdivision_needs_a_country() -> None:
    text = BARE.replace("roles:", "calendar:\n  subdivision: BY\nroles:", 1)
    assert _problems(text) == [
        ("DF056", 5, "a calendar without a country has no subdivisions"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BARE + "timezone: Europe/Copenhagen\n", "Europe/Copenhagen"),
        (BARE + 'timezone: "America/New_York"  # the office\n', "America/New_York"),
        (BARE + "timezone: 'Etc/GMT+5'\n", "Etc/GMT+5"),
        (BARE, None),  # unsaid: the recorded default applies
        (BARE + "timezone: &zone Europe/Oslo\n", None),  # an anchor: parsed in full
        ('{workflow: mini, timezone: "Europe/Oslo"}\n', None),  # a flow document
        (BARE + "timezone: UTC\n'timezone': UTC\n", None),  # not one plain line
    ],
)
def test_the_light_scan_reads_only_a_plain_timezone_line(text: str, expected: str | None) -> None:
    assert written_timezone(text) == expected


def test_one_id_and_text_read_under_other_defaults_compile_apart() -> None:
    """Two databases of one process may hold the same text under the same id and hash,
    recorded under other defaults: the process-wide compiled cache must not hand one
    database the other's timezone (it was keyed by id and hash alone)."""
    from dk2020flow.engine.machine import compiled

    danish = load_workflow_text(BARE, "mini.yaml", implied=DANISH_DEFAULTS).workflow
    neutral = load_workflow_text(BARE, "mini.yaml").workflow
    first = compiled(danish, 987_654, "same-hash", {})
    second = compiled(neutral, 987_654, "same-hash", {})
    assert first.workflow.timezone == "Europe/Copenhagen"
    assert second.workflow.timezone == "UTC"
    assert second.workflow.calendar.country is None
