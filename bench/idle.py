"""Benchmarks 2, 3 and the daemon half of 5: cost with nothing due, lateness, daemon memory.

- Tick cost: ``Service.fire_due(now)`` and ``Service.next_due_at()`` with nothing due at
  1k, 10k and 100k open cases (each with a pending timer far in the future).
- Idle CPU: a real daemon process with nothing due, its CPU time over a window.
- Lateness: a real daemon with the system clock and timers due a few hundred ms apart;
  ``fired_at - due_at`` of every timer row.
- Peak RSS: a real daemon on 100k cases that fires a batch of due timers, delivers their
  mail, then idles; ``ru_maxrss`` of the process.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import statistics
import time
from typing import Any

import psutil
from common import (
    Result,
    Workdir,
    percentile,
    phase,
    sqlite_path,
    sqlite_scalar,
    wait_until,
)
from daemonproc import DaemonProcess
from sqlalchemy import select
from workload import FIRE_AT, prepare

FUTURE = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
"""Never due during a run, whatever the clock says."""


def _store(url: str) -> Any:
    from dk2020flow.store.repository import SqlStore

    return SqlStore(url)


def tick_cost(work: Workdir, sizes: list[int], repeat: int) -> tuple[list[Result], dict[int, str]]:
    """Median cost of an empty tick at each size; also returns the database of each size.

    The sizes are measured round-robin (one call at each size, again and again), so
    that the machine's noise falls on all of them alike.
    """
    from dk2020flow.clock import ManualClock
    from dk2020flow.service import Service

    urls: dict[int, str] = {}
    services: dict[int, Any] = {}
    for size in sizes:
        with phase(f"tick cost: {size:,} open cases"):
            url = work.sqlite(f"idle{size}")
            prepare(url, size, due_at=lambda _i: FUTURE)
            urls[size] = url
            services[size] = Service(_store(url), clock=ManualClock(FIRE_AT))
    samples: dict[str, dict[int, list[float]]] = {"fire_due": {}, "next_due_at": {}}
    calls = {
        "fire_due": lambda service: service.fire_due(FIRE_AT),
        "next_due_at": lambda service: service.next_due_at(),
    }
    for round_ in range(repeat + 3):
        for size in sizes:
            for label, call in calls.items():
                start = time.perf_counter()
                call(services[size])
                if round_ >= 3:  # the first rounds warm caches and connections
                    samples[label].setdefault(size, []).append(time.perf_counter() - start)
    for service in services.values():
        service.store.close()
    results: list[Result] = []
    names = {"fire_due": "fire_due(now), nothing due", "next_due_at": "next_due_at()"}
    for size in sizes:
        for label in calls:
            median = statistics.median(samples[label][size])
            results.append(
                Result(
                    section="2. idle",
                    name=f"{names[label]}, {size:,} cases, SQLite",
                    value=median * 1000,
                    unit="ms",
                )
            )
    small, large = min(sizes), max(sizes)
    for label in calls:
        ratio = statistics.median(samples[label][large]) / statistics.median(samples[label][small])
        results.append(
            Result(
                section="2. idle",
                name=f"{label}: cost at {large:,} / cost at {small:,}",
                value=ratio,
                unit="x",
                note="target: within 2x (an indexed query, not a scan)",
            )
        )
    return results, urls


def idle_cpu(work: Workdir, url: str, cases: int, window: float) -> Result:
    """CPU used by a running daemon with nothing due, over ``window`` seconds."""
    name = f"idle daemon CPU, {cases:,} cases, over {window:.0f} s"
    daemon = DaemonProcess(url, work.path / "idle-daemon")
    try:
        proc = psutil.Process(daemon.pid)
        # The window opens once it has started and made its first pass (its `tick` line).
        daemon.wait_for_action("tick", timeout=60)
        if not daemon.alive():
            return Result(
                section="2. idle",
                name=name,
                value=None,
                unit="% of a core",
                note=f"the daemon exited: {daemon.tail()}",
                status="error",
            )
        before = proc.cpu_times()
        start = time.monotonic()
        time.sleep(window)
        after = proc.cpu_times()
        elapsed = time.monotonic() - start
    finally:
        daemon.stop()
    used = (after.user - before.user) + (after.system - before.system)
    return Result(
        section="2. idle",
        name=name,
        value=100 * used / elapsed,
        unit="% of a core",
        note="target: under 1 %",
        extra={"cpu_seconds": used, "seconds": elapsed},
    )


def lateness(work: Workdir, count: int, spacing: float) -> list[Result]:
    """A daemon on the system clock; ``count`` timers due ``spacing`` s apart."""
    url = work.sqlite("lateness")
    lead = 6.0  # the daemon starts (imports, schema check) well before the first due time
    first = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lead)
    prepare(url, count, due_at=lambda i: first + dt.timedelta(seconds=spacing * i))
    daemon = DaemonProcess(url, work.path / "lateness-daemon")
    try:
        wait_until(
            lambda: (
                sqlite_scalar(url, "SELECT count(*) FROM timers WHERE status != 'pending'") >= count
                or not daemon.alive()
            ),
            timeout=lead + spacing * count + 30,
            interval=0.25,
        )
    finally:
        daemon.stop()
    from dk2020flow.store import tables as t

    store = _store(url)
    try:
        with store.read() as tx:
            rows = tx.connection.execute(select(t.timers.c.due_at, t.timers.c.fired_at)).all()
    finally:
        store.close()
    late = [(r.fired_at - r.due_at).total_seconds() * 1000 for r in rows if r.fired_at is not None]
    note = f"{len(late)} of {count} timers fired, {spacing * 1000:.0f} ms apart; fired_at - due_at"
    if not late:
        return [
            Result(
                section="3. lateness",
                name="lateness p50",
                value=None,
                unit="ms",
                note=f"nothing fired: {daemon.tail()}",
                status="error",
            )
        ]
    return [
        Result(
            section="3. lateness",
            name="due -> fired, p50",
            value=percentile(late, 50),
            unit="ms",
            note=note,
        ),
        Result(
            section="3. lateness",
            name="due -> fired, p99",
            value=percentile(late, 99),
            unit="ms",
            note="target: under 100 ms",
            extra={"max": max(late)},
        ),
    ]


def daemon_rss(work: Workdir, cases: int, due: int, url: str | None = None) -> Result:
    """Peak RSS of a daemon on ``cases`` open cases that fires ``due`` of them, delivers
    their mail into a folder, then idles. ``url``: a database of ``cases`` cases with
    future timers to reuse (``due`` of them are made due), else one is built."""
    name = f"daemon peak RSS, {cases:,} cases ({due:,} firings + their mail)"
    if url is None:
        url = work.sqlite("rss")
        with phase(f"daemon RSS: {cases:,} cases"):
            prepare(url, cases, due_at=lambda i: FIRE_AT if i < due else FUTURE)
    else:
        with sqlite3.connect(sqlite_path(url)) as conn:
            conn.execute(
                "UPDATE timers SET due_at = ?, deadline_at = ? WHERE id <= ?",
                (FIRE_AT.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"),) * 2
                + (due,),
            )
    daemon = DaemonProcess(url, work.path / "rss-daemon")

    def finished() -> bool:
        fired = sqlite_scalar(url, "SELECT count(*) FROM timers WHERE status = 'fired'")
        waiting = sqlite_scalar(
            url, "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"
        )
        return bool(fired >= due and waiting == 0)

    try:
        done = wait_until(lambda: finished() or not daemon.alive(), timeout=600, interval=0.5)
        # Then idle: until its next heartbeat (a step of the idle daemon), not a fixed pause.
        daemon.wait_for_action("heartbeat", timeout=120, since=daemon.lines_seen())
        peak = daemon.peak_rss_mb() if daemon.alive() else None
    finally:
        daemon.stop()
    note = "VmHWM of the daemon process; target: under 150 MB"
    if not done or not finished():
        note += f"; the work did not finish: {daemon.tail()}"
    if peak is None:
        return Result(
            section="5. memory",
            name=name,
            value=None,
            unit="MB",
            note=f"the daemon exited early: {daemon.tail()}",
            status="error",
        )
    return Result(section="5. memory", name=name, value=peak, unit="MB", note=note)
