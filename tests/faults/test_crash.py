"""kill -9 of `dk2020flow scheduler run` at seeded-random points of a run with a thousand due
timers and a thousand queued messages, on SQLite and on PostgreSQL.

After the last restart: every timer fired exactly once (one TIMER event and one ``ping``
transition per firing), every message was delivered at least once with the Message-ID of its
row (counted at a real SMTP server), nothing is lost, and every case's event log replays to its
state (DESIGN.md invariants 1-4)."""

from __future__ import annotations

import datetime as dt
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Table, func, select

from dk2020flow.clock import ManualClock
from dk2020flow.engine.replay import replay
from dk2020flow.runtime.delivery import MARK_EVERY
from dk2020flow.service import Service
from dk2020flow.settings import Settings
from dk2020flow.store import tables as t
from dk2020flow.store.port import CaseFilter
from dk2020flow.store.repository import SqlStore
from integration.runtime.conftest import SmtpServer, firings_per_timer, free_port, progress

from .conftest import CRASH, CRASH_TIMERS, T0, Cli, Daemon, clean_env, open_cases, read_conn

pytestmark = pytest.mark.slow

CASES = 40  # x 20 timers: 800 due timers, 800 messages
KILLS = 10
MAIL_BATCH = 40
SEED = 20200819
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>]+>)", re.IGNORECASE | re.MULTILINE)


def _counts(store: SqlStore, table: Table) -> Counter[str]:
    """Rows by status, read without taking SQLite's write lock (the daemon keeps writing)."""
    status = table.c.status
    with read_conn(store) as conn:
        rows = conn.execute(select(status, func.count()).group_by(status))
        return Counter({str(s): int(n) for s, n in rows})


def _progress(store: SqlStore) -> int:
    return _counts(store, t.timers)["fired"] + _counts(store, t.outbox)["sent"]


def _received_ids(server: SmtpServer) -> Counter[str]:
    ids: Counter[str] = Counter()
    for _, raw in list(server.messages):
        found = MESSAGE_ID.search(raw)
        assert found is not None, raw[:500]
        ids[found.group(1).decode()] += 1
    return ids


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_kill_9_at_random_points_loses_and_doubles_nothing(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, daemons: list[Daemon]
) -> None:
    url = str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url"))
    assert open_cases(url, CRASH, CASES) == CASES
    timers, mails = CASES * CRASH_TIMERS, CASES * CRASH_TIMERS
    server = SmtpServer(free_port())
    server.start()
    store = SqlStore(url)
    rng = random.Random(f"{SEED}-{backend}")
    env = clean_env(
        DK2020FLOW_DATABASE_URL=url,
        DK2020FLOW_MAIL_TRANSPORT="smtp",
        DK2020FLOW_SMTP_HOST="127.0.0.1",
        DK2020FLOW_SMTP_PORT=str(server.port),
        DK2020FLOW_SMTP_STARTTLS="false",
        DK2020FLOW_SMTP_TIMEOUT="10",
        DK2020FLOW_BATCH_SIZE="50",
        DK2020FLOW_MAIL_BATCH_SIZE=str(MAIL_BATCH),
    )
    try:
        total = timers + mails
        points = sorted(rng.sample(range(1, total), KILLS))
        kills: list[dict[str, int]] = []
        for number, point in enumerate(points, start=1):
            # Each restart comes an hour later, so leases of messages left `sending` expired.
            now = (T0 + dt.timedelta(hours=number)).isoformat()
            # Each run gets somewhere before its kill: past its point, and past where it began.
            before = _progress(store)
            target = max(point, before + 1)
            daemon = Daemon(["--now", now], env, tmp_path)
            daemons.append(daemon)
            # Killed as soon as its log says it committed enough work (each `fired` and
            # `delivered` line follows its commit): the daemon is then in its next
            # transaction or send, wherever the seeded point put it. No sleep, no polling.
            need = target - before
            daemon.log.wait_for(lambda r, n=need: progress(r) >= n, f"progress {target}")
            assert daemon.proc.poll() is None, daemon.text()
            daemon.kill()
            assert daemon.proc.returncode == -9
            assert "Traceback" not in daemon.text(), daemon.text()
            counts, outbox = _counts(store, t.timers), _counts(store, t.outbox)
            kills.append(
                {
                    "fired": counts.get("fired", 0),
                    "pending": counts.get("pending", 0),
                    "sent": outbox["sent"],
                    "sending": outbox["sending"],
                }
            )
        # The kills landed mid-run (the assertion guards the test itself): work was left over, and some landed mid-delivery.
        assert sum(1 for k in kills if k["pending"] or k["sent"] < mails) >= KILLS - 2, kills
        # The final restart: everything due, every expired lease, in one go.
        final = (T0 + dt.timedelta(hours=KILLS + 2)).isoformat()
        Cli(tmp_path, **{**env, "DK2020FLOW_MAIL_BATCH_SIZE": "10000"})(
            "scheduler", "run", "--once", "--now", final, timeout=300
        )

        # Every timer fired exactly once …
        counts = _counts(store, t.timers)
        assert counts == Counter(fired=timers), counts
        per_timer = firings_per_timer(store)
        assert len(per_timer) == timers
        assert set(per_timer.values()) == {1}, [k for k, n in per_timer.items() if n != 1][:5]
        # … and fired its transition exactly once.
        e = t.events.c
        with store.engine.connect() as conn:
            pings = conn.execute(
                select(e.case_id, func.count())
                .where(e.kind == "transition", e.trigger == "ping")
                .group_by(e.case_id)
            ).all()
            rows = conn.execute(select(t.outbox.c.message_id, t.outbox.c.status)).all()
        assert len(pings) == CASES
        assert {n for _, n in pings} == {CRASH_TIMERS}
        # Every message sent, at least once, with its own Message-ID; nothing else arrived.
        assert len(rows) == mails
        assert {s for _, s in rows} == {"sent"}
        received = _received_ids(server)
        assert set(received) == {m for m, _ in rows}
        duplicates = sum(n - 1 for n in received.values())
        # At least once: a kill between sends and their marks resends what was sent but not
        # marked. runtime/delivery.py marks sent messages every MARK_EVERY sends (and at the
        # end of a batch), so that is at most MARK_EVERY messages per kill: never more.
        assert duplicates <= KILLS * MARK_EVERY, received.most_common(3)
        # The log replays to every case's state.
        service = Service(store, clock=ManualClock(T0), settings=Settings())
        workflow = service.compiled_latest("crash").workflow
        with store.read() as tx:
            for case_id in tx.case_ids(CaseFilter(workflow="crash")):
                case = tx.load_case(case_id)
                rebuilt = replay(workflow, [ev.record for ev in tx.history(case_id)])
                assert (rebuilt.state, rebuilt.epoch, rebuilt.data) == (
                    case.state,
                    case.epoch,
                    case.data,
                ), case_id
        print(f"\n{backend}: kills at {kills}; {duplicates} duplicate deliveries")
    finally:
        store.close()
        server.stop()
