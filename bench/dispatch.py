"""Benchmark 1: dispatch throughput, dk2020flow beside the raw limit and the peers.

dk2020flow runs ``Service.fire_due`` — the daemon's dispatch path — in one or
two worker processes, each looping until nothing is due. Every firing is a
real transition of the bench workflow: the case moves on, its events are
appended, one mail is rendered into the outbox and the timer is retired.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

import raw
from common import Result, Workdir, fresh_pg, parallel, phase, span
from workload import FIRE_AT, counts, prepare

SECTION = "1. dispatch"
MAX_ROUNDS = 100_000


def _dk2020flow_worker(barrier: Any, queue: Any, url: str) -> None:
    """One daemon-like process: ``fire_due(now)`` until nothing is due."""
    try:
        from dk2020flow.clock import ManualClock
        from dk2020flow.service import Service
        from dk2020flow.settings import Settings
        from dk2020flow.store.repository import SqlStore

        store = SqlStore(url)
        service = Service(store, clock=ManualClock(FIRE_AT), settings=Settings())
        service.next_due_at()  # connect and check the schema before the clock starts
        barrier.wait()
        start = time.monotonic()
        fired = failed = 0
        errors: list[str] = []
        for _ in range(MAX_ROUNDS):
            result = service.fire_due(FIRE_AT)
            fired += result.fired
            failed += result.failed
            errors.extend(result.errors[:3])
            if result.total == 0:
                break
        end = time.monotonic()
        store.close()
        queue.put(
            {"fired": fired, "failed": failed, "errors": errors[:3], "start": start, "end": end}
        )
    except BaseException:
        queue.put({"error": traceback.format_exc(limit=8)})


def _raw_pg_worker(barrier: Any, queue: Any, url: str, batch: int) -> None:
    try:
        barrier.wait()
        start = time.monotonic()
        fired, _ = raw.run_pg(url, batch)
        queue.put({"fired": fired, "start": start, "end": time.monotonic()})
    except BaseException:
        queue.put({"error": traceback.format_exc(limit=8)})


def _check(url: str, expected: int) -> str:
    """A note when the run did not do exactly the expected work."""
    found = counts(url)
    problems = []
    if found["fired"] != expected:
        problems.append(f"{found['fired']} of {expected} timers fired")
    if found["done"] != expected:
        problems.append(f"{found['done']} cases moved on")
    if found["outbox"] != expected:
        problems.append(f"{found['outbox']} mails queued")
    return "; ".join(problems)


def dk2020flow_rate(url: str, n: int, workers: int) -> tuple[float, str, dict[str, Any]]:
    """Firings per second of ``workers`` processes on a database of ``n`` due timers."""
    prepare(url, n)
    results = parallel(_dk2020flow_worker, (url,), workers, timeout=600)
    fired = sum(r["fired"] for r in results)
    seconds = span(results)
    note = _check(url, n)
    errors = [e for r in results for e in r["errors"]]
    if errors:
        note = (note + "; " if note else "") + f"errors: {errors[0]}"
    per_worker = [r["fired"] for r in results]
    return fired / seconds, note, {"fired": fired, "seconds": seconds, "per_worker": per_worker}


def run(work: Workdir, n: int, n_per_tx: int, pg_reason: str | None) -> list[Result]:
    """Every dispatch figure of benchmark 1 that needs no peer library."""
    results: list[Result] = []

    def add(name: str, rate: float, note: str = "", extra: dict[str, Any] | None = None) -> None:
        results.append(
            Result(
                section=SECTION,
                name=name,
                value=rate,
                unit="firings/s",
                note=note,
                extra=extra or {},
            )
        )

    with phase(f"dk2020flow fire_due on SQLite, {n} timers"):
        url = work.sqlite("dispatch")
        rate, note, extra = dk2020flow_rate(url, n, 1)
        add("dk2020flow, SQLite, 1 daemon", rate, note, extra)
    with phase(f"raw SQL on SQLite, {n_per_tx} one per transaction, {n} in batches of 500"):
        url = work.sqlite("raw1")
        prepare(url, n_per_tx)
        fired, seconds = raw.run_sqlite(url, batch=1)
        add("raw SQL, SQLite, 1 per transaction", fired / seconds)
        url = work.sqlite("raw500")
        prepare(url, n)
        fired, seconds = raw.run_sqlite(url, batch=500)
        add("raw SQL, SQLite, batches of 500", fired / seconds)
    if pg_reason is not None:
        for name in (
            "dk2020flow, PostgreSQL, 1 daemon",
            "dk2020flow, PostgreSQL, 2 daemons",
            "raw SQL, PostgreSQL, 1 per transaction",
            "raw SQL, PostgreSQL, batches of 500",
            "raw SQL, PostgreSQL, 2 workers x 100 SKIP LOCKED",
        ):
            results.append(
                Result(
                    section=SECTION,
                    name=name,
                    value=None,
                    unit="firings/s",
                    note=pg_reason,
                    status="unavailable",
                )
            )
        return results
    for workers in (1, 2):
        label = "daemon" if workers == 1 else "daemons"
        with phase(f"dk2020flow fire_due on PostgreSQL, {workers} {label}, {n} timers"):
            url = fresh_pg(f"dispatch{workers}")
            rate, note, extra = dk2020flow_rate(url, n, workers)
            add(f"dk2020flow, PostgreSQL, {workers} {label}", rate, note, extra)
    with phase("raw SQL on PostgreSQL"):
        url = fresh_pg("raw1")
        prepare(url, n_per_tx)
        fired, seconds = raw.run_pg(url, batch=1)
        add("raw SQL, PostgreSQL, 1 per transaction", fired / seconds)
        url = fresh_pg("raw500")
        prepare(url, n)
        fired, seconds = raw.run_pg(url, batch=500)
        add("raw SQL, PostgreSQL, batches of 500", fired / seconds)
        url = fresh_pg("raw2x100")
        prepare(url, n)
        found = parallel(_raw_pg_worker, (url, 100), 2, timeout=600)
        add(
            "raw SQL, PostgreSQL, 2 workers x 100 SKIP LOCKED",
            sum(r["fired"] for r in found) / span(found),
        )
    return results
