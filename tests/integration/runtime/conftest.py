"""Helpers for the daemon and delivery tests: the ``ping`` workflow, counts, an SMTP server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
    """Load the ping workflow and open a case for ``count`` organisations (all by default)."""
    service.load_workflow(PING)
    with service.store.read() as tx:
        organisations = tx.organisations()
    chosen = organisations if count is None else organisations[:count]
    for organisation in chosen:
        service.open_case("ping", organisation.code, actor="test", role="secretariat")
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


# ------------------------------------------------------------- the daemon's log


Records = list[dict[str, Any]]


class LogWatch:
    """A daemon's log records as they arrive; a test waits for one that says what it needs.

    The daemon writes an ``action`` line after each step it has committed (``started``,
    ``fired`` with its count, ``delivered`` per message, ``tick`` with ``next_due``, ``error``,
    ``stopped`` …): waiting on those is waiting on the daemon itself, with no sleep and no
    polling. The timeout is only the bound after which the test fails."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.lines: list[str] = []
        self.records: Records = []
        self.ended = False

    def add_line(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            if line.startswith("{"):
                self.records.append(json.loads(line))
            self._changed.notify_all()

    def add_record(self, record: dict[str, Any]) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def end(self) -> None:
        """The stream closed (the process exited): nothing more will come."""
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def read(self, stream: Iterable[str]) -> threading.Thread:
        """Collect the lines of ``stream`` (a child's stderr) on a thread, until it closes."""

        def run() -> None:
            try:
                for line in stream:
                    self.add_line(line)
            finally:
                self.end()

        reader = threading.Thread(target=run, daemon=True)
        reader.start()
        return reader

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(
        self, holds: Callable[[Records], bool], what: str, timeout: float = 120
    ) -> Records:
        """Block until ``holds(records)``; fail if the log ends first or after ``timeout`` s."""
        give_up = time.monotonic() + timeout
        with self._changed:
            while not holds(self.records):
                left = give_up - time.monotonic()
                if self.ended or left <= 0:
                    why = "the log ended" if self.ended else f"{timeout:.0f} s passed"
                    tail = self.text()[-3000:] or repr(self.records[-5:])
                    raise AssertionError(f"{why} before {what}:\n{tail}")
                self._changed.wait(left)
            return list(self.records)


def log_actions(records: Records, action: str) -> Records:
    return [r for r in records if r.get("action") == action]


def progress(records: Records) -> int:
    """Timers fired plus messages delivered, by the daemon's own account (each line is
    written after its transaction committed)."""
    return sum(int(r.get("fired", 0)) for r in log_actions(records, "fired")) + len(
        log_actions(records, "delivered")
    )


def caught_up(records: Records, since: int = 0) -> bool:
    """A pass after ``since`` records found nothing due at all (no timer, no message, no
    lease of a message being sent): the daemon has done everything."""
    return any(r["next_due"] is None for r in log_actions(records[since:], "tick"))


class WatchHandler(logging.Handler):
    """The in-process daemon's log records into a ``LogWatch``."""

    def __init__(self, watch: LogWatch) -> None:
        super().__init__(logging.DEBUG)
        self.watch = watch

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", None) or {}
        self.watch.add_record({"action": getattr(record, "action", "log"), **fields})


@pytest.fixture
def log_watch() -> Iterator[LogWatch]:
    """The records of the ``dk2020flow`` loggers (down to DEBUG) while the test runs."""
    watch = LogWatch()
    handler = WatchHandler(watch)
    root = logging.getLogger("dk2020flow")
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield watch
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


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
