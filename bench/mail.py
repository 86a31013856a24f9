"""Benchmark 4: delivering the outbox to a local SMTP server (aiosmtpd, its own process).

The outbox is filled by real firings (rendered mail). ``deliver_batch`` with
``SmtpTransport`` sends each batch over one connection; beside it, the same
``deliver_batch`` with a transport that opens a connection for every message.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from common import Result, Workdir, free_port, phase, wait_until
from sqlalchemy import update
from workload import FIRE_AT, prepare

if TYPE_CHECKING:
    from dk2020flow.notify.message import MimeMessage

SECTION = "4. mail"
UNIT = "mails/s"


def _smtp_server(port: int) -> subprocess.Popen[bytes]:
    """aiosmtpd's ``Sink`` handler (accepts and drops) on loopback, in a child process."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Sink",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _ConnectionPerMessage:
    """The naive way: connect, send one message, quit, for every message."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        await self.inner.close()

    async def send(self, message: MimeMessage, *args: Any) -> Any:
        await self.inner.open()
        try:
            return await self.inner.send(message, *args)
        finally:
            await self.inner.close()


def _drain(url: str, transport: Any, expected: int) -> tuple[int, float]:
    """``deliver_batch`` until the outbox is empty; (sent, seconds)."""
    import random

    from dk2020flow.runtime.delivery import deliver_batch
    from dk2020flow.settings import Settings
    from dk2020flow.store.repository import SqlStore

    store = SqlStore(url)
    settings = Settings()
    sent = 0
    start = time.perf_counter()
    try:
        for _ in range(expected + 10):
            result = deliver_batch(
                store,
                transport,
                now=FIRE_AT,
                settings=settings,
                rng=random.Random(1),
                sender="Bench <bench@bench.example.dk>",
            )
            sent += result.sent
            if result.claimed == 0:
                break
        return sent, time.perf_counter() - start
    finally:
        store.close()


def _requeue(url: str) -> None:
    from dk2020flow.store import tables as t
    from dk2020flow.store.repository import SqlStore

    store = SqlStore(url)
    try:
        with store.engine.begin() as conn:
            conn.execute(
                update(t.outbox).values(
                    status="pending",
                    attempts=0,
                    sent_at=None,
                    lease_until=None,
                    next_attempt_at=FIRE_AT,
                )
            )
    finally:
        store.close()


def delivery(work: Workdir, n: int) -> list[Result]:
    from dk2020flow.clock import ManualClock
    from dk2020flow.notify.transports import SmtpTransport
    from dk2020flow.service import Service
    from dk2020flow.store.repository import SqlStore

    url = work.sqlite("mail")
    with phase(f"mail: queueing {n} rendered messages through real firings"):
        prepare(url, n)
        store = SqlStore(url)
        service = Service(store, clock=ManualClock(FIRE_AT))
        for _ in range(n):
            if service.fire_due(FIRE_AT).total == 0:
                break
        store.close()
    port = free_port()
    server = _smtp_server(port)
    results: list[Result] = []
    try:
        if not wait_until(lambda: _port_open(port), timeout=20):
            raise RuntimeError("the aiosmtpd server did not start")
        rates: dict[str, float] = {}
        for label, make in (
            (
                "reused connection per batch (deliver_batch + SmtpTransport)",
                lambda: SmtpTransport(host="127.0.0.1", port=port, starttls=False),
            ),
            (
                "one connection per message",
                lambda: _ConnectionPerMessage(
                    SmtpTransport(host="127.0.0.1", port=port, starttls=False)
                ),
            ),
        ):
            _requeue(url)
            with phase(f"mail: {label}"):
                sent, seconds = _drain(url, make(), n)
            rates[label] = sent / seconds
            note = "target: >= 1,000 mails/s" if label.startswith("reused") else ""
            if sent != n:
                note += f"; only {sent} of {n} sent"
            results.append(
                Result(
                    section=SECTION,
                    name=f"SMTP, {label}",
                    value=sent / seconds,
                    unit=UNIT,
                    note=note.lstrip("; "),
                )
            )
    finally:
        server.terminate()
        server.wait(10)
    return results
