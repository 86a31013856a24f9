"""Benchmark 1: dispatch throughput, dk2020flow beside the raw limit and the peers.

dk2020flow runs ``Service.fire_due`` — the daemon's dispatch path — in one or
two worker processes, each looping until nothing is due. Every firing is a
real transition of the bench workflow: the case moves on, its two events are
appended, one mail is rendered into the outbox and the timer is retired.

The method (docs/performance.md, "Method"):

- every contender fires the same N due timers, from a database prepared the same way
  (``workload.prepare``) for each sample, outside the timed part;
- the raw limit (``raw.py``) batches as dk2020flow does (``Settings().batch_size``),
  writes the same rows (two events, hash-chained) and renders the same template;
- each figure is the median of ``samples`` samples taken interleaved (A B C, A B C, …)
  so that a slow minute of the shared machine falls on every contender alike; the
  report gives the spread (min–max) beside it, and each ratio the min–max of its
  per-round ratios;
- two of dk2020flow's own costs are measured against dk2020flow with them taken out,
  the same N, interleaved: migration 0004's console-count triggers (dropped on that
  sample's database) and the webhook hook of the batch write (``queue_webhooks``,
  replaced by a no-op in that worker; with no subscription, its cost is one query
  a batch and the notices' bookkeeping).
"""

from __future__ import annotations

import importlib.util
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import peers
import raw
from common import Result, Workdir, failed, fresh_pg, parallel, phase, span
from workload import FIRE_AT, counts, prepare

SECTION = "1. dispatch"
UNIT = "firings/s"
MAX_ROUNDS = 100_000
LATEST_TRIGGERS = "dk2020flow._migrations.versions.0006_organisations"
"""The migration that last created the console's triggers (its ``console_trigger_drops``)."""

DK_SQLITE = "dk2020flow, SQLite, 1 daemon"
DK_SQLITE_NO_TRIGGERS = "dk2020flow, SQLite, 1 daemon, console-count triggers dropped"
DK_SQLITE_NO_HOOK = "dk2020flow, SQLite, 1 daemon, webhook hook removed"
DK_PG1 = "dk2020flow, PostgreSQL, 1 daemon"
DK_PG1_NO_TRIGGERS = "dk2020flow, PostgreSQL, 1 daemon, console-count triggers dropped"
DK_PG1_NO_HOOK = "dk2020flow, PostgreSQL, 1 daemon, webhook hook removed"
DK_PG2 = "dk2020flow, PostgreSQL, 2 daemons"


def batch_size() -> int:
    """dk2020flow's batch (timers claimed per tick), which the raw loops match."""
    from dk2020flow.settings import Settings

    return Settings().batch_size


def raw_names(batch: int) -> dict[str, str]:
    return {
        "sqlite": f"raw SQL + render, SQLite, batches of {batch}",
        "sqlite_rows": f"raw SQL without render, SQLite, batches of {batch}",
        "sqlite_1": "raw SQL + render, SQLite, 1 per transaction",
        "pg": f"raw SQL + render, PostgreSQL, batches of {batch}",
        "pg_1": "raw SQL + render, PostgreSQL, 1 per transaction",
        "pg_2": f"raw SQL + render, PostgreSQL, 2 workers x {batch} SKIP LOCKED",
    }


# ----------------------------------------------------------------------------- workers


def _dk2020flow_worker(barrier: Any, queue: Any, url: str, hook: bool) -> None:
    """One daemon-like process: ``fire_due(now)`` until nothing is due."""
    try:
        from dk2020flow.clock import ManualClock
        from dk2020flow.service import Service
        from dk2020flow.settings import Settings
        from dk2020flow.store.repository import SqlStore

        if not hook:
            from dk2020flow.store import bulk

            bulk.queue_webhooks = lambda _conn, _changes: 0  # type: ignore[assignment]
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


def drop_console_triggers(url: str) -> int:
    """Drop the console-count triggers (migration 0004's, as 0006 names them) from a
    (bench) database; how many triggers."""
    module = importlib.import_module(LATEST_TRIGGERS)
    statements = module.console_trigger_drops(
        "sqlite" if url.startswith("sqlite") else "postgresql"
    )
    if url.startswith("sqlite"):
        conn = raw.sqlite_connect(url)
        try:
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.close()
    else:
        with raw.pg_connect(url) as conn:
            for statement in statements:
                conn.execute(statement)
    return sum(statement.startswith("DROP TRIGGER") for statement in statements)


# ----------------------------------------------------------------------------- samples

Sample = tuple[float, str, dict[str, Any]]
"""One sample: firings/s, a note when the work was not exactly done, extra figures."""


def dk2020flow_rate(
    url: str, n: int, workers: int, *, hook: bool = True, triggers: bool = True
) -> Sample:
    """Firings per second of ``workers`` processes on a database of ``n`` due timers."""
    prepare(url, n)
    if not triggers:
        drop_console_triggers(url)
    results = parallel(_dk2020flow_worker, (url, hook), workers, timeout=600)
    fired = sum(r["fired"] for r in results)
    seconds = span(results)
    note = _check(url, n)
    errors = [e for r in results for e in r["errors"]]
    if errors:
        note = (note + "; " if note else "") + f"errors: {errors[0]}"
    per_worker = [r["fired"] for r in results]
    return fired / seconds, note, {"fired": fired, "seconds": seconds, "per_worker": per_worker}


def _raw_sample(url: str, n: int, fire: Callable[[str], tuple[int, float]]) -> Sample:
    prepare(url, n)
    fired, seconds = fire(url)
    note = _check(url, n)
    return fired / seconds, note, {"fired": fired, "seconds": seconds}


def _raw_two_workers(url: str, n: int, batch: int) -> Sample:
    prepare(url, n)
    found = parallel(_raw_pg_worker, (url, batch), 2, timeout=600)
    fired = sum(r["fired"] for r in found)
    seconds = span(found)
    return fired / seconds, _check(url, n), {"fired": fired, "seconds": seconds}


def _peer_sample(result: Result) -> Sample:
    if result.status != "ok" or result.value is None:
        raise _Unavailable(result)
    return result.value, "", dict(result.extra)


class _Unavailable(Exception):  # noqa: N818 - carries a result, not an error
    def __init__(self, result: Result) -> None:
        super().__init__(result.note)
        self.result = result


@dataclass(frozen=True)
class Contender:
    name: str
    sample: Callable[[], Sample]


def contenders(
    work: Workdir, n: int, pg_reason: str | None, *, core: bool, with_peers: bool
) -> tuple[list[Contender], list[Result]]:
    """What benchmark 1 runs (same ``n`` for each), and the unavailable ones as results."""
    batch = batch_size()
    names = raw_names(batch)
    found: list[Contender] = []
    missing: list[Result] = []

    def pg(name: str) -> str:
        return fresh_pg(name)

    if core:
        found += [
            Contender(DK_SQLITE, lambda: dk2020flow_rate(work.sqlite("dispatch"), n, 1)),
            Contender(
                names["sqlite"],
                lambda: _raw_sample(work.sqlite("raw"), n, lambda url: raw.run_sqlite(url, batch)),
            ),
            Contender(
                names["sqlite_rows"],
                lambda: _raw_sample(
                    work.sqlite("raw_rows"),
                    n,
                    lambda url: raw.run_sqlite(url, batch, with_render=False),
                ),
            ),
            Contender(
                names["sqlite_1"],
                lambda: _raw_sample(work.sqlite("raw1"), n, lambda url: raw.run_sqlite(url, 1)),
            ),
            Contender(
                DK_SQLITE_NO_TRIGGERS,
                lambda: dk2020flow_rate(work.sqlite("dispatch_nt"), n, 1, triggers=False),
            ),
            Contender(
                DK_SQLITE_NO_HOOK,
                lambda: dk2020flow_rate(work.sqlite("dispatch_nh"), n, 1, hook=False),
            ),
        ]
        pg_core = [
            (DK_PG1, lambda: dk2020flow_rate(pg("dispatch1"), n, 1)),
            (DK_PG2, lambda: dk2020flow_rate(pg("dispatch2"), n, 2)),
            (names["pg"], lambda: _raw_sample(pg("raw"), n, lambda url: raw.run_pg(url, batch))),
            (names["pg_1"], lambda: _raw_sample(pg("raw1"), n, lambda url: raw.run_pg(url, 1))),
            (names["pg_2"], lambda: _raw_two_workers(pg("raw2"), n, batch)),
            (
                DK_PG1_NO_TRIGGERS,
                lambda: dk2020flow_rate(pg("dispatch_nt"), n, 1, triggers=False),
            ),
            (DK_PG1_NO_HOOK, lambda: dk2020flow_rate(pg("dispatch_nh"), n, 1, hook=False)),
        ]
        for name, fn in pg_core:
            if pg_reason is None:
                found.append(Contender(name, fn))
            else:
                missing.append(_unavailable(name, pg_reason))
    if with_peers:
        found += [
            Contender(peers.APS, lambda: _peer_sample(peers.apscheduler(work, n))),
            Contender(
                peers.APS_BATCHED,
                lambda: _peer_sample(peers.apscheduler_batched(work, n, batch)),
            ),
            Contender(peers.SPIFF, lambda: _peer_sample(peers.spiffworkflow(work, n))),
            Contender(peers.PROC, lambda: _peer_sample(peers.procrastinate(n, pg_reason))),
        ]
    return found, missing


def _unavailable(name: str, reason: str) -> Result:
    return Result(
        section=SECTION, name=name, value=None, unit=UNIT, note=reason, status="unavailable"
    )


def run(
    work: Workdir,
    n: int,
    samples: int,
    pg_reason: str | None,
    *,
    core: bool = True,
    with_peers: bool = True,
) -> list[Result]:
    """Every figure of benchmark 1: ``samples`` interleaved rounds over every contender."""
    chosen, results = contenders(work, n, pg_reason, core=core, with_peers=with_peers)
    taken: dict[str, list[Sample]] = {c.name: [] for c in chosen}
    failures: dict[str, Result] = {}
    for round_ in range(samples):
        for contender in chosen:
            if contender.name in failures:
                continue
            with phase(f"round {round_ + 1}/{samples}: {contender.name}, {n} timers"):
                try:
                    taken[contender.name].append(contender.sample())
                except _Unavailable as gone:
                    failures[contender.name] = gone.result
                except Exception as exc:
                    traceback.print_exc()
                    failures[contender.name] = failed(SECTION, contender.name, UNIT, exc)
    for contender in chosen:
        if contender.name in failures:
            results.append(failures[contender.name])
            continue
        got = taken[contender.name]
        rates = [rate for rate, _, _ in got]
        notes = sorted({note for _, note, _ in got if note})
        results.append(
            Result(
                section=SECTION,
                name=contender.name,
                value=statistics.median(rates),
                unit=UNIT,
                note="; ".join(notes)[:300],
                samples=rates,
                extra={"samples": [extra for _, _, extra in got], "n": n},
            )
        )
    return results
