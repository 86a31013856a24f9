"""A mail server that is down, slow, refusing or dropping connections, under a batch of mail.

Delivery runs in-process against a real aiosmtpd server on loopback, with the outbox on a real
database; a ManualClock is moved past ``next_attempt_at`` (nobody sleeps waiting for a
back-off). After each fault: every message is ``sent`` (or ``dead`` with the reason when the
server refused it for good), nothing is lost, and a message arrives twice only when the server
accepted it but the answer never reached us — with the same Message-ID (at least once)."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from dk2020flow.clock import ManualClock
from dk2020flow.notify.transports import SmtpTransport
from dk2020flow.runtime.delivery import DeliveryResult, deliver_batch
from dk2020flow.settings import Settings
from dk2020flow.store.port import OutboxMessage, OutboxStatus
from dk2020flow.store.repository import SqlStore
from integration.runtime.conftest import Recorder, SmtpServer, free_port, new_mail, queue

from .conftest import T0

BATCH = 30
SENDER = ("DK2020", "dk2020@concito.example.dk")
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>]+>)", re.IGNORECASE | re.MULTILINE)


@dataclass
class FaultyRecorder(Recorder):
    """The runtime tests' recording handler, made slow or made to drop connections."""

    delay: float = 0.0
    drop_before: set[int] = field(default_factory=set)
    """DATA calls (1-based) on which the server hangs up before keeping the message."""
    drop_after: set[int] = field(default_factory=set)
    """DATA calls on which it keeps the message, then hangs up before answering 250."""
    calls: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.calls in self.drop_before:
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 connection dropped"
        reply = await super().handle_DATA(server, session, envelope)
        if self.calls in self.drop_after:
            assert server.transport is not None
            server.transport.close()
        return reply


@pytest.fixture
def store(sqlite_url: str) -> Any:
    sql_store = SqlStore(sqlite_url)
    try:
        yield sql_store
    finally:
        sql_store.close()


@pytest.fixture
def settings() -> Settings:
    return Settings(
        mail_batch_size=100,
        mail_max_attempts=6,
        mail_backoff_seconds=60,
        mail_backoff_max_seconds=3600,
        mail_lease_seconds=300,
    )


def _queue_batch(store: SqlStore, count: int = BATCH) -> list[int]:
    return queue(
        store,
        *(
            new_mail(((f"Kontakt {n}", f"kontakt{n}@kommune.example.dk"),), subject=f"Besked {n}")
            for n in range(count)
        ),
    )


def _deliver(
    store: SqlStore, port: int, clock: ManualClock, settings: Settings, *, timeout: float = 5
) -> DeliveryResult:
    return deliver_batch(
        store,
        SmtpTransport(host="127.0.0.1", port=port, timeout=timeout, starttls=False),
        now=clock.now(),
        settings=settings,
        rng=random.Random(7),
        sender=SENDER,
    )


def _rows(store: SqlStore, ids: list[int]) -> list[OutboxMessage]:
    with store.read() as tx:
        found = [tx.outbox_message(i) for i in ids]
    assert all(m is not None for m in found)
    return [m for m in found if m is not None]


def _past_every_retry(clock: ManualClock, rows: list[OutboxMessage]) -> None:
    """Move the injected clock just past the latest next_attempt_at."""
    latest = max(m.next_attempt_at for m in rows)
    assert latest > clock.now()
    clock.set(latest + dt.timedelta(seconds=1))


def _received(server: SmtpServer) -> Counter[str]:
    ids: Counter[str] = Counter()
    for _, raw in list(server.messages):
        found = MESSAGE_ID.search(raw)
        assert found is not None
        ids[found.group(1).decode()] += 1
    return ids


def _assert_all_sent_once(store: SqlStore, ids: list[int], server: SmtpServer) -> Counter[str]:
    rows = _rows(store, ids)
    assert {m.status for m in rows} == {OutboxStatus.SENT}, [(m.id, m.status) for m in rows]
    received = _received(server)
    assert set(received) == {m.message_id for m in rows}  # nothing lost, nothing foreign
    return received


def test_server_down_for_a_while_then_up(store: SqlStore, settings: Settings) -> None:
    ids = _queue_batch(store)
    port = free_port()  # nobody listens yet
    clock = ManualClock(T0)
    for attempt in (1, 2, 3):
        result = _deliver(store, port, clock, settings)
        assert (result.claimed, result.retried, result.sent, result.dead) == (BATCH, BATCH, 0, 0)
        rows = _rows(store, ids)
        assert {m.status for m in rows} == {OutboxStatus.PENDING}
        assert {m.attempts for m in rows} == {attempt}
        assert all("cannot connect" in m.last_error for m in rows)
        # Not due again before its back-off: nothing is claimed at the same instant.
        assert _deliver(store, port, clock, settings).claimed == 0
        _past_every_retry(clock, rows)
    server = SmtpServer(port)
    server.start()
    try:
        result = _deliver(store, port, clock, settings)
        assert result.sent == BATCH
        received = _assert_all_sent_once(store, ids, server)
        assert set(received.values()) == {1}
        assert {m.attempts for m in _rows(store, ids)} == {4}
    finally:
        server.stop()


def test_a_slow_server_within_the_timeout_gets_everything_once(
    store: SqlStore, settings: Settings
) -> None:
    ids = _queue_batch(store, 8)
    server = SmtpServer(free_port())
    server.handler = FaultyRecorder(delay=0.15)  # each answer 150 ms late; the timeout is 2 s
    server.start()
    try:
        result = _deliver(store, server.port, ManualClock(T0), settings, timeout=2)
        assert result.sent == 8
        received = _assert_all_sent_once(store, ids, server)
        assert set(received.values()) == {1}
        assert {m.attempts for m in _rows(store, ids)} == {1}
    finally:
        server.stop()


def test_a_server_slower_than_the_timeout_is_retried(store: SqlStore, settings: Settings) -> None:
    ids = _queue_batch(store, 2)
    server = SmtpServer(free_port())
    handler = FaultyRecorder(delay=1.0)
    server.handler = handler
    server.start()
    clock = ManualClock(T0)
    try:
        result = _deliver(store, server.port, clock, settings, timeout=0.3)
        assert result.retried == 2
        rows = _rows(store, ids)
        assert all("did not answer in time" in m.last_error for m in rows), rows
        handler.delay = 0.0
        _past_every_retry(clock, rows)
        assert _deliver(store, server.port, clock, settings).sent == 2
        received = _assert_all_sent_once(store, ids, server)
        # The slow server may still have kept a copy it accepted after we gave up:
        # then it arrives twice, recognisably (same Message-ID) — at least once.
        assert all(1 <= n <= 2 for n in received.values())
    finally:
        server.stop()


def test_refused_recipients_are_parked_dead_with_the_reason_and_the_rest_goes_out(
    store: SqlStore, settings: Settings
) -> None:
    server = SmtpServer(free_port())
    server.handler.refuse_rcpt = {
        "gone@kommune.example.dk": "550 5.1.1 <gone@kommune.example.dk>: no such user"
    }
    server.start()
    try:
        good = _queue_batch(store, 10)
        (only_refused,) = queue(store, new_mail((("Væk", "gone@kommune.example.dk"),)))
        (partly,) = queue(
            store,
            new_mail(
                (("Kontakt", "kontakt@kommune.example.dk"),),
                cc=(("Væk", "gone@kommune.example.dk"),),
            ),
        )
        result = _deliver(store, server.port, ManualClock(T0), settings)
        assert (result.sent, result.dead, result.retried) == (11, 1, 0)
        dead, sent = _rows(store, [only_refused, partly])
        assert dead.status is OutboxStatus.DEAD
        assert "550" in dead.last_error
        assert "gone@kommune.example.dk" in dead.last_error
        assert sent.status is OutboxStatus.SENT
        assert "gone@kommune.example.dk: 550" in sent.last_error  # the refusal is noted
        received = _received(server)
        assert dead.message_id not in received
        assert {m.message_id for m in _rows(store, [*good, partly])} == set(received)
        assert set(received.values()) == {1}
    finally:
        server.stop()


def test_connections_dropped_mid_batch(store: SqlStore, settings: Settings) -> None:
    ids = _queue_batch(store)
    server = SmtpServer(free_port())
    # DATA 5: dropped before the server kept it (the client reconnects once and resends);
    # DATA 11 and 12: dropped twice in a row, so that message waits for its retry;
    # DATA 20: kept, but the 250 never reaches the client (it will be sent again).
    handler = FaultyRecorder(drop_before={5, 11, 12}, drop_after={20})
    server.handler = handler
    server.start()
    clock = ManualClock(T0)
    try:
        first = _deliver(store, server.port, clock, settings)
        assert first.claimed == BATCH
        assert first.dead == 0
        assert first.retried >= 1
        assert first.sent + first.retried == BATCH
        waiting = [m for m in _rows(store, ids) if m.status is OutboxStatus.PENDING]
        assert waiting
        assert all("closed the connection" in m.last_error for m in waiting)
        _past_every_retry(clock, waiting)
        second = _deliver(store, server.port, clock, settings)
        assert second.sent == len(waiting)
        received = _assert_all_sent_once(store, ids, server)
        twice = [m for m, n in received.items() if n > 1]
        # Only the message whose 250 was lost may arrive twice, with the same Message-ID.
        assert len(twice) <= 1
        assert all(n <= 2 for n in received.values())
    finally:
        server.stop()
