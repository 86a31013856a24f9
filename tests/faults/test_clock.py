"""Clock faults: four months of downtime, then a wall clock that jumps back a day.

Three cases of the ``downtime`` workflow, each with three timers on the same plan (a deadline a
day after opening, then a repeat every week, 20 times) and one missed-firing policy each:
``fire_all``, ``latest_once``, ``skip_older_than: P30D``. The daemon first runs 120 days after
the cases opened (`scheduler run --once --now …`, the burst cap at 4); by then the deadline and
17 repeats of each timer are due."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore

from .conftest import DATA, T0, Cli, open_cases, read_conn, table_counts

DOWNTIME = DATA / "workflows" / "downtime.yaml"
CASES = 3
BURST_CAP = 4
BACK = T0 + dt.timedelta(days=120)
DUE = 18  # the deadline (day 1) and repeats 1-17 (days 8 … 120)
FIRED = {"every_one": 18, "latest": 2, "recent": 5}
"""latest_once: the deadline (the latest of its kind) and repeat #17; skip_older_than P30D:
repeats #13-#17 (due 92 … 120 days after opening); the rest are skipped, in the log."""


def _events(store: SqlStore) -> list[tuple[int, str, str]]:
    e = t.events.c
    with read_conn(store) as conn:
        rows = conn.execute(select(e.case_id, e.kind, e.trigger).order_by(e.id)).all()
    return [(int(c), str(k), str(tr)) for c, k, tr in rows]


def _timer_state(store: SqlStore) -> list[tuple[int, str, str]]:
    tm = t.timers.c
    with read_conn(store) as conn:
        rows = conn.execute(select(tm.id, tm.status, tm.note).order_by(tm.id)).all()
    return [(int(i), str(s), str(n)) for i, s, n in rows]


@pytest.fixture
def cli(sqlite_url: str, tmp_path: Path) -> Cli:
    return Cli(
        tmp_path,
        DK2020FLOW_DATABASE_URL=sqlite_url,
        DK2020FLOW_MAIL_FOLDER=str(tmp_path / "mail"),
        DK2020FLOW_BURST_CAP=str(BURST_CAP),
    )


def test_months_of_downtime_follow_each_policy_with_the_burst_cap(
    sqlite_url: str, cli: Cli
) -> None:
    assert open_cases(sqlite_url, DOWNTIME, CASES) == CASES
    run = cli("scheduler", "run", "--once", "--now", BACK.isoformat(), "--log-format", "json")
    log = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]

    store = SqlStore(sqlite_url)
    try:
        events = _events(store)
    finally:
        store.close()
    fired: Counter[tuple[int, str]] = Counter()
    skipped: Counter[tuple[int, str]] = Counter()
    for case_id, kind, trigger in events:
        timer = trigger.split(":")[0]
        if kind == "timer":
            fired[case_id, timer] += 1
        elif kind == "firing_skipped":
            skipped[case_id, timer] += 1
    cases = sorted({case_id for case_id, _, _ in events})
    assert len(cases) == CASES
    for case_id in cases:
        for timer, count in FIRED.items():
            assert fired[case_id, timer] == count, (case_id, timer)
            # Nothing dropped silently: every due firing either fired or is in the log.
            assert fired[case_id, timer] + skipped[case_id, timer] == DUE, (case_id, timer)

    # The burst cap: at most BURST_CAP firings of one timer of one case per batch, the rest
    # deferred to the next batch of the same run, not dropped.
    batches = [r for r in log if r["action"] == "fired"]
    assert any(int(r["deferred"]) > 0 for r in batches), batches
    assert len(batches) >= -(-FIRED["every_one"] // BURST_CAP)
    assert all(int(r["fired"]) <= BURST_CAP * len(FIRED) * CASES for r in batches)
    tick = next(r for r in log if r["action"] == "tick")
    assert tick["fired"] == sum(FIRED.values()) * CASES
    assert tick["skipped"] == (DUE * len(FIRED) - sum(FIRED.values())) * CASES

    # The skipped firings are in the case's own log, with the reason.
    history = json.loads(cli("case", "history", f"#{cases[0]}", "--json").stdout)
    reasons = [e["comment"] for e in history if e["kind"] == "firing_skipped"]
    assert len(reasons) == DUE * len(FIRED) - sum(FIRED.values())
    assert any("latest_once" in r for r in reasons), reasons
    assert any("late" in r for r in reasons), reasons


def test_a_clock_that_jumps_back_refires_nothing(sqlite_url: str, cli: Cli) -> None:
    open_cases(sqlite_url, DOWNTIME, CASES)
    first = T0 + dt.timedelta(days=30)
    cli("scheduler", "run", "--once", "--now", first.isoformat())
    store = SqlStore(sqlite_url)
    try:
        before = (table_counts(store), _events(store), _timer_state(store))
        assert before[0]["events"] > CASES  # something fired at T
        # The wall clock is set back a day, then comes back to T: nothing fires again.
        for instant in (first - dt.timedelta(days=1), first):
            cli("scheduler", "run", "--once", "--now", instant.isoformat())
            assert (table_counts(store), _events(store), _timer_state(store)) == before
    finally:
        store.close()
