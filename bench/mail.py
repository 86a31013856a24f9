"""Benchmark 4: delivering the outbox to a local SMTP server (aiosmtpd, its own process).

The outbox is filled by real firings (rendered mail). ``deliver_batch`` with
``SmtpTransport`` sends each batch over one connection; beside it, the same
``deliver_batch`` with a transport that opens a connection for every message, and the
peer of issue 17: a bare aiosmtplib client sending the same bytes (each message exactly
as ``SmtpTransport`` would hand it to ``sendmail``: the same sender, recipients, MAIL
options and MIME bytes, recorded once before the clock starts) over one connection to the
same aiosmtpd. The three run in interleaved rounds (the median of each, with its spread).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common import Result, Workdir, free_port, phase, wait_until
from sqlalchemy import update
from workload import FIRE_AT, prepare

if TYPE_CHECKING:
    from dk2020flow.notify.message import MimeMessage

SECTION = "4. mail"
UNIT = "mails/s"
REUSED = "reused connection per batch (deliver_batch + SmtpTransport)"
PER_MESSAGE = "one connection per message"
BARE = "bare aiosmtplib client, the same bytes, one connection"
ROUNDS = 3


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


@dataclass(frozen=True)
class _Sent:
    """One message as ``SmtpTransport`` hands it to ``aiosmtplib.SMTP.sendmail``."""

    sender: str
    recipients: list[str]
    data: bytes
    options: list[str]


class _Recorder:
    """A transport that records what ``SmtpTransport`` would send (bytes, envelope,
    MAIL options for a server offering 8BITMIME and SMTPUTF8, as aiosmtpd does) and
    sends nothing: the bare client's input."""

    reads_mime = True

    def __init__(self) -> None:
        self.sent: list[_Sent] = []

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, message: MimeMessage, recipients: list[str]) -> Any:
        from dk2020flow.notify.transports import SendResult

        utf8 = not (message.sender.isascii() and all(a.isascii() for a in recipients))
        options = (["SMTPUTF8"] if utf8 else []) + ["BODY=8BITMIME"]
        self.sent.append(
            _Sent(message.sender, list(recipients), message.as_bytes(utf8=utf8), options)
        )
        return SendResult(accepted=tuple(recipients))


async def _bare_send(port: int, messages: list[_Sent]) -> int:
    """The peer: one aiosmtplib connection, ``sendmail`` of each recorded message."""
    import aiosmtplib

    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await client.connect()
    sent = 0
    try:
        for m in messages:
            await client.sendmail(m.sender, m.recipients, m.data, mail_options=m.options)
            sent += 1
    finally:
        await client.quit()
    return sent


def _bare(port: int, messages: list[_Sent]) -> tuple[int, float]:
    start = time.perf_counter()
    sent = asyncio.run(_bare_send(port, messages))
    return sent, time.perf_counter() - start


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


def delivery(work: Workdir, n: int, rounds: int = ROUNDS) -> list[Result]:
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
    recorder = _Recorder()
    _requeue(url)
    _drain(url, recorder, n)  # the bytes the bare client sends: dk2020flow's, recorded
    port = free_port()
    server = _smtp_server(port)
    samples: dict[str, list[float]] = {REUSED: [], PER_MESSAGE: [], BARE: []}
    counts: dict[str, list[int]] = {label: [] for label in samples}
    try:
        if not wait_until(lambda: _port_open(port), timeout=20):
            raise RuntimeError("the aiosmtpd server did not start")
        for round_ in range(rounds):
            with phase(f"mail: round {round_ + 1} of {rounds} (reused, bare client, per message)"):
                for label in (REUSED, BARE, PER_MESSAGE):
                    if label == BARE:
                        sent, seconds = _bare(port, recorder.sent)
                    else:
                        transport = SmtpTransport(host="127.0.0.1", port=port, starttls=False)
                        _requeue(url)
                        sent, seconds = _drain(
                            url,
                            transport if label == REUSED else _ConnectionPerMessage(transport),
                            n,
                        )
                    samples[label].append(sent / seconds)
                    counts[label].append(sent)
    finally:
        server.terminate()
        server.wait(10)
    notes = {
        REUSED: "target: >= 1,000 mails/s and >= 80 % of the bare client",
        BARE: f"the {len(recorder.sent)} messages dk2020flow sends, recorded before the clock "
        "starts (sender, recipients, MAIL options, MIME bytes); connect … quit timed",
        PER_MESSAGE: "",
    }
    results = []
    for label, values in samples.items():
        note = notes[label]
        short = [c for c in counts[label] if c != n]
        if short:
            note += f"; only {short[0]} of {n} sent"
        results.append(
            Result(
                section=SECTION,
                name=f"SMTP, {label}",
                value=statistics.median(values),
                unit=UNIT,
                note=note.lstrip("; "),
                samples=values,
            )
        )
    return results
