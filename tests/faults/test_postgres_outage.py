"""PostgreSQL goes away under a running daemon, without restarting the shared server.

Two faults, one after the other, while `dk2020flow scheduler run` fires 400 timers and sends
400 messages:

1. its connections are killed (``pg_terminate_backend``) again and again, mid-work;
2. the database refuses every connection for a while (``ALLOW_CONNECTIONS false``) and the
   daemon's connections are killed, then it is opened again.

The daemon must keep running (no exit), log the outage as ``error`` lines, reconnect by itself
and catch up; every timer still fires exactly once and every message arrives (at least once,
with its own Message-ID)."""

from __future__ import annotations

import re
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore
from integration.runtime.conftest import (
    SmtpServer,
    caught_up,
    firings_per_timer,
    free_port,
    log_actions,
    progress,
)

from .conftest import CRASH, CRASH_TIMERS, T0, Daemon, clean_env, open_cases, read_conn

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CASES = 20
APP = "dk2020flow-fault-daemon"
TERMINATIONS = 6
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>]+>)", re.IGNORECASE | re.MULTILINE)


@contextmanager
def _admin(url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    admin = make_url(url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(
        admin.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
    ) as conn:
        yield conn


def _terminate(url: str) -> int:
    """Kill every connection of the daemon (found by its application_name); how many."""
    with _admin(url) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (APP,),
        ).fetchall()
    return len(rows)


def _allow_connections(url: str, allow: bool) -> None:
    name = make_url(url).database
    with _admin(url) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(str(name)), sql.Literal(allow)
            )
        )


def _done(store: SqlStore) -> tuple[int, int]:
    with read_conn(store) as conn:
        fired = conn.execute(
            select(func.count()).select_from(t.timers).where(t.timers.c.status == "fired")
        ).scalar_one()
        sent = conn.execute(
            select(func.count()).select_from(t.outbox).where(t.outbox.c.status == "sent")
        ).scalar_one()
    return int(fired), int(sent)


def test_the_daemon_survives_killed_connections_and_a_closed_database(
    pg_url: str, tmp_path: Path, daemons: list[Daemon]
) -> None:
    open_cases(pg_url, CRASH, CASES)
    timers = mails = CASES * CRASH_TIMERS
    server = SmtpServer(free_port())
    server.start()
    store = SqlStore(pg_url)
    daemon_url = f"{pg_url}?application_name={APP}"
    env = clean_env(
        DK2020FLOW_DATABASE_URL=daemon_url,
        DK2020FLOW_MAIL_TRANSPORT="smtp",
        DK2020FLOW_SMTP_HOST="127.0.0.1",
        DK2020FLOW_SMTP_PORT=str(server.port),
        DK2020FLOW_SMTP_STARTTLS="false",
        DK2020FLOW_BATCH_SIZE="20",
        DK2020FLOW_MAIL_BATCH_SIZE="20",
        DK2020FLOW_SWEEP_SECONDS="1",  # a failed pass is tried again within a second
        DK2020FLOW_MAIL_LEASE_SECONDS="2",  # a message whose mark was lost goes out again soon
    )
    try:
        daemon = Daemon(["--now", T0.replace(hour=12).isoformat()], env, tmp_path)
        daemons.append(daemon)
        # 1. Connections killed mid-work, again and again (firing, then delivering).
        killed = 0
        step = (timers + mails) // (TERMINATIONS + 2)
        for number in range(1, TERMINATIONS + 1):
            daemon.log.wait_for(lambda r, n=number: progress(r) >= n * step, f"progress {number}")
            killed += _terminate(pg_url)
            assert daemon.proc.poll() is None, daemon.text()[-3000:]
        assert killed >= TERMINATIONS
        # 2. The database refuses connections for a while.
        _allow_connections(pg_url, allow=False)
        try:
            errors_before = len(log_actions(daemon.log.records, "error"))
            _terminate(pg_url)
            # Bounded wait for the daemon to meet the closed database twice (retries 1 s apart).
            daemon.log.wait_for(
                lambda r: len(log_actions(r, "error")) >= errors_before + 2, "two errors", 60
            )
            assert daemon.proc.poll() is None, daemon.text()[-3000:]
        finally:
            _allow_connections(pg_url, allow=True)
        # It reconnects by itself and catches up: a pass finds nothing left to do.
        since = len(daemon.log.records)
        daemon.log.wait_for(lambda r: caught_up(r, since), "the daemon to catch up", 180)
        assert _done(store) == (timers, mails)
        assert daemon.proc.poll() is None
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0, daemon.text()[-3000:]  # its log read to the end
        log = daemon.text()
        assert "Traceback" not in log, log[-5000:]
        assert "unexpected error" not in log, log[-5000:]
        errors = log_actions(daemon.log.records, "error")
        assert errors, "the outage was not logged"
        print(*errors, sep="\n")

        per_timer = firings_per_timer(store)
        assert len(per_timer) == timers
        assert set(per_timer.values()) == {1}
        with read_conn(store) as conn:
            rows = conn.execute(select(t.outbox.c.message_id, t.outbox.c.status)).all()
        assert {s for _, s in rows} == {"sent"}
        received: Counter[str] = Counter()
        for _, raw in list(server.messages):
            found = MESSAGE_ID.search(raw)
            assert found is not None
            received[found.group(1).decode()] += 1
        assert set(received) == {m for m, _ in rows}
        duplicates = sum(n - 1 for n in received.values())
        # A send whose mark was cut off goes out again: at most a batch per outage.
        assert duplicates <= (TERMINATIONS + 1) * 20
        print(
            f"\npostgres outage: {killed} connections killed in {TERMINATIONS} rounds, "
            f"{len(errors)} error lines, {duplicates} duplicate deliveries"
        )
    finally:
        _allow_connections(pg_url, allow=True)
        store.close()
        server.stop()
