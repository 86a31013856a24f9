"""The benchmark workload: the bench workflow, and N open cases with one timer each.

Setup writes cases, their first event and their timers with plain bulk SQL (the
schema's own tables), so that 100k cases take seconds, not the time of 100k
``open_case`` calls. The rows are those ``open_case`` writes for the bench
workflow (a case in ``waiting`` at epoch 1, its ``opened`` event, its timer).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence

from common import BENCH_DIR
from sqlalchemy import func, insert, select

from dk2020flow.clock import ManualClock
from dk2020flow.service import Service
from dk2020flow.store import db
from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore

BENCH_WORKFLOW = BENCH_DIR / "workflows" / "bench.yaml"
SPEC_WORKFLOW = "bench"
TIMER = "expire"
OPENED_AT = dt.datetime(2024, 1, 1, 8, 0, tzinfo=dt.UTC)
"""The programme time at which every bench case was opened."""
DUE_AT = OPENED_AT + dt.timedelta(hours=1)
"""When the timers of a dispatch run fall due (the bench workflow's ``after: PT1H``)."""
FIRE_AT = OPENED_AT + dt.timedelta(hours=2)
"""The ``now`` of a dispatch run: every timer is due, none was missed by much."""
FAR_FUTURE = OPENED_AT + dt.timedelta(days=365)
CHUNK = 5000


def organisation_code(n: int) -> str:
    """A code that never clashes with a real one (``B-000042``): as many as wanted."""
    return f"B-{n:06d}"


def organisation_row(n: int, region: str) -> dict[str, object]:
    """Organisation ``n``'s row, every column given (a raw insert has no defaults)."""
    return {
        "code": organisation_code(n),
        "name": f"Bench {n:06d}",
        "kind": "bench",
        "country": "",
        "subdivision": "",
        "region": region,
        "group": "bench",
        "language": "da",
        "titles": {},
    }


def _chunks(rows: Sequence[dict[str, object]]) -> Iterator[Sequence[dict[str, object]]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


def prepare(
    url: str,
    n_cases: int,
    *,
    due_at: Callable[[int], dt.datetime] | None = None,
    extra_timers: Callable[[int], dt.datetime] | None = None,
) -> int:
    """A migrated database with the bench workflow and ``n_cases`` cases in ``waiting``,
    each with its pending ``expire`` timer (due ``due_at(i)``, default ``DUE_AT``).
    Returns the definition id."""
    db.upgrade(url)
    store = SqlStore(url)
    try:
        service = Service(store, clock=ManualClock(OPENED_AT))
        stored, _ = service.load_workflow(BENCH_WORKFLOW)
        due = due_at or (lambda _i: DUE_AT)
        engine = store.engine
        with engine.begin() as conn:
            organisations = [organisation_row(i, "Hovedstaden") for i in range(n_cases)]
            for chunk in _chunks(organisations):
                conn.execute(insert(t.organisations), chunk)
            cases = [
                {
                    "workflow": SPEC_WORKFLOW,
                    "definition_id": stored.id,
                    "organisation_code": organisation_code(i),
                    "state": "waiting",
                    "epoch": 1,
                    "cohort": None,
                    "data": {},
                    "checklists": {},
                    "entered_at": OPENED_AT,
                    "opened_at": OPENED_AT,
                    "closed": False,
                    "version": 1,
                }
                for i in range(n_cases)
            ]
            for chunk in _chunks(cases):
                conn.execute(insert(t.cases), chunk)
            ids = list(
                conn.execute(
                    select(t.cases.c.id)
                    .where(t.cases.c.workflow == SPEC_WORKFLOW)
                    .order_by(t.cases.c.id)
                ).scalars()
            )
            events = [
                {
                    "case_id": case_id,
                    "seq": 1,
                    "at": OPENED_AT,
                    "kind": "opened",
                    "actor": "bench",
                    "role": None,
                    "trigger": None,
                    "from_state": None,
                    "to_state": "waiting",
                    "comment": "",
                    "data": {"cohort": None, "definition_id": stored.id},
                    "epoch": 1,
                }
                for case_id in ids
            ]
            for chunk in _chunks(events):
                conn.execute(insert(t.events), chunk)
            timers = [_timer_row(case_id, due(i)) for i, case_id in enumerate(ids)]
            if extra_timers is not None:
                timers += [_timer_row(case_id, extra_timers(i)) for i, case_id in enumerate(ids)]
            for chunk in _chunks(timers):
                conn.execute(insert(t.timers), chunk)
        return stored.id
    finally:
        store.close()


def _timer_row(case_id: int, due_at: dt.datetime) -> dict[str, object]:
    return {
        "case_id": case_id,
        "timer": TIMER,
        "kind": "deadline",
        "idx": 0,
        "due_at": due_at,
        "deadline_at": due_at,
        "epoch": 1,
        "status": "pending",
        "fired_at": None,
        "note": "",
        "claimed_by": None,
    }


def counts(url: str) -> dict[str, int]:
    """How much work was done: fired timers, cases moved on, events and queued mail."""
    store = SqlStore(url)
    try:
        with store.engine.connect() as conn:
            tm, c = t.timers.c, t.cases.c

            def one(query: object) -> int:
                return int(conn.execute(query).scalar_one())  # type: ignore[arg-type]

            return {
                "fired": one(select(func.count()).where(tm.status == "fired")),
                "pending": one(select(func.count()).where(tm.status == "pending")),
                "failed": one(select(func.count()).where(tm.status == "failed")),
                "done": one(select(func.count()).where(c.state == "done")),
                "events": one(select(func.count()).select_from(t.events)),
                "outbox": one(select(func.count()).select_from(t.outbox)),
            }
    finally:
        store.close()
