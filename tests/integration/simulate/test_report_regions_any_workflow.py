"""The report's region table for a workflow without DK2020's states (#18): the EU Mission's
cities that expressed no interest or were not selected are where the table says, and every
case of a region is in a column of its row, against the cases' states read from the store."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.report import Report, render_html, to_csv
from dk2020flow.report.text import render_table
from dk2020flow.service import Service
from dk2020flow.simulate import run_simulation
from dk2020flow.store.port import CaseFilter, CaseSnapshot
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
END = dt.date(2023, 12, 31)
BEFORE_JOINING = ["invited", "no_expression", "eoi_submitted", "not_selected", "selected"]
"""EU Mission's states before a city takes a submission window (confirm_participation),
in the workflow's order."""


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Report, SqlStore]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('eu-regions') / 'eu_mission.db'}"
    done = run_simulation(
        ROOT / "workflows" / "eu_mission.yaml",
        start=dt.date(2021, 11, 1),
        end=END,
        behaviour=ROOT / "workflows" / "behaviour" / "eu_mission.yaml",
        db_url=url,
    )
    assert done.problems == []
    store = SqlStore(url)
    clock = ManualClock(dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC))
    try:
        yield Service(store, clock=clock).report(workflow="eu_mission", at=END), store
    finally:
        store.close()


def _cases(store: SqlStore) -> list[CaseSnapshot]:
    with store.read() as tx:
        return tx.cases(CaseFilter(workflow="eu_mission"))


def test_the_columns_are_the_workflows_own_states(simulated: tuple[Report, SqlStore]) -> None:
    report, _ = simulated
    assert report.region_states == [*BEFORE_JOINING, "withdrawn"]
    assert report.completed_states == []  # the label is a state on the way, not an end


def test_every_case_of_a_region_is_in_its_row(simulated: tuple[Report, SqlStore]) -> None:
    report, store = simulated
    cases = _cases(store)
    by_region: dict[str, list[CaseSnapshot]] = {}
    for case in cases:
        by_region.setdefault(case.region, []).append(case)
    rows = {row.region: row for row in report.regions}
    assert set(rows) == set(by_region)
    for region, members in by_region.items():
        row = rows[region]
        states = Counter(c.state for c in members)
        assert row.cases == len(members)
        assert row.by_state == {s: states[s] for s in report.region_states}, region
        joined = Counter(c.cohort for c in members if c.cohort and c.state not in BEFORE_JOINING)
        assert row.by_round == {c: joined[c] for c in ("spring_2023", "autumn_2023")}, region
        in_a_column = sum(row.by_round.values()) + sum(row.by_state[s] for s in BEFORE_JOINING)
        assert in_a_column == len(members), region
    # The simulated programme has cities that never joined: they are counted, not lost.
    assert (
        sum(r.by_state["no_expression"] + r.by_state["not_selected"] for r in rows.values())
        == (sum(1 for c in cases if c.state in {"no_expression", "not_selected"}))
        > 0
    )


def test_the_table_csv_and_html_show_the_state_titles(simulated: tuple[Report, SqlStore]) -> None:
    report, _ = simulated
    from rich.console import Console

    console = Console(width=400, record=True)
    console.print(render_table(report))
    table = console.export_text()
    header = next(line for line in table.splitlines() if "region" in line and "cases" in line)
    for title in ("Not selected", "No expression of interest", "Left the Mission"):
        assert title in header, header
    for word in ("declined", "undecided"):
        assert word not in header
    assert ",not_selected," in to_csv(report)
    html = render_html(report)
    assert '<th class="n">Not selected</th>' in html
    assert "KL promised" not in html and "council" not in html
