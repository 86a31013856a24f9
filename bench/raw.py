"""The raw limit: the same rows a firing writes, with plain SQL through the bare driver.

Per firing: move the case on (``UPDATE cases``), append its event (``INSERT
events``), queue one mail (``INSERT outbox``) and retire the timer (``UPDATE
timers``), against dk2020flow's own schema, with the same SQLite pragmas
(WAL, busy_timeout, foreign keys) dk2020flow uses. No engine, no rendering,
no ORM: what the database itself can take.

The APScheduler, procrastinate and SpiffWorkflow peers call ``fire_one`` for
their per-deadline work, so every contender does the same writes.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from typing import Any

from common import pg_dsn, sqlite_path
from workload import FIRE_AT

MAIL_TO = json.dumps([["Bench Owner", "owner@bench.example.dk"]])
MAIL_SUBJECT = "Fristen er udløbet – Bench 000001"
MAIL_TEXT = "Kære Bench Owner,\n\nFristen for sag bench-a01 er udløbet, og sagen er gået videre.\n"
MAIL_HTML = (
    "<p>Kære Bench Owner,</p>\n<p>Fristen for sag bench-a01 er udløbet, og sagen er gået "
    "videre.</p>\n"
)

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _stamp(when: dt.datetime, sqlite: bool) -> Any:
    return when.astimezone(dt.UTC).replace(tzinfo=None).strftime(_SQLITE_TIME) if sqlite else when


def _statements(p: str) -> dict[str, str]:
    """The four writes of one firing, with the driver's placeholder ``p``."""
    return {
        "case": (
            f"UPDATE cases SET state = 'done', epoch = epoch + 1, version = version + 1, "
            f"entered_at = {p} WHERE id = {p}"
        ),
        "event": (
            "INSERT INTO events (case_id, seq, at, kind, actor, role, trigger, from_state, "
            "to_state, comment, data, epoch) VALUES "
            f"({p}, 2, {p}, 'transition', 'dk2020flow', NULL, 'expire', 'waiting', 'done', "
            f"'', {p}, 2)"
        ),
        "mail": (
            "INSERT INTO outbox (case_id, template, language, to_addresses, cc_addresses, "
            "subject, text, html, ics, status, attempts, not_before, next_attempt_at, "
            "lease_until, last_error, created_at, sent_at, dead_at, urgent, reason, message_id) "
            f"VALUES ({p}, 'expired', 'da', {p}, {p}, {p}, {p}, {p}, NULL, 'pending', 0, {p}, {p}, "
            f"NULL, '', {p}, NULL, NULL, {p}, '', {p})"
        ),
        "timer": (
            f"UPDATE timers SET status = 'fired', fired_at = {p} "
            f"WHERE id = {p} AND status = 'pending'"
        ),
    }


def _params(
    rows: list[tuple[int, int]], sqlite: bool, tag: str
) -> dict[str, list[tuple[Any, ...]]]:
    now = _stamp(FIRE_AT, sqlite)
    true = 1 if sqlite else True
    return {
        "case": [(now, case_id) for _, case_id in rows],
        "event": [(case_id, now, "{}") for _, case_id in rows],
        "mail": [
            (
                case_id,
                MAIL_TO,
                "[]",
                MAIL_SUBJECT,
                MAIL_TEXT,
                MAIL_HTML,
                now,
                now,
                now,
                true,
                f"<{tag}.{timer_id}@bench.local>",
            )
            for timer_id, case_id in rows
        ],
        "timer": [(now, timer_id) for timer_id, _ in rows],
    }


def _claim_sql(p: str, skip_locked: bool) -> str:
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    return (
        "SELECT id, case_id FROM timers WHERE status = 'pending' AND due_at <= "
        f"{p} ORDER BY due_at, id LIMIT {p}{lock}"
    )


def write(cur: Any, rows: list[tuple[int, int]], *, sqlite: bool, tag: str) -> None:
    """The writes of ``rows`` (timer id, case id) inside the caller's transaction."""
    statements = _statements("?" if sqlite else "%s")
    params = _params(rows, sqlite, tag)
    for key in ("case", "event", "mail", "timer"):
        if len(rows) == 1:
            cur.execute(statements[key], params[key][0])
        else:
            cur.executemany(statements[key], params[key])


# --------------------------------------------------------------------------- SQLite


def sqlite_connect(url: str) -> sqlite3.Connection:
    conn = sqlite3.connect(sqlite_path(url), isolation_level=None, timeout=5.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def fire_one_sqlite(conn: sqlite3.Connection, timer_id: int, case_id: int, tag: str) -> None:
    """One firing in its own transaction (the peers' per-deadline job body)."""
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        write(cur, [(timer_id, case_id)], sqlite=True, tag=tag)
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


def run_sqlite(url: str, batch: int, limit: int | None = None) -> tuple[int, float]:
    """Fire due timers in transactions of ``batch`` firings; (fired, seconds)."""
    conn = sqlite_connect(url)
    claim = _claim_sql("?", skip_locked=False)
    now = _stamp(FIRE_AT, True)
    fired = 0
    start = time.perf_counter()
    try:
        while limit is None or fired < limit:
            take = batch if limit is None else min(batch, limit - fired)
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            rows = [(int(a), int(b)) for a, b in cur.execute(claim, (now, take)).fetchall()]
            if not rows:
                cur.execute("COMMIT")
                break
            write(cur, rows, sqlite=True, tag="raw")
            cur.execute("COMMIT")
            fired += len(rows)
        return fired, time.perf_counter() - start
    finally:
        conn.close()


# ----------------------------------------------------------------------- PostgreSQL


def pg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(pg_dsn(url))


def fire_one_pg(conn: Any, timer_id: int, case_id: int, tag: str) -> None:
    with conn.transaction(), conn.cursor() as cur:
        write(cur, [(timer_id, case_id)], sqlite=False, tag=tag)


def run_pg(url: str, batch: int, limit: int | None = None) -> tuple[int, float]:
    """Claim up to ``batch`` due timers with SKIP LOCKED and fire them in one transaction,
    until none is left (or ``limit`` fired); (fired, seconds)."""
    claim = _claim_sql("%s", skip_locked=True)
    fired = 0
    with pg_connect(url) as conn:
        start = time.perf_counter()
        while limit is None or fired < limit:
            take = batch if limit is None else min(batch, limit - fired)
            with conn.transaction(), conn.cursor() as cur:
                rows = [(int(a), int(b)) for a, b in cur.execute(claim, (FIRE_AT, take))]
                if rows:
                    write(cur, rows, sqlite=False, tag="raw")
            if not rows:
                break
            fired += len(rows)
        return fired, time.perf_counter() - start
