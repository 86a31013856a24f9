"""The behaviour profile: parsing, checks against the workflow, and the seeded draws."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.loader import load_workflow
from dk2020flow.simulate import draws
from dk2020flow.simulate.profile import (
    BehaviourError,
    Count,
    Delay,
    Window,
    check_against,
    default_behaviour,
    parse_behaviour,
)

ROOT = Path(__file__).resolve().parents[3]
TZ = ZoneInfo("Europe/Copenhagen")


def test_the_default_profile_fits_the_dk2020_workflow() -> None:
    behaviour = default_behaviour()
    workflow = load_workflow(ROOT / "workflows" / "dk2020.yaml", check_templates=False).workflow
    check_against(behaviour, workflow, source="default")
    assert behaviour.workflow == "dk2020"
    assert {"invited", "screening", "approval"} <= set(behaviour.states)
    assert behaviour.states["approval"].each, "C40 approval and adoption are independent"


def test_a_bad_value_is_reported_with_file_line_and_path() -> None:
    text = "profile: p\nworkflow: dk2020\nstates:\n  invited:\n    choose:\n      - trigger: x\n        role: council\n        probability: 2\n        after: {days: 1}\n"
    with pytest.raises(BehaviourError) as caught:
        parse_behaviour(text, "p.yaml")
    message = str(caught.value)
    assert "p.yaml:8:" in message
    assert "probability" in message


def test_an_action_needs_exactly_one_of_after_and_at() -> None:
    text = "profile: p\nworkflow: w\nstates:\n  s:\n    choose:\n      - {trigger: t, role: r}\n"
    with pytest.raises(BehaviourError, match="exactly one of `after`"):
        parse_behaviour(text, "p.yaml")


def test_json_profiles_are_read_too() -> None:
    behaviour = parse_behaviour('{"profile": "j", "workflow": "w"}', "p.json")
    assert behaviour.profile == "j"


def test_a_profile_naming_what_the_workflow_lacks_is_refused() -> None:
    workflow = load_workflow(ROOT / "workflows" / "dk2020.yaml", check_templates=False).workflow
    text = """
profile: p
workflow: dk2020
states:
  invited:
    choose:
      - {trigger: submit_plan, role: contact_person, after: {days: 1}}
      - {trigger: decide_decline, role: approver, after: {days: 1}, data: {colour: red}}
  nowhere:
    choose: []
"""
    with pytest.raises(BehaviourError) as caught:
        check_against(parse_behaviour(text, "p.yaml"), workflow, source="p.yaml")
    message = str(caught.value)
    assert "'submit_plan' is not valid from 'invited'" in message
    assert "role 'approver' may not fire 'decide_decline'" in message
    assert "'colour' is not a field" in message
    assert "states.nowhere" in message


def test_the_same_key_gives_the_same_draws() -> None:
    first = [draws.case_rng(7, "751").random() for _ in range(3)]
    again = [draws.case_rng(7, "751").random() for _ in range(3)]
    other = [draws.case_rng(8, "751").random() for _ in range(3)]
    assert first == again
    assert first != other


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Høje-Taastrup", "hoeje-taastrup"), ("Ærø", "aeroe"), ("Lyngby-Taarbæk", "lyngby-taarbaek")],
)
def test_slug(name: str, expected: str) -> None:
    assert draws.slug(name) == expected


def test_delays_stay_within_their_bounds() -> None:
    rng = draws.case_rng(0, "x")
    uniform = Delay(distribution="uniform", min=-5, max=5)
    capped = Delay(distribution="lognormal", median=10, sigma=2, max=30)
    for _ in range(200):
        assert -5 <= draws.days(uniform, rng) <= 5
        assert 0 < draws.days(capped, rng) <= 30


def test_windows_and_counts_stay_within_their_bounds() -> None:
    rng = draws.case_rng(0, "y")
    window = Window(
        between=(dt.date(2020, 8, 10), dt.date(2020, 8, 31)),
        distribution="triangular",
        mode=dt.date(2020, 8, 27),
    )
    geometric = Count(distribution="geometric", p=0.4, min=1, max=3)
    days = {draws.window_day(window, rng) for _ in range(300)}
    counts = {draws.count(geometric, rng) for _ in range(300)}
    assert min(days) >= dt.date(2020, 8, 10)
    assert max(days) <= dt.date(2020, 8, 31)
    assert counts == {1, 2, 3}


def test_actions_fall_on_business_days_in_office_hours() -> None:
    rng = draws.case_rng(0, "z")
    calendar = BusinessCalendar()
    saturday = dt.datetime(2020, 8, 29, 20, 0, tzinfo=TZ)
    for _ in range(50):
        local = draws.office_instant(saturday, rng, calendar, TZ).astimezone(TZ)
        assert local.date() == dt.date(2020, 8, 31)
        assert dt.time(9, 0) <= local.time() < dt.time(16, 0)


def test_data_templates_and_choices() -> None:
    rng = draws.case_rng(0, "d")
    values = draws.data_values(
        {"mail": "klima@{slug}.dk", "hours": {"choice": [20]}, "signed": True, "odd": "{nope}"},
        {"slug": "aarhus"},
        rng,
    )
    assert values == {"mail": "klima@aarhus.dk", "hours": 20, "signed": True, "odd": "{nope}"}


def test_a_profile_of_0x_names_municipalities_and_is_read_as_organisations() -> None:
    from dk2020flow.simulate.profile import OpenRule

    legacy = OpenRule.model_validate({"municipalities": ["Glostrup"], "skip": True})
    assert legacy.organisations == ("Glostrup",)
    assert OpenRule.model_validate({"organisations": ["BE-LEU"]}).organisations == ("BE-LEU",)


def test_the_shipped_profile_is_a_file_beside_the_workflow() -> None:
    from dk2020flow.simulate.profile import default_profile_path

    path = default_profile_path()
    assert path.parent.name == "behaviour" and path.name == "dk2020.yaml"
    assert default_behaviour().workflow == "dk2020"
