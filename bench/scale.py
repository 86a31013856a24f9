"""Benchmark 12 (issue 17 point 3): a million open cases on PostgreSQL.

    python bench/run.py --only scale --scale 1000000   # this section alone
    python bench/run.py --scale 1000000                # every section, this one included
    python bench/scale.py --cases 1000000              # this section, its report on stdout

The fixture: a database migrated with ``db upgrade`` (the real schema: its indexes, the
console-count triggers), the bench workflow loaded through the service, then N open cases
bulk-loaded with ``COPY`` (psycopg) — each organisation, its case in ``waiting`` (epoch 1,
its deadline columns as the store keeps them), its ``opened`` event and its pending
``expire`` timer, due far in the future — and ``VACUUM ANALYZE`` (a settled database, as
autovacuum leaves it). The load is timed and printed but is the fixture, not a figure.
A second database of ``SMALL`` (1,000) cases is loaded the same way for the ratios.

What is measured, each against its target:

- tick cost with nothing due: ``Service.fire_due(now)`` and ``Service.next_due_at()`` on
  N against 1k cases, measured round-robin (the median of each; target: within 2x), with
  ``EXPLAIN (ANALYZE, BUFFERS)`` of the two queries a tick runs (the claim, ``NEXT_DUE``)
  at N in the result's ``extra`` and printed;
- the daemon's peak RSS: the real daemon (``dk2020flow scheduler run``,
  ``daemonproc.DaemonProcess``) on N cases that fires ``rss_due`` of them, delivers
  their mail into a folder and idles until its next heartbeat: ``VmHWM`` (under 200 MB);
- read commands as a user runs them (the installed ``dk2020flow`` script, interpreter
  start included): ``case list --region`` (a region of ``FILTERED`` cases, whatever N)
  and ``report --workflow bench``, the median wall time at N and at 1k (under 1 s);
- firing rate with 1, 2 and 4 daemon-like processes (``dispatch._dk2020flow_worker``:
  ``fire_due`` until nothing is due) on the N database, each sample ``due`` of its cases
  made due (different cases each time), the worker counts interleaved round after round;
- the migration of open cases to a new version of the workflow (``dk2020flow case
  migrate bench``, dry run then ``--apply``) on a database of ``migrate_cases`` cases
  (``--migrate-cases``; it reads every case and its timers in one transaction, so N=1M
  is not attempted by default): wall time, cases/s, the command's peak RSS (``VmHWM``
  polled), and whether it committed in chunks (the events' transaction ids).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common import (
    BENCH_DIR,
    Result,
    Workdir,
    drop_pg,
    fresh_pg,
    parallel,
    pg_available,
    pg_dsn,
    phase,
    span,
    unavailable,
    wait_until,
)
from workload import BENCH_WORKFLOW, DUE_AT, FIRE_AT, OPENED_AT, SPEC_WORKFLOW, TIMER

SECTION = "12. scale"
SMALL = 1_000
"""The size the large database is compared with (issue 17: "within 2x of 1k")."""
FILTERED = 100
"""Cases in the region ``case list --region`` asks for, at every size."""
FILTER_REGION = "Bornholm"
SLOW = 20.0
"""Seconds above which a read command is measured twice only (not ``repeat`` times)."""
OTHER_REGION = "Hovedstaden"
FUTURE = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
"""Never due during a run."""
DB_PREFIX = os.environ.get("BENCH_SCALE_DB", "d_scale")
"""Databases are ``bench_<prefix>_<size>`` (bench/common.py's ``fresh_pg``)."""

NEXT_DUE_AT = "scale: next_due_at(), cost at {large:,} / at {small:,} cases, PostgreSQL"
FIRE_DUE = "scale: fire_due(now) nothing due, cost at {large:,} / at {small:,} cases, PostgreSQL"
DAEMON_RSS = "scale: daemon peak RSS, {n:,} cases, PostgreSQL"
CASE_LIST = "{scale}: dk2020flow case list --region, {n:,} cases, PostgreSQL"
REPORT = "{scale}: dk2020flow report, {n:,} cases, PostgreSQL"
"""``scale``: "scale" at the large size, "scale (small)" at the other (unique prefixes
for bench/run.py's targets)."""
RATE = "scale: fire_due, {workers} daemon(s), {n:,} cases, PostgreSQL"


def _scale(size: int, large: int) -> str:
    return "scale" if size == large else "scale (small)"


# ----------------------------------------------------------------------------- the fixture


def _copy(conn: Any, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def load(url: str, n: int, *, filtered: int = FILTERED) -> dict[str, float]:
    """Migrate ``url``, load the bench workflow and bulk-load ``n`` open cases (COPY).

    The first ``filtered`` organisations are in ``FILTER_REGION``, the rest in
    ``OTHER_REGION``. Returns the seconds each step took (the fixture's cost, context)."""
    import psycopg

    from dk2020flow.clock import ManualClock
    from dk2020flow.service import Service
    from dk2020flow.store import db
    from dk2020flow.store.repository import SqlStore

    took: dict[str, float] = {}
    start = time.perf_counter()
    db.upgrade(url)
    store = SqlStore(url)
    try:
        stored, _ = Service(store, clock=ManualClock(OPENED_AT)).load_workflow(BENCH_WORKFLOW)
    finally:
        store.close()
    took["upgrade"] = time.perf_counter() - start
    definition = json.dumps({"cohort": None, "definition_id": stored.id})
    with psycopg.connect(pg_dsn(url)) as conn:
        steps: list[tuple[str, tuple[str, ...], Iterator[tuple[Any, ...]]]] = [
            (
                "organisations",
                (
                    "code",
                    "name",
                    "kind",
                    "country",
                    "subdivision",
                    "region",
                    "group",
                    "language",
                    "titles",
                ),
                (
                    (
                        f"B-{i:06d}",
                        f"Bench {i:06d}",
                        "bench",
                        "",
                        "",
                        FILTER_REGION if i < filtered else OTHER_REGION,
                        "bench",
                        "da",
                        "{}",
                    )
                    for i in range(n)
                ),
            ),
            (
                "cases",
                (
                    "id",
                    "workflow",
                    "definition_id",
                    "organisation_code",
                    "state",
                    "epoch",
                    "cohort",
                    "data",
                    "checklists",
                    "entered_at",
                    "opened_at",
                    "closed",
                    "version",
                    "deadline_at",
                    "deadline_timer",
                ),
                (
                    (
                        i + 1,
                        SPEC_WORKFLOW,
                        stored.id,
                        f"B-{i:06d}",
                        "waiting",
                        1,
                        None,
                        "{}",
                        "{}",
                        OPENED_AT,
                        OPENED_AT,
                        False,
                        1,
                        FUTURE,
                        TIMER,
                    )
                    for i in range(n)
                ),
            ),
            (
                "events",
                (
                    "case_id",
                    "seq",
                    "at",
                    "kind",
                    "actor",
                    "role",
                    "trigger",
                    "from_state",
                    "to_state",
                    "comment",
                    "data",
                    "epoch",
                ),
                (
                    (
                        i + 1,
                        1,
                        OPENED_AT,
                        "opened",
                        "bench",
                        None,
                        None,
                        None,
                        "waiting",
                        "",
                        definition,
                        1,
                    )
                    for i in range(n)
                ),
            ),
            (
                "timers",
                (
                    "id",
                    "case_id",
                    "timer",
                    "kind",
                    "idx",
                    "due_at",
                    "deadline_at",
                    "epoch",
                    "status",
                    "fired_at",
                    "note",
                    "claimed_by",
                ),
                (
                    (
                        i + 1,
                        i + 1,
                        TIMER,
                        "deadline",
                        0,
                        FUTURE,
                        FUTURE,
                        1,
                        "pending",
                        None,
                        "",
                        None,
                    )
                    for i in range(n)
                ),
            ),
        ]
        for table, columns, rows in steps:
            begun = time.perf_counter()
            _copy(conn, table, columns, rows)
            conn.commit()
            took[table] = time.perf_counter() - begun
        for table in ("cases", "timers"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
            )
        conn.commit()
    begun = time.perf_counter()
    with psycopg.connect(pg_dsn(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    took["vacuum analyze"] = time.perf_counter() - begun
    return took


def make_due(url: str, first_id: int, count: int, at: dt.datetime = DUE_AT) -> None:
    """Make the timers ``first_id .. first_id + count - 1`` (one per case) due at ``at``."""
    import psycopg

    with psycopg.connect(pg_dsn(url)) as conn:
        conn.execute(
            "UPDATE timers SET due_at = %s, deadline_at = %s WHERE id >= %s AND id < %s",
            (at, at, first_id, first_id + count),
        )


def _scalar(url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    import psycopg

    with psycopg.connect(pg_dsn(url)) as conn:
        row = conn.execute(sql, params).fetchone()
        return None if row is None else row[0]


# ----------------------------------------------------------------------------- the tick


def _explain(url: str) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the tick's two queries, compiled as the store runs them."""
    import psycopg
    from sqlalchemy.dialects import postgresql

    from dk2020flow.store.sql import timers

    plans: dict[str, str] = {}
    queries: dict[str, tuple[Any, dict[str, Any]]] = {
        "claim (DUE_TIMERS)": (timers.DUE_TIMERS, {"now": FIRE_AT, "limit": 200}),
        "next_due_at (NEXT_DUE)": (timers.NEXT_DUE, {}),
    }
    with psycopg.connect(pg_dsn(url)) as conn:
        for label, (query, params) in queries.items():
            compiled = query.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
            values = {**compiled.params, **params}
            rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}", values).fetchall()
            plans[label] = "\n".join(r[0] for r in rows)
            conn.rollback()  # the claim locks nothing when nothing is due; end it anyway
    return plans


def tick_cost(urls: dict[int, str], repeat: int) -> list[Result]:
    """Median cost of an empty tick at each size, round-robin; the ratios large / small."""
    from dk2020flow.clock import ManualClock
    from dk2020flow.service import Service
    from dk2020flow.store.repository import SqlStore

    stores = {n: SqlStore(url) for n, url in urls.items()}
    services = {n: Service(store, clock=ManualClock(FIRE_AT)) for n, store in stores.items()}
    calls: dict[str, Callable[[Any], object]] = {
        "fire_due": lambda service: service.fire_due(FIRE_AT),
        "next_due_at": lambda service: service.next_due_at(),
    }
    samples: dict[str, dict[int, list[float]]] = {label: {} for label in calls}
    try:
        for round_ in range(repeat + 3):
            for n, service in services.items():
                for label, call in calls.items():
                    start = time.perf_counter()
                    call(service)
                    if round_ >= 3:  # the first rounds warm caches and connections
                        samples[label].setdefault(n, []).append(time.perf_counter() - start)
    finally:
        for store in stores.values():
            store.close()
    small, large = min(urls), max(urls)
    plans = _explain(urls[large])
    for label, plan in plans.items():
        print(f"    EXPLAIN (ANALYZE, BUFFERS) {label}, {large:,} cases:", flush=True)
        print("      " + plan.replace("\n", "\n      "), flush=True)
    names = {"fire_due": "fire_due(now), nothing due", "next_due_at": "next_due_at()"}
    results = [
        Result(
            section=SECTION,
            name=f"{_scale(n, large)}: {names[label]}, {n:,} cases, PostgreSQL",
            value=statistics.median(samples[label][n]) * 1000,
            unit="ms",
            samples=[s * 1000 for s in samples[label][n]],
        )
        for n in (small, large)
        for label in calls
    ]
    for label, template in (("fire_due", FIRE_DUE), ("next_due_at", NEXT_DUE_AT)):
        ratio = statistics.median(samples[label][large]) / statistics.median(samples[label][small])
        results.append(
            Result(
                section=SECTION,
                name=template.format(large=large, small=small),
                value=ratio,
                unit="x",
                note=f"round-robin, {repeat} samples each; target: within 2x",
                extra={"explain": plans},
            )
        )
    return results


# ----------------------------------------------------------------------------- the daemon


def daemon_rss(work: Workdir, url: str, n: int, due: int, first_id: int) -> Result:
    """The real daemon on ``n`` cases fires ``due`` of them (timers ``first_id`` …), delivers
    their mail into a folder, then idles until its next heartbeat: its ``VmHWM``."""
    from daemonproc import DaemonProcess

    name = DAEMON_RSS.format(n=n)
    # Due a minute ago on the system clock: the daemon fires them at its first tick.
    make_due(url, first_id, due, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    fired_before = _scalar(url, "SELECT count(*) FROM timers WHERE status = 'fired'")
    daemon = DaemonProcess(url, work.path / "scale-daemon")

    def finished() -> bool:
        fired = _scalar(url, "SELECT count(*) FROM timers WHERE status = 'fired'")
        waiting = _scalar(url, "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")
        return bool(fired - fired_before >= due and waiting == 0)

    try:
        done = wait_until(lambda: finished() or not daemon.alive(), timeout=900, interval=0.5)
        daemon.wait_for_action("heartbeat", timeout=120, since=daemon.lines_seen())
        peak = daemon.peak_rss_mb() if daemon.alive() else None
    finally:
        daemon.stop()
    if peak is None:
        return Result(
            section=SECTION,
            name=name,
            value=None,
            unit="MB",
            note=f"the daemon exited early: {daemon.tail()}",
            status="error",
        )
    note = f"VmHWM; fired {due:,} and delivered their mail, then a heartbeat; target: under 200 MB"
    if not done or not finished():
        note += f"; the work did not finish: {daemon.tail()}"
    return Result(section=SECTION, name=name, value=peak, unit="MB", note=note)


# ----------------------------------------------------------------------------- commands


def installed_command() -> str:
    """The ``dk2020flow`` console script of this interpreter (not a pyenv shim)."""
    beside = Path(sys.executable).with_name("dk2020flow")
    found = str(beside) if beside.exists() else shutil.which("dk2020flow")
    if found is None:
        raise RuntimeError("no dk2020flow command installed (pip install -e .)")
    return found


def _command_env(work: Workdir) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # A bytecode and definition cache, as an installed package and a user's cache have
    # (bench/startup.py does the same); the first, unmeasured call fills them.
    env["PYTHONPYCACHEPREFIX"] = str(work.path / "pycache")
    env["XDG_CACHE_HOME"] = str(work.path / "cache")
    return env


def _timed(argv: list[str], env: dict[str, str], timeout: float) -> tuple[float, float, str]:
    """Run ``argv``; (wall seconds, peak RSS MB polled from VmHWM, error text or '')."""
    from daemonproc import vm_hwm_mb

    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    peak = 0.0
    stop = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not stop.is_set():
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                peak = max(peak, vm_hwm_mb(proc.pid))
            stop.wait(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        stop.set()
        return time.perf_counter() - start, peak, f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - start
    stop.set()
    poller.join(1)
    problem = "" if proc.returncode == 0 else f"exit {proc.returncode}: {err.decode()[-300:]}"
    return wall, peak, problem


def commands(work: Workdir, urls: dict[int, str], repeat: int, timeout: float) -> list[Result]:
    """``case list --region`` and ``report`` as a user runs them, at each size, interleaved."""
    exe = installed_command()
    env = _command_env(work)
    argvs = {
        CASE_LIST: ["case", "list", "--workflow", SPEC_WORKFLOW, "--region", FILTER_REGION],
        REPORT: ["report", "--workflow", SPEC_WORKFLOW],
    }
    walls: dict[tuple[str, int], list[float]] = {}
    peaks: dict[tuple[str, int], float] = {}
    problems: dict[tuple[str, int], str] = {}
    small = min(urls)
    for template, args in argvs.items():
        # Unmeasured: fills the bytecode and definition caches (on the small database).
        _, _, problem = _timed([exe, *args, "--db", urls[small]], env, timeout)
        if problem:
            for n in urls:
                problems[(template, n)] = problem
    for _ in range(repeat):
        for template, args in argvs.items():
            for n, url in urls.items():
                key = (template, n)
                if problems.get(key):
                    continue
                if len(walls.get(key, [])) >= 2 and min(walls[key]) > SLOW:
                    continue  # two samples of a command that takes minutes are enough
                wall, peak, problem = _timed([exe, *args, "--db", url], env, timeout)
                if problem:
                    problems[key] = problem
                else:
                    walls.setdefault(key, []).append(wall)
                    peaks[key] = max(peaks.get(key, 0.0), peak)
    results = []
    for template, args in argvs.items():
        for n in urls:
            key = (template, n)
            name = template.format(scale=_scale(n, max(urls)), n=n)
            if problems.get(key):
                results.append(
                    Result(section=SECTION, name=name, value=None, unit="s", status="error")
                )
                results[-1].note = problems[key]
                continue
            results.append(
                Result(
                    section=SECTION,
                    name=name,
                    value=statistics.median(walls[key]),
                    unit="s",
                    samples=walls[key],
                    note=f"`dk2020flow {' '.join(args)}` wall, interpreter start included; "
                    f"peak RSS {peaks[key]:.0f} MB; target: under 1 s",
                    extra={"peak_rss_mb": peaks[key]},
                )
            )
    return results


def profile_command(work: Workdir, url: str, args: list[str], top: int = 25) -> str:
    """cProfile of one command in-process (for a missed target): the top functions by
    cumulative time, as text (printed, and kept in the result's ``extra``)."""
    out = work.path / "command.prof"
    code = (
        "import cProfile, sys\n"
        "from dk2020flow.cli import main\n"
        f"sys.argv = ['dk2020flow', *{args!r}, '--db', {url!r}]\n"
        f"cProfile.run('try:\\n    main()\\nexcept SystemExit:\\n    pass', {str(out)!r})\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        env=_command_env(work),
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=1800,
    )
    import io
    import pstats

    text = io.StringIO()
    pstats.Stats(str(out), stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def _profile_slow_commands(
    work: Workdir, results: list[Result], url: str, n: int, small: int
) -> list[Result]:
    """cProfile of each read command that misses 1 s at ``n`` and takes over 1.5x its time
    at ``small`` (a cost that grows with the cases; the rest is start-up, bench/startup.py).
    The profile goes to stdout and into that result's ``extra``."""
    by_name = {r.name: r for r in results}
    for template, args in (
        (CASE_LIST, ["case", "list", "--workflow", SPEC_WORKFLOW, "--region", FILTER_REGION]),
        (REPORT, ["report", "--workflow", SPEC_WORKFLOW]),
    ):
        large = by_name.get(template.format(scale="scale", n=n))
        base = by_name.get(template.format(scale="scale (small)", n=small))
        if large is None or large.value is None or large.value < 1.0:
            continue
        if base is not None and base.value and large.value < 1.5 * base.value:
            continue
        with phase(f"cProfile of dk2020flow {args[0]} at {n:,} cases"):
            profile = profile_command(work, url, args)
        print(profile, flush=True)
        large.extra["profile"] = profile
    return []


# ----------------------------------------------------------------------------- the rate


def firing_rate(
    url: str, n: int, due: int, rounds: int, workers: tuple[int, ...], first_id: int
) -> tuple[list[Result], int]:
    """Firings/s of 1, 2, 4 … processes, ``due`` cases of the N made due for each sample
    (new ones each time), interleaved round after round. Returns the results and the
    next unused timer id."""
    import dispatch

    samples: dict[int, list[float]] = {w: [] for w in workers}
    problems: list[str] = []
    next_id = first_id
    for _ in range(rounds):
        for count in workers:
            make_due(url, next_id, due)
            fired_before = _scalar(url, "SELECT count(*) FROM timers WHERE status = 'fired'")
            found = parallel(dispatch._dk2020flow_worker, (url, True), count, timeout=900)
            fired = sum(r["fired"] for r in found)
            total = _scalar(url, "SELECT count(*) FROM timers WHERE status = 'fired'")
            if fired != due or total - fired_before != due:
                problems.append(f"{count} worker(s): {fired} of {due} fired")
            samples[count].append(fired / span(found))
            next_id += due
    results = [
        Result(
            section=SECTION,
            name=RATE.format(workers=count, n=n),
            value=statistics.median(samples[count]),
            unit="firings/s",
            samples=samples[count],
            note=f"{due:,} due of {n:,} open cases a sample; 2 CPUs shared with PostgreSQL"
            + (f"; {problems[0]}" if problems else ""),
        )
        for count in workers
    ]
    return results, next_id


# ----------------------------------------------------------------------------- migration


def _version_two(folder: Path) -> Path:
    """The bench workflow as version "2" (same states), beside a copy of its templates."""
    workflows = folder / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    text = BENCH_WORKFLOW.read_text(encoding="utf-8").replace('version: "1"', 'version: "2"')
    path = workflows / "bench.yaml"
    path.write_text(text, encoding="utf-8")
    shutil.copytree(BENCH_DIR / "notifications", folder / "notifications", dirs_exist_ok=True)
    return path


def migration(work: Workdir, n: int, timeout: float) -> list[Result]:
    """``case migrate bench`` (dry run, then ``--apply``) of ``n`` open cases."""
    url = fresh_pg(f"{DB_PREFIX}_migrate_{n}")
    try:
        with phase(f"migration: loading {n:,} cases"):
            load(url, n)
        exe = installed_command()
        env = _command_env(work)
        subprocess.run(
            [exe, "workflow", "load", str(_version_two(work.path / "v2")), "--db", url],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=300,
        )
        xid_before = _scalar(url, "SELECT txid_current()")
        results = []
        for label, extra_args in (("dry run", []), ("apply", ["--apply", "--as", "bench"])):
            argv = [exe, "case", "migrate", SPEC_WORKFLOW, *extra_args, "--db", url]
            with phase(f"migration {label}: {n:,} cases"):
                wall, peak, problem = _timed(argv, env, timeout)
            name = f"scale: case migrate {label}, {n:,} cases, PostgreSQL"
            if problem:
                results.append(
                    Result(section=SECTION, name=name, value=None, unit="cases/s", status="error")
                )
                results[-1].note = problem
                continue
            results.append(
                Result(
                    section=SECTION,
                    name=name,
                    value=n / wall,
                    unit="cases/s",
                    note=f"{wall:.1f} s wall for {n:,} cases; peak RSS {peak:.0f} MB",
                    extra={"seconds": wall, "peak_rss_mb": peak},
                )
            )
        migrated = _scalar(
            url,
            "SELECT count(*) FROM cases WHERE definition_id = (SELECT max(id) FROM definitions)",
        )
        commits = _scalar(
            url,
            "SELECT count(DISTINCT xmin::text) FROM events WHERE kind = 'migrated' "
            "AND xmin::text::bigint > %s",
            (xid_before,),
        )
        results.append(
            Result(
                section=SECTION,
                name=f"scale: case migrate --apply, {n:,} cases: transactions that wrote its events",
                value=commits,
                unit="transactions",
                note=f"{migrated:,} of {n:,} cases on the new version; "
                "1 = one transaction (a crash loses it all); target: chunked (>= 2)",
            )
        )
        return results
    finally:
        drop_pg(url)


# ----------------------------------------------------------------------------- the section


def run(
    work: Workdir,
    n: int,
    *,
    repeat: int = 100,
    command_repeat: int = 3,
    rss_due: int = 2000,
    rate_due: int = 2000,
    rate_rounds: int = 3,
    workers: tuple[int, ...] = (1, 2, 4),
    migrate_cases: int = 10_000,
    keep: bool = False,
) -> list[Result]:
    reason = pg_available()
    if reason is not None:
        return [unavailable(SECTION, "scale", "", reason)]
    print(f"  load average at the start: {os.getloadavg()}", flush=True)
    sizes = sorted({min(SMALL, n), n})
    urls: dict[int, str] = {}
    results: list[Result] = []
    try:
        for size in sizes:
            urls[size] = fresh_pg(f"{DB_PREFIX}_{size}")
            with phase(f"loading {size:,} open cases (COPY)"):
                took = load(urls[size], size)
            print("    " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()), flush=True)
            results.append(
                Result(
                    section=SECTION,
                    name=f"{_scale(size, n)}: fixture, bulk load of {size:,} cases (COPY, not a target)",
                    value=sum(took.values()),
                    unit="s",
                    note=", ".join(f"{k} {v:.0f} s" for k, v in took.items()),
                    extra=took,
                )
            )
        large = urls[n]
        with phase(f"tick cost: {sizes} cases, round-robin"):
            results += tick_cost(urls, repeat)
        print(f"  load average: {os.getloadavg()}", flush=True)
        with phase("read commands as installed"):
            results += commands(work, urls, command_repeat, timeout=1800)
        results += _profile_slow_commands(work, results, large, n, min(urls))
        print(f"  load average: {os.getloadavg()}", flush=True)
        next_id = 1 + FILTERED  # the filtered region's cases keep their timers pending
        with phase(f"daemon RSS on {n:,} cases"):
            results.append(daemon_rss(work, large, n, rss_due, next_id))
        next_id += rss_due
        print(f"  load average: {os.getloadavg()}", flush=True)
        with phase(f"firing rate, {workers} processes, {rate_rounds} rounds of {rate_due:,}"):
            found, next_id = firing_rate(large, n, rate_due, rate_rounds, workers, next_id)
        results += found
        print(f"  load average: {os.getloadavg()}", flush=True)
    finally:
        for url in urls.values():
            if not keep:
                drop_pg(url)
    if migrate_cases:
        results += migration(work, migrate_cases, timeout=3600)
        print(f"  load average: {os.getloadavg()}", flush=True)
    results.append(
        Result(
            section=SECTION,
            name="scale: load average (1 min) at the end of the section",
            value=os.getloadavg()[0],
            unit="",
            note=f"{os.cpu_count()} CPUs shared with other work",
        )
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=100, help="tick samples at each size")
    parser.add_argument("--migrate-cases", type=int, default=10_000, help="0: skip")
    parser.add_argument("--rate-due", type=int, default=2000)
    parser.add_argument("--rate-rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the databases (debugging)")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("dk2020flow").setLevel(logging.ERROR)
    work = Workdir()
    try:
        results = run(
            work,
            args.cases,
            repeat=args.repeat,
            migrate_cases=args.migrate_cases,
            rate_due=args.rate_due,
            rate_rounds=args.rate_rounds,
            keep=args.keep,
        )
    finally:
        work.cleanup()
    for r in results:
        value = "–" if r.value is None else f"{r.value:,.4g}"
        print(f"| {r.name} | {value} | {r.spread} | {r.unit} | {r.note} |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
