"""What every benchmark shares: result records, databases, timing and process helpers."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PG_ADMIN = os.environ.get(
    "BENCH_PG_ADMIN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{db}")


@dataclass(kw_only=True)
class Result:
    """One measured (or unavailable) figure of the report."""

    section: str
    name: str
    value: float | None
    unit: str
    note: str = ""
    status: str = "ok"  # ok | unavailable | error
    samples: list[float] = field(default_factory=list)
    """The interleaved samples ``value`` is the median of (empty: a single figure)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def spread(self) -> str:
        """The samples' min–max, e.g. ``"412–455 (3)"`` (empty for a single figure)."""
        return spread(self.samples)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def unavailable(section: str, name: str, unit: str, reason: str) -> Result:
    return Result(
        section=section, name=name, value=None, unit=unit, note=reason, status="unavailable"
    )


def failed(section: str, name: str, unit: str, error: BaseException) -> Result:
    text = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    return Result(section=section, name=name, value=None, unit=unit, note=text, status="error")


# --------------------------------------------------------------------------- databases


def pg_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:
        return f"PostgreSQL not reachable ({type(exc).__name__}: {exc})".splitlines()[0]
    return None


def fresh_pg(name: str) -> str:
    """Drop and create database ``bench_<name>``; return its SQLAlchemy URL."""
    import psycopg

    db = "bench_" + re.sub(r"[^a-z0-9_]", "_", name.lower())
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    return PG_URL.format(db=db)


def drop_pg(url: str) -> None:
    import psycopg

    db = url.rsplit("/", 1)[-1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def pg_dsn(url: str) -> str:
    """A libpq connection string for a ``postgresql+psycopg://`` URL."""
    return url.replace("postgresql+psycopg://", "postgresql://")


class Workdir:
    """A scratch folder for SQLite files, removed at the end of the run."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="dk2020flow-bench-")
        self.path = Path(self._tmp.name)

    def sqlite(self, name: str) -> str:
        file = self.path / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{file}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{file}"

    def cleanup(self) -> None:
        self._tmp.cleanup()


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def sqlite_scalar(url: str, sql: str) -> Any:
    """One value read with a plain read-only connection (never waits for the write lock)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{sqlite_path(url)}?mode=ro", uri=True, timeout=5.0)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


# --------------------------------------------------------------------------- timing


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def spread(values: list[float]) -> str:
    """``min–max (count)`` of a figure's samples; empty for fewer than two."""
    if len(values) < 2:
        return ""
    return f"{fmt(min(values))}–{fmt(max(values))} ({len(values)})"


def fmt(value: float | None) -> str:
    """A figure in the report: three significant digits, thousands separated."""
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0..100), nearest-rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def phase(label: str) -> Iterator[None]:
    """Print a progress line to stderr-ish stdout with the phase's duration."""
    start = time.perf_counter()
    print(f"  … {label}", flush=True)
    try:
        yield
    finally:
        print(f"    done in {time.perf_counter() - start:.1f} s", flush=True)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --------------------------------------------------------------------------- processes


def parallel(
    target: Callable[..., None], args: tuple[Any, ...], workers: int, timeout: float
) -> list[dict[str, Any]]:
    """Run ``target(barrier, queue, *args)`` in ``workers`` spawned processes.

    Each worker does its setup, waits on the barrier so all start together, and
    puts one dict on the queue (with ``start``/``end`` from ``time.monotonic``).
    Workers still running after ``timeout`` seconds are terminated.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(barrier, queue, *args)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(results) < workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers did not finish within {timeout:.0f} s")
            try:
                results.append(queue.get(timeout=1.0))
            except Empty:
                if not any(proc.is_alive() for proc in procs) and queue.empty():
                    codes = [proc.exitcode for proc in procs]
                    raise RuntimeError(
                        f"workers died without a result (exit codes {codes})"
                    ) from None
    finally:
        for proc in procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
    errors = [r["error"] for r in results if r.get("error")]
    if errors:
        raise RuntimeError(errors[0])
    return results


def span(results: list[dict[str, Any]]) -> float:
    """Wall time from the first worker's start to the last one's end."""
    return max(r["end"] for r in results) - min(r["start"] for r in results)
