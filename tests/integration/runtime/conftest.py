"""Helpers for the daemon and delivery tests: the ``ping`` workflow, counts, an SMTP server."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, select

from dk2020flow.clock import ManualClock
from dk2020flow.service import Service
from dk2020flow.settings import Settings
from dk2020flow.store import tables as t
from dk2020flow.store.db import READ_ONLY_OPTION
from dk2020flow.store.port import NewMail
from dk2020flow.store.repository import SqlStore

DATA = Path(__file__).parent / "data"
PING = DATA / "workflows" / "ping.yaml"
PING_TIMERS = 21  # t01 … t20 (PT1M … PT20M after opening) and hello (PT30M, one mail)
T0 = dt.datetime(2021, 3, 1, 9, 0, tzinfo=dt.UTC)


def open_ping_cases(service: Service, count: int | None = None) -> int:
    """Load the ping workflow and open a case for ``count`` municipalities (all by default)."""
    service.load_workflow(PING)
    with service.store.read() as tx:
        municipalities = tx.municipalities()
    chosen = municipalities if count is None else municipalities[:count]
    for municipality in chosen:
        service.open_case("ping", municipality.code, actor="test", role="secretariat")
    return len(chosen)


def read_conn(store: SqlStore) -> Any:
    """A connection that reads without SQLite's BEGIN IMMEDIATE (a daemon may be writing)."""
    return store.engine.connect().execution_options(**{READ_ONLY_OPTION: True})


def timer_counts(store: SqlStore) -> dict[str, int]:
    """Timer rows by status, read without SQLite's write lock (a daemon may be writing:
    waiting for its lock would see its progress late)."""
    tm = t.timers.c
    with read_conn(store) as conn:
        return {
            status: int(count)
            for status, count in conn.execute(select(tm.status, func.count()).group_by(tm.status))
        }


def firings_per_timer(store: SqlStore) -> dict[tuple[int, str], int]:
    """How many TIMER events each (case, timer firing) has in the log."""
    e = t.events.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(e.case_id, e.trigger, func.count())
            .where(e.kind == "timer")
            .group_by(e.case_id, e.trigger)
        )
        return {(int(case_id), str(trigger)): int(n) for case_id, trigger, n in rows}


def assert_exactly_once(store: SqlStore, expected: int) -> None:
    counts = timer_counts(store)
    assert counts.get("pending", 0) == 0, counts
    assert counts.get("failed", 0) == 0, counts
    assert counts.get("fired", 0) == expected, counts
    per_timer = firings_per_timer(store)
    doubled = {key: n for key, n in per_timer.items() if n != 1}
    assert not doubled, f"fired more than once: {list(doubled.items())[:5]}"
    assert len(per_timer) == expected


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[SqlStore]:
    store = SqlStore(sqlite_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def settings() -> Settings:
    return Settings(
        batch_size=50,
        mail_backoff_seconds=60,
        mail_backoff_max_seconds=3600,
        mail_max_attempts=4,
        mail_lease_seconds=300,
    )


@pytest.fixture
def service(sqlite_store: SqlStore, clock: ManualClock, settings: Settings) -> Service:
    return Service(sqlite_store, clock=clock, settings=settings)


def new_mail(
    to: tuple[tuple[str, str], ...] = (("Kontakt", "kontakt@aarhus.example.dk"),),
    *,
    now: dt.datetime = T0,
    cc: tuple[tuple[str, str], ...] = (),
    ics: str | None = None,
    subject: str = "Påmindelse: svar senest 31. august",
) -> NewMail:
    return NewMail(
        case_id=None,
        template="decision_reminder",
        language="da",
        to=to,
        cc=cc,
        subject=subject,
        text="Kære kontaktperson\n\nHusk at svare.\n",
        html="<p>Kære kontaktperson</p><p>Husk at <b>svare</b>.</p>",
        ics=ics,
        not_before=now,
        created_at=now,
    )


def queue(store: SqlStore, *mails: NewMail) -> list[int]:
    with store.transaction() as tx:
        return tx.queue_mail(list(mails))


ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//dk2020flow//test//EN\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:deadline-1-reply_deadline@dk2020flow\r\nDTSTAMP:20200819T100000Z\r\n"
    "DTSTART:20200831T215900Z\r\nSUMMARY:Svarfrist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


# ----------------------------------------------------------------------------- SMTP


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps what it receives and refuses what it is told to."""

    messages: list[tuple[list[str], bytes]] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    """address -> SMTP reply (e.g. "550 5.1.1 no such user")."""
    data_reply: str | None = None
    """A reply to DATA instead of 250 (e.g. "554 5.7.1 rejected")."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        content = envelope.original_content or b""
        self.messages.append((list(envelope.rcpt_tos), bytes(content)))
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a loopback port, startable and stoppable."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.handler = Recorder()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[tuple[list[str], bytes]]:
        return self.handler.messages


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)
