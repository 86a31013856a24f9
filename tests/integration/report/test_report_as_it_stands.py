"""The report as it stands (``report`` without ``--at``) reads the kept counts, the late
cases' deadlines, the screenings and the moves counted per month in the database instead
of replaying every case's log (issue 17: 173 s and 2.5 GB at a million cases). It must
give the very report the replay gives at the same instant: a simulated DK2020 and EU
Mission programme, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.report.model import _kept_facts, build_report
from dk2020flow.service import Service
from dk2020flow.simulate import run_simulation
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
PROGRAMMES = {
    # workflow: (start, end) of the simulated programme
    "dk2020": (dt.date(2020, 6, 1), dt.date(2022, 6, 30)),
    "eu_mission": (dt.date(2021, 11, 1), dt.date(2023, 12, 31)),
}
AFTER = dt.datetime(2024, 1, 15, 9, tzinfo=dt.UTC)
"""The report's instant: after every simulated event."""


def _simulate(workflow: str, db_url: str, mail: Path) -> None:
    start, end = PROGRAMMES[workflow]
    run_simulation(
        ROOT / "workflows" / f"{workflow}.yaml",
        start=start,
        end=end,
        behaviour=ROOT / "workflows" / "behaviour" / f"{workflow}.yaml",
        db_url=db_url,
        out_dir=mail,
    )


@pytest.mark.parametrize("workflow", sorted(PROGRAMMES))
def test_the_report_as_it_stands_is_the_replayed_report(
    workflow: str, empty_db_url: str, tmp_path: Path
) -> None:
    _simulate(workflow, empty_db_url, tmp_path / "mail")
    store = SqlStore(empty_db_url)
    try:
        with store.read() as tx:
            assert not tx.report_changed_after(workflow, AFTER)
            assert _kept_facts(tx, workflow, AFTER, []) is not None  # the path under test is taken
            replayed = build_report(tx, workflow=workflow, at=AFTER)
        as_it_stands = Service(store, clock=ManualClock(AFTER)).report(workflow=workflow)
    finally:
        store.close()

    # What the simulated programme holds, so that equal reports compare something.
    assert replayed.cases >= 10
    assert replayed.over_time.months and len(replayed.states) > 5
    assert sum(replayed.mail.values()) > 10
    if workflow == "dk2020":
        assert replayed.screened_cases > 0 and replayed.overdue
    for field in dataclasses.fields(replayed):
        assert getattr(as_it_stands, field.name) == getattr(replayed, field.name), field.name


def test_a_report_at_an_instant_before_the_newest_change_is_replayed(
    empty_db_url: str, tmp_path: Path
) -> None:
    """A clock behind the store (a test's, a simulation's) cannot read the kept counts:
    they are the present. The report replays the logs up to the clock instead."""
    _simulate("eu_mission", empty_db_url, tmp_path / "mail")
    earlier = dt.datetime(2022, 6, 1, tzinfo=dt.UTC)
    store = SqlStore(empty_db_url)
    try:
        with store.read() as tx:
            assert tx.report_changed_after("eu_mission", earlier)
            replayed = build_report(tx, workflow="eu_mission", at=earlier)
            now = build_report(tx, workflow="eu_mission", at=AFTER)
        report = Service(store, clock=ManualClock(earlier)).report(workflow="eu_mission")
    finally:
        store.close()
    assert report == replayed
    assert report.by_state != now.by_state


def test_two_programmes_in_one_database_are_reported_apart(
    empty_db_url: str, tmp_path: Path
) -> None:
    """With another workflow's cases beside them, a workflow's moves and mail are told
    apart by their cases (the queries that skip that join when there is one workflow);
    and a replay in chunks of cases adds up to the report of one chunk."""
    for workflow in PROGRAMMES:
        _simulate(workflow, empty_db_url, tmp_path / workflow)
    store = SqlStore(empty_db_url)
    try:
        with store.read() as tx:
            assert set(tx.report_case_totals()) == set(PROGRAMMES)
            for workflow in PROGRAMMES:
                replayed = build_report(tx, workflow=workflow, at=AFTER)
                as_it_stands = build_report(tx, workflow=workflow, at=AFTER, replay=False)
                assert _kept_facts(tx, workflow, AFTER, []) is not None
                assert as_it_stands == replayed, workflow
                # The replay holds a chunk of cases at a time: chunks of 7 cases (the two
                # programmes' cases interleave by id) add up to the same report.
                assert build_report(tx, workflow=workflow, at=AFTER, chunk_size=7) == replayed
                earlier = dt.datetime(2021, 12, 31, tzinfo=dt.UTC)
                assert build_report(tx, workflow=workflow, at=earlier, chunk_size=7) == (
                    build_report(tx, workflow=workflow, at=earlier)
                )
    finally:
        store.close()


def test_a_change_a_minute_after_the_clock_is_the_present(
    empty_db_url: str, tmp_path: Path
) -> None:
    """A daemon's event committed as the report starts, or a clock a little ahead of this
    machine's, must not send a large programme's report to a replay: changes up to
    ``report.model.PRESENT_SLACK`` after the clock count as the present."""
    _simulate("eu_mission", empty_db_url, tmp_path / "mail")
    cities = tmp_path / "cities.csv"
    cities.write_text(
        "code,name,kind,country,region\nBE-NEW,Newtown,city,BE,Belgium\n", encoding="utf-8"
    )
    opened = dt.datetime(2024, 2, 1, 12, tzinfo=dt.UTC)  # after every simulated change
    store = SqlStore(empty_db_url)
    try:
        service = Service(store, clock=ManualClock(opened))
        service.import_participants(cities)
        service.open_case("eu_mission", "Newtown", actor="secretariat", role=None, now=opened)
        a_minute_before = Service(store, clock=ManualClock(opened - dt.timedelta(minutes=1)))
        report = a_minute_before.report(workflow="eu_mission")
        with store.read() as tx:
            present = build_report(tx, workflow="eu_mission", at=opened)
    finally:
        store.close()
    assert report.at == opened - dt.timedelta(minutes=1)
    assert report.cases == present.cases  # Newtown is in it: the present, not a replay
    assert report.by_state == present.by_state
