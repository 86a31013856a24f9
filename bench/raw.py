"""The raw limit: the same rows a firing writes and the same mail rendered, in plain Python.

Per firing, as ``Service.fire_due`` does for the bench workflow: move the case on
(``UPDATE cases``), append its two events (the timer's and the transition's, numbered
after the case's last event and hash-chained with ``hashlib.sha256``), render the same
mail template (``bench/notifications/bench/expired.da.jinja``: subject and text in a
text-mode Jinja environment, the HTML block in an autoescaping one, both sandboxed as
dk2020flow's are), queue it (``INSERT outbox``) and retire the timer (``UPDATE
timers``), against dk2020flow's own schema (its console-count triggers included) with
the same SQLite pragmas (WAL, busy_timeout, foreign keys). No engine, no ORM: the
limit of the same work in Python.

The APScheduler, procrastinate and SpiffWorkflow peers call ``fire_one_*`` for their
per-deadline work, so every contender does the same writes and the same render.
``render=False`` leaves the render out (the rows alone: what the database can take).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from functools import cache
from typing import Any, NamedTuple

from common import BENCH_DIR, pg_dsn, sqlite_path
from workload import FIRE_AT, SPEC_WORKFLOW

MAIL_TO = json.dumps([["Bench Owner", "owner@bench.example.dk"]])
RECIPIENT = "Bench Owner"
TEMPLATE = "expired.da.jinja"
TEMPLATES = BENCH_DIR / "notifications" / "bench"
STATIC_SUBJECT = "Fristen er udløbet – Bench 000001"
STATIC_TEXT = (
    "Kære Bench Owner,\n\nFristen for sag bench-a01 er udløbet, og sagen er gået videre.\n"
)
STATIC_HTML = (
    "<p>Kære Bench Owner,</p>\n<p>Fristen for sag bench-a01 er udløbet, og sagen er gået "
    "videre.</p>\n"
)
INTENT = json.dumps(
    {"template": "expired", "to": ["owner"], "cc": [], "urgent": True, "kind": "timer"}
)
DUE_AT_ISO = "2024-01-01T09:00:00+00:00"
TIMER_DATA = json.dumps(
    {
        "timer": "expire",
        "kind": "deadline",
        "index": 0,
        "due_at": DUE_AT_ISO,
        "deadline_at": DUE_AT_ISO,
    }
)

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


class Firing(NamedTuple):
    """One due timer as the raw loop claims it: what the writes and the mail need."""

    timer_id: int
    case_id: int
    code: str
    name: str


def _stamp(when: dt.datetime, sqlite: bool) -> Any:
    return when.astimezone(dt.UTC).replace(tzinfo=None).strftime(_SQLITE_TIME) if sqlite else when


@cache
def _templates() -> tuple[Any, Any]:
    """The bench mail template in text mode and in HTML mode (compiled once)."""
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    loader = FileSystemLoader(str(TEMPLATES))
    text = ImmutableSandboxedEnvironment(
        loader=loader, autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True
    )
    html = ImmutableSandboxedEnvironment(
        loader=loader, autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True
    )
    return text.get_template(TEMPLATE), html.get_template(TEMPLATE)


def render(firing: Firing) -> tuple[str, str, str]:
    """Subject, text and HTML of the firing's mail, rendered from the template."""
    text_t, html_t = _templates()
    context = {
        "organisation": {"name": firing.name, "code": firing.code},
        "recipient": {"name": RECIPIENT},
        "case": {"reference": f"{SPEC_WORKFLOW}-{firing.code}", "state": "done"},
    }

    def block(template: Any, name: str) -> str:
        return "".join(template.blocks[name](template.new_context(context))).strip() + (
            "" if name == "subject" else "\n"
        )

    return block(text_t, "subject"), block(text_t, "text"), block(html_t, "html")


def _statements(p: str) -> dict[str, str]:
    """The writes of one firing, with the driver's placeholder ``p``."""
    return {
        "case": (
            f"UPDATE cases SET state = 'done', epoch = epoch + 1, version = version + 1, "
            f"entered_at = {p} WHERE id = {p}"
        ),
        "event": (
            "INSERT INTO events (case_id, seq, at, kind, actor, role, trigger, from_state, "
            "to_state, comment, data, epoch, transition, hash) VALUES "
            f"({p}, {p}, {p}, {p}, 'dk2020flow', NULL, {p}, 'waiting', {p}, '', {p}, 2, {p}, {p})"
        ),
        "mail": (
            "INSERT INTO outbox (case_id, template, language, to_addresses, cc_addresses, "
            "subject, text, html, ics, status, attempts, not_before, next_attempt_at, "
            "lease_until, last_error, created_at, sent_at, dead_at, urgent, reason, message_id, "
            f"intent) VALUES ({p}, 'expired', 'da', {p}, {p}, {p}, {p}, {p}, NULL, 'pending', 0, "
            f"{p}, {p}, NULL, '', {p}, NULL, NULL, {p}, '', {p}, {p})"
        ),
        "timer": (
            f"UPDATE timers SET status = 'fired', fired_at = {p} "
            f"WHERE id = {p} AND status = 'pending'"
        ),
        "last": (
            "SELECT e.case_id, e.seq, e.hash FROM events e WHERE e.case_id IN ({ids}) AND "
            "e.seq = (SELECT max(l.seq) FROM events l WHERE l.case_id = e.case_id)"
        ),
    }


def _hash(row: tuple[Any, ...], prev: str) -> str:
    text = json.dumps([*(str(v) for v in row), prev], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _params(
    rows: Sequence[Firing],
    last: dict[int, tuple[int, str]],
    sqlite: bool,
    tag: str,
    with_render: bool,
) -> dict[str, list[tuple[Any, ...]]]:
    now = _stamp(FIRE_AT, sqlite)
    true = 1 if sqlite else True
    events: list[tuple[Any, ...]] = []
    mails: list[tuple[Any, ...]] = []
    for firing in rows:
        seq, prev = last.get(firing.case_id, (0, ""))
        timer_event = (
            firing.case_id,
            seq + 1,
            now,
            "timer",
            "expire:deadline",
            "waiting",
            TIMER_DATA,
            None,
        )
        first = _hash(timer_event, prev)
        moved = (firing.case_id, seq + 2, now, "transition", "expire", "done", "{}", 0)
        events += [(*timer_event, first), (*moved, _hash(moved, first))]
        subject, text, html = (
            render(firing) if with_render else (STATIC_SUBJECT, STATIC_TEXT, STATIC_HTML)
        )
        mails.append(
            (
                firing.case_id,
                MAIL_TO,
                "[]",
                subject,
                text,
                html,
                now,
                now,
                now,
                true,
                f"<{tag}.{firing.timer_id}@bench.local>",
                INTENT,
            )
        )
    return {
        "case": [(now, f.case_id) for f in rows],
        "event": events,
        "mail": mails,
        "timer": [(now, f.timer_id) for f in rows],
    }


def _claim_sql(p: str, skip_locked: bool) -> str:
    lock = " FOR UPDATE OF t SKIP LOCKED" if skip_locked else ""
    return (
        "SELECT t.id, t.case_id, m.code, m.name FROM timers t JOIN cases c ON c.id = t.case_id "
        "JOIN organisations m ON m.code = c.organisation_code WHERE t.status = 'pending' AND "
        f"t.due_at <= {p} ORDER BY t.due_at, t.id LIMIT {p}{lock}"
    )


def write(
    cur: Any, rows: Sequence[Firing], *, sqlite: bool, tag: str, with_render: bool = True
) -> None:
    """The writes (and renders) of ``rows`` inside the caller's transaction."""
    statements = _statements("?" if sqlite else "%s")
    marks = ", ".join(["?" if sqlite else "%s"] * len(rows))
    last = {
        int(case_id): (int(seq), hash_ or "")
        for case_id, seq, hash_ in cur.execute(
            statements["last"].format(ids=marks), [f.case_id for f in rows]
        ).fetchall()
    }
    params = _params(rows, last, sqlite, tag, with_render)
    for key in ("case", "event", "mail", "timer"):
        if len(params[key]) == 1:
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


def fire_one_sqlite(conn: sqlite3.Connection, firing: Firing, tag: str) -> None:
    """One firing in its own transaction (the peers' per-deadline job body)."""
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        write(cur, [firing], sqlite=True, tag=tag)
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


def due_sqlite(url: str) -> list[Firing]:
    """Every due timer of the prepared database, in the order the loops claim them."""
    conn = sqlite_connect(url)
    try:
        claim = _claim_sql("?", skip_locked=False)
        found = conn.execute(claim, (_stamp(FIRE_AT, True), 10**9)).fetchall()
        return [Firing(int(a), int(b), str(c), str(d)) for a, b, c, d in found]
    finally:
        conn.close()


def run_sqlite(
    url: str, batch: int, limit: int | None = None, *, with_render: bool = True
) -> tuple[int, float]:
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
            rows = [Firing(int(a), int(b), c, d) for a, b, c, d in cur.execute(claim, (now, take))]
            if not rows:
                cur.execute("COMMIT")
                break
            write(cur, rows, sqlite=True, tag="raw", with_render=with_render)
            cur.execute("COMMIT")
            fired += len(rows)
        return fired, time.perf_counter() - start
    finally:
        conn.close()


# ----------------------------------------------------------------------- PostgreSQL


def pg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(pg_dsn(url))


def fire_one_pg(conn: Any, firing: Firing, tag: str) -> None:
    with conn.transaction(), conn.cursor() as cur:
        write(cur, [firing], sqlite=False, tag=tag)


def due_pg(url: str) -> list[Firing]:
    with pg_connect(url) as conn:
        found = conn.execute(_claim_sql("%s", skip_locked=False), (FIRE_AT, 10**9)).fetchall()
    return [Firing(int(a), int(b), str(c), str(d)) for a, b, c, d in found]


def run_pg(
    url: str, batch: int, limit: int | None = None, *, with_render: bool = True
) -> tuple[int, float]:
    """Claim up to ``batch`` due timers with SKIP LOCKED and fire them in one transaction,
    until none is left (or ``limit`` fired); (fired, seconds)."""
    claim = _claim_sql("%s", skip_locked=True)
    fired = 0
    with pg_connect(url) as conn:
        start = time.perf_counter()
        while limit is None or fired < limit:
            take = batch if limit is None else min(batch, limit - fired)
            with conn.transaction(), conn.cursor() as cur:
                rows = [
                    Firing(int(a), int(b), c, d)
                    for a, b, c, d in cur.execute(claim, (FIRE_AT, take))
                ]
                if rows:
                    write(cur, rows, sqlite=False, tag="raw", with_render=with_render)
            if not rows:
                break
            fired += len(rows)
        return fired, time.perf_counter() - start
