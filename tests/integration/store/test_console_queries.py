"""The console's cases table in SQL (``ConsoleTx.case_table``), on SQLite and PostgreSQL:
each filter, each sort, the search with æøå, the count and the paging, *late* against
``Service.late_deadlines`` on the same data, and saved views and bulk runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from dk2020flow.bundled import workflow_path
from dk2020flow.clock import ManualClock
from dk2020flow.engine.records import TimerKind, TimerStatus
from dk2020flow.service.console import CaseQuery
from dk2020flow.service.core import Service
from dk2020flow.store.port import BulkItemStatus, CaseSort, CaseTableQuery
from dk2020flow.store.repository import SqlStore

from .conftest import T0, Build, decide_and_decline

NOW = T0 + dt.timedelta(days=30)
PAST = NOW - dt.timedelta(days=2)
FUTURE = NOW + dt.timedelta(days=5)

# code: (name, region) of the seeded organisations the cases below use
ODENSE, AERO, TONDER, AARHUS, SORO, HORSHOLM = "461", "492", "550", "751", "340", "223"


@pytest.fixture
def cases(store: SqlStore, build: Build) -> dict[str, int]:
    """Six cases: state, round, region and timers chosen so each filter and sort differs.

    - Odense   invited   round1  reply passed, pending         -> late
    - Ærø      invited   round2  reply due in 5 days            -> not late
    - Tønder   drafting  round2  plan passed, fired (escalated) -> late
    - Aarhus   invited   round1  reply passed at an old epoch   -> not late
    - Sorø     invited   no round  notice passed (not a deadline) -> not late
    - Hørsholm approved  round1  closed                          -> not late
    """
    arm = build.arm
    ids = {
        ODENSE: build.open(
            store, ODENSE, cohort="round1", entered_at=T0, arm=[arm("reply", due=PAST)]
        ),
        AERO: build.open(
            store,
            AERO,
            cohort="round2",
            entered_at=T0 + dt.timedelta(days=1),
            arm=[arm("reply", due=FUTURE)],
        ),
        TONDER: build.open(
            store,
            TONDER,
            state="drafting",
            cohort="round2",
            entered_at=T0 + dt.timedelta(days=2),
            arm=[
                replace(
                    arm("plan_due", due=PAST - dt.timedelta(days=1)),
                    status=TimerStatus.FIRED,
                    fired_at=PAST,
                ),
                arm("plan_due", due=NOW + dt.timedelta(days=9), kind=TimerKind.ESCALATION),
            ],
        ),
        AARHUS: build.open(
            store,
            AARHUS,
            cohort="round1",
            epoch=2,
            entered_at=T0 + dt.timedelta(days=3),
            arm=[arm("reply", due=PAST, epoch=1)],
        ),
        SORO: build.open(
            store,
            SORO,
            cohort=None,
            entered_at=T0 + dt.timedelta(days=4),
            arm=[arm("notice", due=PAST)],
        ),
        HORSHOLM: build.open(
            store,
            HORSHOLM,
            state="approved",
            cohort="round1",
            closed=True,
            entered_at=T0 + dt.timedelta(days=5),
        ),
    }
    return {name: ids[code] for code, name in _NAMES.items()}


_NAMES = {
    ODENSE: "Odense",
    AERO: "Ærø",
    TONDER: "Tønder",
    AARHUS: "Aarhus",
    SORO: "Sorø",
    HORSHOLM: "Hørsholm",
}


def query(build: Build, **changes: object) -> CaseTableQuery:
    base = CaseTableQuery(
        workflow="dk2020",
        now=NOW,
        deadline_timers=(
            (build.definition_id, "invited", "reply"),
            (build.definition_id, "drafting", "plan_due"),
        ),
        limit=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def names(store: SqlStore, q: CaseTableQuery) -> list[str]:
    with store.read() as tx:
        return [row.case.organisation_name for row in tx.case_table(q).rows]


def test_filters_by_state_round_and_region(
    store: SqlStore, build: Build, cases: dict[str, int]
) -> None:
    assert names(store, query(build, state="drafting")) == ["Tønder"]
    assert names(store, query(build, cohort="round1")) == ["Aarhus", "Hørsholm", "Odense"]
    assert names(store, query(build, region="Syddanmark")) == ["Odense", "Tønder", "Ærø"]
    assert names(store, query(build, cohort="round2", region="Syddanmark")) == ["Tønder", "Ærø"]
    assert names(store, query(build, state="screening")) == []


def test_late_and_not_late(store: SqlStore, build: Build, cases: dict[str, int]) -> None:
    assert names(store, query(build, late=True)) == ["Odense", "Tønder"]
    assert names(store, query(build, late=False)) == ["Aarhus", "Hørsholm", "Sorø", "Ærø"]
    with store.read() as tx:
        rows = {r.case.organisation_name: r for r in tx.case_table(query(build)).rows}
    assert rows["Odense"].late and rows["Tønder"].late
    assert not rows["Ærø"].late
    assert rows["Ærø"].deadline_at == FUTURE
    assert rows["Tønder"].deadline_at == PAST - dt.timedelta(days=1)  # the missed one
    assert rows["Aarhus"].deadline_at is None  # its deadline belongs to an old epoch
    assert rows["Sorø"].deadline_at is None  # "notice" is not a deadline of its state


def test_a_moved_deadline_wins_over_the_fired_one(store: SqlStore, build: Build) -> None:
    """A deadline extended after it fired: the newer arm (due later) is the one that counts."""
    build.open(
        store,
        ODENSE,
        arm=[
            replace(build.arm("reply", due=PAST), status=TimerStatus.FIRED, fired_at=PAST),
            build.arm("reply", due=FUTURE),
        ],
    )
    build.open(
        store, AERO, arm=[replace(build.arm("reply", due=PAST), status=TimerStatus.DISCARDED)]
    )
    assert names(store, query(build, late=True)) == []
    with store.read() as tx:
        rows = {r.case.organisation_name: r for r in tx.case_table(query(build)).rows}
    assert rows["Odense"].deadline_at == FUTURE
    assert rows["Ærø"].deadline_at is None


def test_no_deadline_timers_means_no_one_is_late(
    store: SqlStore, build: Build, cases: dict[str, int]
) -> None:
    assert names(store, query(build, late=True, deadline_timers=())) == []


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("ærø", ["Ærø"]),
        ("ÆRØ", ["Ærø"]),
        ("hør", ["Hørsholm"]),
        ("HØRS", ["Hørsholm"]),
        ("ø", ["Hørsholm", "Sorø", "Tønder", "Ærø"]),
        ("od", ["Odense"]),
        ("AAR", ["Aarhus"]),
        ("%", []),
        ("_", []),
    ],
)
def test_search_on_the_name_ignores_case_with_danish_letters(
    store: SqlStore, build: Build, cases: dict[str, int], search: str, expected: list[str]
) -> None:
    assert names(store, query(build, search=search)) == expected


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (CaseSort.ORGANISATION, ["Aarhus", "Hørsholm", "Odense", "Sorø", "Tønder", "Ærø"]),
        # Hovedstaden, Midtjylland, Sjælland, Syddanmark; by name within a region
        (CaseSort.REGION, ["Hørsholm", "Aarhus", "Sorø", "Odense", "Tønder", "Ærø"]),
        # round1, round2, then no round; by name within
        (CaseSort.ROUND, ["Aarhus", "Hørsholm", "Odense", "Tønder", "Ærø", "Sorø"]),
        (CaseSort.STATE, ["Hørsholm", "Tønder", "Aarhus", "Odense", "Sorø", "Ærø"]),
        (CaseSort.SINCE, ["Odense", "Ærø", "Tønder", "Aarhus", "Sorø", "Hørsholm"]),
        # earliest deadline first, cases without one last (by name)
        (CaseSort.DEADLINE, ["Tønder", "Odense", "Ærø", "Aarhus", "Hørsholm", "Sorø"]),
    ],
)
def test_each_sort_both_ways(
    store: SqlStore,
    build: Build,
    cases: dict[str, int],
    sort: CaseSort,
    expected: list[str],
) -> None:
    assert names(store, query(build, sort=sort)) == expected
    descending = names(store, query(build, sort=sort, descending=True))
    if sort in (CaseSort.ROUND, CaseSort.DEADLINE):
        # the cases without a round or deadline stay last; ties still by name
        blanks = 1 if sort is CaseSort.ROUND else 3
        assert descending[-blanks:] == expected[-blanks:]
        assert set(descending[:-blanks]) == set(expected[:-blanks])
        assert descending[0] != expected[0]
    elif sort is CaseSort.REGION:
        # regions and names reversed (the order of the region-and-name index)
        assert descending == ["Ærø", "Tønder", "Odense", "Sorø", "Aarhus", "Hørsholm"]
    elif sort is CaseSort.STATE:
        # states reversed; the cases of one state still by name
        assert descending == ["Aarhus", "Odense", "Sorø", "Ærø", "Tønder", "Hørsholm"]
    else:
        assert descending == list(reversed(expected))


def test_pages_and_the_count(store: SqlStore, build: Build, cases: dict[str, int]) -> None:
    with store.read() as tx:
        first = tx.case_table(query(build, limit=4, offset=0))
        second = tx.case_table(query(build, limit=4, offset=4))
        past = tx.case_table(query(build, limit=4, offset=8))
        late = tx.case_table(query(build, late=True, limit=1))
        ids = tx.case_table_ids(query(build, region="Syddanmark"))
    assert [r.case.organisation_name for r in first.rows] == [
        "Aarhus",
        "Hørsholm",
        "Odense",
        "Sorø",
    ]
    assert [r.case.organisation_name for r in second.rows] == ["Tønder", "Ærø"]
    assert first.total == second.total == past.total == 6
    assert past.rows == []
    assert late.total == 2 and len(late.rows) == 1
    assert ids == [cases["Odense"], cases["Tønder"], cases["Ærø"]]


def test_another_workflow_is_not_shown(
    store: SqlStore, build: Build, cases: dict[str, int]
) -> None:
    build.open(store, ODENSE, workflow="other")
    assert names(store, query(build, search="odense")) == ["Odense"]
    assert names(store, query(build, workflow="other")) == ["Odense"]


# ------------------------------------------------------------------ saved views, bulk runs


def _user(store: SqlStore, email: str) -> int:
    from sqlalchemy import insert

    from dk2020flow.store import tables as t

    with store.transaction() as tx:
        conn = tx._conn  # type: ignore[attr-defined]
        result = conn.execute(
            insert(t.users)
            .values(
                email=email,
                name=email.split("@", maxsplit=1)[0],
                kind="staff",
                roles=["secretariat"],
                organisation_code=None,
                language="da",
                active=True,
                created_at=T0,
                disabled_at=None,
                oidc_subject=None,
            )
            .returning(t.users.c.id)
        )
        return int(result.scalar_one())


def test_saved_views_own_and_shared_by_role(store: SqlStore) -> None:
    anne, bo = _user(store, "anne@example.dk"), _user(store, "bo@example.dk")
    with store.transaction() as tx:
        own = tx.save_view(name="Mine", owner_id=anne, shared_role=None, query="late=1", now=T0)
        shared = tx.save_view(
            name="Runde 2", owner_id=anne, shared_role="follow_up", query="round=round2", now=T0
        )
    with store.read() as tx:
        assert [v.name for v in tx.views_for(anne, ["secretariat"])] == ["Mine", "Runde 2"]
        assert [v.name for v in tx.views_for(bo, ["follow_up"])] == ["Runde 2"]
        assert tx.views_for(bo, ["secretariat"]) == []
        assert tx.views_for(bo, []) == []
        assert tx.saved_view(shared.id) == shared
    assert shared.owner_name == "anne" and shared.query == "round=round2"
    with store.transaction() as tx:
        assert not tx.delete_view(own.id, bo)  # not his
        assert tx.delete_view(own.id, anne)
        assert tx.saved_view(own.id) is None


def test_bulk_run_items_and_counts(store: SqlStore, build: Build, cases: dict[str, int]) -> None:
    chosen = [cases["Odense"], cases["Ærø"], cases["Tønder"]]
    with store.transaction() as tx:
        run_id = tx.create_bulk_run(
            actor="anne@example.dk",
            role="secretariat",
            trigger="withdraw",
            comment="Samlet",
            data={},
            query="round=round2",
            case_ids=chosen,
            now=T0,
        )
    with store.transaction() as tx:
        assert tx.finish_bulk_item(run_id, cases["Odense"], BulkItemStatus.DONE, "", NOW)
        assert tx.finish_bulk_item(run_id, cases["Ærø"], BulkItemStatus.REFUSED, "nej", NOW)
        assert not tx.finish_bulk_item(run_id, cases["Ærø"], BulkItemStatus.DONE, "", NOW)
    with store.read() as tx:
        run = tx.bulk_run(run_id)
        items = tx.bulk_items(run_id)
        assert tx.bulk_run(run_id + 1000) is None
    assert run is not None and run.total == 3 and run.finished_at is None
    assert run.counts == {
        BulkItemStatus.PENDING: 1,
        BulkItemStatus.DONE: 1,
        BulkItemStatus.REFUSED: 1,
        BulkItemStatus.FAILED: 0,
    }
    assert [(i.organisation_name, i.status, i.message) for i in items] == [
        ("Odense", BulkItemStatus.DONE, ""),
        ("Ærø", BulkItemStatus.REFUSED, "nej"),
        ("Tønder", BulkItemStatus.PENDING, ""),
    ]
    with store.transaction() as tx:
        tx.finish_bulk_run(run_id, NOW)
    with store.read() as tx:
        done = tx.bulk_run(run_id)
    assert done is not None and done.finished_at == NOW


# ------------------------------------------------------------------ late, as the service says

OPENED = dt.datetime(2020, 8, 3, 9, 0, tzinfo=dt.UTC)


def test_late_agrees_with_late_deadlines_on_the_dk2020_programme(db_url: str) -> None:
    """The DK2020 programme over a year: at each instant the table's late filter (SQL)
    gives exactly the cases ``Service.late_deadlines`` (``engine.timers.is_late``) does."""
    clock = ManualClock(OPENED)
    store = SqlStore(db_url)
    try:
        service = Service(store, clock=clock)
        service.load_workflow(workflow_path("dk2020"), now=OPENED)
        service.open_cases("dk2020", None, actor="setup", role="secretariat", now=OPENED)
        decided = OPENED + dt.timedelta(days=10)
        decide_and_decline(service, ("Aarhus", "Odense", "Ærø"), "Vejle", decided)
        console = service.console
        options = console.options()
        checked = 0
        for days in (0, 20, 40, 60, 120, 200, 400):
            at = OPENED + dt.timedelta(days=days)
            clock.set(at)
            if days == 60:
                service.fire_due(at)  # deadlines fire (reminders, escalations): still late
            if days == 120:
                service.extend(
                    "Aalborg",
                    "reply_deadline",
                    actor="kl",
                    role="follow_up",
                    reason="more time",
                    to=at + dt.timedelta(days=30),
                    workflow="dk2020",
                )
            expected = {d.case.id for d in service.late_deadlines(at, "dk2020")}
            late = console.all_rows(options, CaseQuery(late=True))
            not_late = console.all_rows(options, CaseQuery(late=False))
            assert {r.case.id for r in late.rows} == expected, days
            assert all(r.late for r in late.rows)
            assert not any(r.late for r in not_late.rows)
            assert late.total + not_late.total == 98
            checked += len(expected)
        assert checked > 0  # some instants have late cases: the comparison says something
    finally:
        store.close()


@pytest.mark.parametrize("sort", list(CaseSort))
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize(
    "filters",
    [{}, {"late": True}, {"late": False}, {"cohort": "round1"}, {"region": "Syddanmark"}],
    ids=["all", "late", "not-late", "round1", "syddanmark"],
)
def test_every_page_is_its_slice_of_the_whole_order(
    store: SqlStore,
    build: Build,
    cases: dict[str, int],
    sort: CaseSort,
    descending: bool,
    filters: dict[str, object],
) -> None:
    """A page (read by the kept counts: a group at a time for round, state and deadline,
    walking the names or the filter's index for a name) is the slice of the order the
    whole table has (every row, sorted in one SQL query), and its total the rows'."""
    whole = query(build, sort=sort, descending=descending, **filters)
    with store.read() as tx:
        every = [row.case.id for row in tx.case_table(whole).rows]
        for size in (1, 2, 4):
            for offset in range(0, len(every) + size, size):
                page = tx.case_table(replace(whole, limit=size, offset=offset))
                assert [row.case.id for row in page.rows] == every[offset : offset + size]
                assert page.total == len(every)
