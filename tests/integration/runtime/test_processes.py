"""Daemons as real processes: several on one PostgreSQL, kill -9 mid-batch, kill between
send and mark. Every timer fires exactly once; no message is ever lost."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import textwrap
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.notify.transports import SmtpTransport
from dk2020flow.runtime.delivery import deliver_batch
from dk2020flow.service import Service
from dk2020flow.settings import Settings
from dk2020flow.store.port import OutboxStatus
from dk2020flow.store.repository import SqlStore

from .conftest import (
    PING_TIMERS,
    T0,
    LogWatch,
    SmtpServer,
    assert_exactly_once,
    new_mail,
    open_ping_cases,
    progress,
    queue,
    timer_counts,
)

pytestmark = pytest.mark.slow
LATER = (T0 + dt.timedelta(hours=1)).isoformat()


def _env(url: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env.update(
        DK2020FLOW_DATABASE_URL=url,
        DK2020FLOW_MAIL_FOLDER=str(tmp / "mail"),
        DK2020FLOW_BATCH_SIZE="25",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _daemon(url: str, tmp: Path, *args: str, batch_size: str = "25") -> subprocess.Popen[str]:
    """A daemon subprocess, its JSON log on a pipe (read it: ``LogWatch.read``, or
    ``communicate``)."""
    return subprocess.Popen(
        ["dk2020flow", "scheduler", "run", "--now", LATER, "--log-format", "json", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(url, tmp, DK2020FLOW_BATCH_SIZE=batch_size),
        cwd=tmp,
    )


def _setup(url: str, cases: int) -> SqlStore:
    store = SqlStore(url)
    open_ping_cases(Service(store, clock=ManualClock(T0), settings=Settings()), cases)
    return store


@pytest.mark.postgres
def test_several_daemons_on_postgres_fire_every_timer_exactly_once(
    pg_url: str, tmp_path: Path
) -> None:
    cases = 50  # 1050 due timers
    store = _setup(pg_url, cases)
    try:
        expected = cases * PING_TIMERS
        assert timer_counts(store)["pending"] == expected  # thousands of due timers
        procs = [_daemon(pg_url, tmp_path, "--once") for _ in range(4)]
        outputs = [proc.communicate(timeout=240) for proc in procs]
        for proc, (_, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err
            assert "Traceback" not in err
        logs = "\n".join(err[-3000:] for _, err in outputs)
        try:
            assert_exactly_once(store, expected)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs}") from None
        # The work was shared: more than one daemon fired something.
        with store.read() as tx:
            shares = [int(d.stats["fired"]) for d in tx.daemons()]
        assert sum(shares) == expected
        assert sum(1 for n in shares if n) >= 2, shares
        # Every `hello` mail went out exactly once (the folder has one file per Message-ID).
        assert len(list((tmp_path / "mail").glob("*.eml"))) == cases
    finally:
        store.close()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_kill_9_mid_batch_then_restart_fires_exactly_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url"))
    # Many small batches (each its own commit), so the kill lands mid-run even on a fast machine.
    cases = 98  # every organisation: 2058 due timers
    store = _setup(url, cases)
    try:
        expected = cases * PING_TIMERS
        proc = _daemon(url, tmp_path, batch_size="5")
        log = LogWatch()
        assert proc.stderr is not None
        reader = log.read(proc.stderr)
        try:
            # Killed once its log says 50 firings were committed: mid-run, wherever it is.
            log.wait_for(lambda r: progress(r) >= 50, "50 firings")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=30)
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        counts = timer_counts(store)
        assert counts.get("pending", 0) > 0, "the daemon finished before the kill: no test"
        # Restart: the rolled-back batch fires now, once.
        again = subprocess.run(
            ["dk2020flow", "scheduler", "run", "--once", "--now", LATER],
            capture_output=True,
            text=True,
            env=_env(url, tmp_path),
            cwd=tmp_path,
            timeout=240,
            check=False,
        )
        assert again.returncode == 0, again.stderr
        assert_exactly_once(store, expected)
    finally:
        store.close()


KILLER = textwrap.dedent(
    """
    import datetime as dt, os, random, signal, sys
    from dk2020flow.notify.transports import SmtpTransport
    from dk2020flow.runtime.delivery import deliver_batch
    from dk2020flow.settings import Settings
    from dk2020flow.store.repository import SqlStore

    class DiesAfterSending(SmtpTransport):
        async def send(self, message, recipients):
            result = await super().send(message, recipients)
            os.kill(os.getpid(), signal.SIGKILL)  # between the send and its mark
            return result

    url, port, now = sys.argv[1], int(sys.argv[2]), dt.datetime.fromisoformat(sys.argv[3])
    deliver_batch(
        SqlStore(url),
        DiesAfterSending(host="127.0.0.1", port=port, timeout=5),
        now=now,
        settings=Settings(mail_lease_seconds=300),
        rng=random.Random(1),
        sender=("Test", "test@example.dk"),
    )
    """
)


def test_kill_between_send_and_mark_resends_with_the_same_message_id(
    sqlite_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    store = SqlStore(sqlite_url)
    try:
        (row_id,) = queue(store, new_mail())
        script = tmp_path / "killer.py"
        script.write_text(KILLER, encoding="utf-8")
        died = subprocess.run(
            [sys.executable, str(script), sqlite_url, str(smtp_server.port), T0.isoformat()],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert died.returncode == -signal.SIGKILL, died.stderr
        assert len(smtp_server.messages) == 1  # it was sent …
        with store.read() as tx:
            stuck = tx.outbox_message(row_id)
        assert stuck is not None
        assert stuck.status is OutboxStatus.SENDING  # … but never marked
        # After the lease, the next delivery sends it again: same Message-ID, never lost.
        result = deliver_batch(
            store,
            SmtpTransport(host="127.0.0.1", port=smtp_server.port, timeout=5),
            now=T0 + dt.timedelta(seconds=301),
            settings=Settings(mail_lease_seconds=300),
            rng=random.Random(2),
            sender=("Test", "test@example.dk"),
        )
        assert result.sent == 1
        ids = [
            message_from_bytes(raw, policy=policy.default)["Message-ID"]
            for _, raw in smtp_server.messages
        ]
        assert ids == [stuck.message_id, stuck.message_id]
        with store.read() as tx:
            done = tx.outbox_message(row_id)
        assert done is not None
        assert done.status is OutboxStatus.SENT
        assert done.attempts == 2
    finally:
        store.close()
