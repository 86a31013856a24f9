"""The daemon driven by an injected ManualClock: nothing here sleeps on a deadline."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.notify.transports import FolderTransport
from dk2020flow.runtime.daemon import Daemon, DaemonLock, DaemonLockedError, sqlite_file
from dk2020flow.runtime.logs import LogFormat, configure_logging
from dk2020flow.service import Service
from dk2020flow.settings import Settings
from dk2020flow.store.port import CaseFilter, OutboxStatus
from dk2020flow.store.repository import SqlStore

from .conftest import (
    PING,
    PING_TIMERS,
    T0,
    LogWatch,
    assert_exactly_once,
    caught_up,
    log_actions,
    open_ping_cases,
    timer_counts,
)

CASES = 12
MINI = Path(__file__).parents[2] / "data" / "mini" / "workflows" / "mini.yaml"
CHAIN = PING.parent / "chain.yaml"


@pytest.fixture
def mail_dir(tmp_path: Path) -> Path:
    return tmp_path / "mail"


def make_daemon(
    service: Service, clock: ManualClock, settings: Settings, mail_dir: Path, *, once: bool = False
) -> Daemon:
    return Daemon(
        service,
        FolderTransport(mail_dir),
        clock=clock,
        settings=settings,
        once=once,
        sender=("Ping", "ping@example.dk"),
    )


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger("dk2020flow")
    before = (root.level, root.propagate)
    handler = configure_logging(LogFormat.JSON, stream=stream, secrets=["s3cret-pass"])
    try:
        yield stream
    finally:
        # Put the logger back as it was: later tests (pytest's caplog) read the propagated records.
        root.removeHandler(handler)
        root.setLevel(before[0])
        root.propagate = before[1]


def actions(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_once_fires_everything_due_exactly_once(
    service: Service,
    sqlite_store: SqlStore,
    clock: ManualClock,
    settings: Settings,
    mail_dir: Path,
    log_lines: io.StringIO,
) -> None:
    open_ping_cases(service, CASES)
    clock.advance(dt.timedelta(hours=1))
    daemon = make_daemon(service, clock, settings, mail_dir, once=True)
    assert daemon.run() == 0
    assert_exactly_once(sqlite_store, CASES * PING_TIMERS)
    # batch_size 50 < 252 due: the dispatch loop went on while full batches came back.
    lines = actions(log_lines)
    tick = next(line for line in lines if line["action"] == "tick")
    assert tick["fired"] == CASES * PING_TIMERS
    assert int(str(tick["batches"])) >= CASES * PING_TIMERS // settings.batch_size
    assert tick["delivered"] == CASES  # the `hello` mail of each case, to the folder
    assert len(list(mail_dir.glob("*.eml"))) == CASES
    assert {"started", "heartbeat", "tick", "fired", "delivered", "stopped"} <= {
        str(line["action"]) for line in lines
    }
    # A second run at the same instant does nothing more.
    again = make_daemon(service, clock, settings, mail_dir, once=True)
    assert again.run() == 0
    assert_exactly_once(sqlite_store, CASES * PING_TIMERS)
    with sqlite_store.read() as tx:
        daemons = {d.id: d for d in tx.daemons()}
    assert daemons[again.id].stopped_at is not None
    assert daemons[again.id].stats["fired"] == 0
    assert daemons[daemon.id].stats["fired"] == CASES * PING_TIMERS


def test_once_goes_on_with_work_its_last_batch_made_due(
    service: Service,
    sqlite_store: SqlStore,
    clock: ManualClock,
    settings: Settings,
    mail_dir: Path,
) -> None:
    # Each firing of `move_on` enters a state whose deadline has passed: the pass's one
    # (short) batch leaves as many timers due now as it fired. `--once` fires them too.
    service.load_workflow(CHAIN)
    with sqlite_store.read() as tx:
        codes = [m.code for m in tx.organisations()[:CASES]]
    for code in codes:
        service.open_case("chain", code, actor="test", role="secretariat")
    clock.advance(dt.timedelta(hours=1))
    assert settings.batch_size > CASES  # one short batch
    assert make_daemon(service, clock, settings, mail_dir, once=True).run() == 0
    assert timer_counts(sqlite_store) == {"fired": 2 * CASES}
    with sqlite_store.read() as tx:
        states = {case.state for case in tx.cases(CaseFilter(workflow="chain"))}
    assert states == {"done"}


def test_nothing_fires_before_its_time_and_next_due_is_the_earliest(
    service: Service, sqlite_store: SqlStore, clock: ManualClock, settings: Settings, mail_dir: Path
) -> None:
    open_ping_cases(service, 3)
    daemon = make_daemon(service, clock, settings, mail_dir)
    first = daemon.tick()
    assert first.dispatch.total == 0
    assert first.next_due == T0 + dt.timedelta(minutes=1)  # t01
    clock.advance(dt.timedelta(minutes=5))
    second = daemon.tick()
    assert second.dispatch.fired == 3 * 5  # t01 … t05
    assert second.next_due == T0 + dt.timedelta(minutes=6)
    clock.set(T0 + dt.timedelta(minutes=30))
    third = daemon.tick()
    assert third.dispatch.fired == 3 * 16
    assert third.delivery.sent == 3
    assert third.next_due is None
    assert_exactly_once(sqlite_store, 3 * PING_TIMERS)


def test_burst_cap_defers_but_never_drops(
    sqlite_store: SqlStore, clock: ManualClock, mail_dir: Path
) -> None:
    settings = Settings(batch_size=500, burst_cap=1)
    service = Service(sqlite_store, clock=clock, settings=settings)
    service.load_workflow(MINI)
    for code in ("751", "461"):
        service.open_case("mini", code, actor="test", role="secretariat")
    # submit_by's reminder (day 7) and deadline (day 10) of one timer are both due now:
    # one fires per call (burst cap 1), the other is deferred to the next batch.
    clock.advance(dt.timedelta(days=20))
    result = make_daemon(service, clock, settings, mail_dir).tick()
    assert result.batches > 1
    counts = timer_counts(sqlite_store)
    assert counts.get("pending", 0) == 0
    assert counts["fired"] >= 4


def test_long_run_with_apscheduler_wakes_stops_and_beats(
    service: Service,
    sqlite_store: SqlStore,
    clock: ManualClock,
    settings: Settings,
    mail_dir: Path,
    log_watch: LogWatch,
) -> None:
    open_ping_cases(service, 3)
    clock.advance(dt.timedelta(minutes=2))
    daemon = make_daemon(service, clock, settings, mail_dir)
    exit_code: list[int] = []
    thread = threading.Thread(target=lambda: exit_code.append(daemon.run()), daemon=True)
    thread.start()
    try:
        # The first pass runs at once (t01 and t02 of every case), then arms the one-shot
        # wake-up for t03, a minute of *work clock* away: the daemon logs both.
        records = log_watch.wait_for(
            lambda r: bool(log_actions(r, "tick")) and _first(r, "tick") < _last_armed(r),
            "the first pass and the wake-up it arms",
        )
        assert log_actions(records, "tick")[0]["fired"] == 3 * 2
        assert timer_counts(sqlite_store).get("fired", 0) == 3 * 2
        assert daemon.next_due == T0 + dt.timedelta(minutes=3)
        assert daemon.wake_at is not None
        # Move the work clock past everything and wake the daemon (what a sweep would do):
        # a pass finds nothing due any more.
        clock.advance(dt.timedelta(hours=1))
        since = len(log_watch.records)
        daemon.wake()
        log_watch.wait_for(lambda r: caught_up(r, since), "a pass with nothing left to do")
        assert timer_counts(sqlite_store).get("pending", 0) == 0
        assert daemon.counters["delivered"] == 3
    finally:
        daemon.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert exit_code == [0]
    assert_exactly_once(sqlite_store, 3 * PING_TIMERS)
    with sqlite_store.read() as tx:
        (info,) = [d for d in tx.daemons() if d.id == daemon.id]
    assert info.stopped_at is not None
    assert info.last_tick_at is not None
    assert info.stats["fired"] == 3 * PING_TIMERS


def test_a_wake_during_a_pass_runs_another_pass(
    service: Service,
    sqlite_store: SqlStore,
    clock: ManualClock,
    mail_dir: Path,
    log_watch: LogWatch,
) -> None:
    """A change made while a pass runs (here: cases opened after the pass looked) wakes the
    daemon: the wake-up is queued behind the running pass, not dropped until the next sweep.
    The sweep is an hour away so that only the wake can explain a second pass."""
    service.load_workflow(PING)
    settings = Settings(sweep_seconds=3600, heartbeat_seconds=3600)
    daemon = make_daemon(service, clock, settings, mail_dir)
    in_pass, release = threading.Event(), threading.Event()
    real_tick = daemon.tick

    def held_tick(*, sweep: bool = False) -> Any:
        result = real_tick(sweep=sweep)
        if not in_pass.is_set():  # hold the first pass after it has looked at the timers
            in_pass.set()
            release.wait(timeout=60)
        return result

    daemon.tick = held_tick  # type: ignore[method-assign]
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        assert in_pass.wait(timeout=60), "the first pass did not start"
        open_ping_cases(service, 2)
        clock.advance(dt.timedelta(minutes=2))
        daemon.wake()
        release.set()
        records = log_watch.wait_for(
            lambda r: any(int(str(x.get("fired", 0))) > 0 for x in log_actions(r, "tick")),
            "a pass woken during the first one",
            timeout=60,
        )
        assert sum(int(str(x["fired"])) for x in log_actions(records, "tick")) == 2 * 2
    finally:
        release.set()
        daemon.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_second_daemon_on_the_same_sqlite_file_is_refused(
    service: Service, sqlite_store: SqlStore, clock: ManualClock, settings: Settings, mail_dir: Path
) -> None:
    database = sqlite_file(sqlite_store.url)
    assert database is not None
    holder = DaemonLock(database)
    holder.acquire("other-host:4242:abc")
    try:
        daemon = make_daemon(service, clock, settings, mail_dir, once=True)
        with pytest.raises(DaemonLockedError) as refused:
            daemon.run()
        message = str(refused.value)
        assert "another scheduler daemon" in message
        assert "only one daemon" in message
        assert str(database) in message
    finally:
        holder.release()
    # Once the first is gone, the next one runs.
    assert make_daemon(service, clock, settings, mail_dir, once=True).run() == 0


def test_no_lock_for_postgres_urls() -> None:
    assert sqlite_file("postgresql+psycopg://postgres@127.0.0.1/x") is None
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:////tmp/x.db") == Path("/tmp/x.db")


def test_store_errors_in_a_pass_are_logged_not_raised(
    service: Service,
    clock: ManualClock,
    settings: Settings,
    mail_dir: Path,
    log_lines: io.StringIO,
    tmp_path: Path,
) -> None:
    broken = Service(
        SqlStore(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}", check_schema=False),
        clock=clock,
        settings=settings,
    )
    daemon = make_daemon(broken, clock, settings, mail_dir)
    daemon._pass()  # what a job does: never raises into APScheduler
    assert daemon.counters["errors"] == 1
    errors = [line for line in actions(log_lines) if line["action"] == "error"]
    assert errors
    assert "Traceback" not in log_lines.getvalue()


def test_logs_never_show_the_password(log_lines: io.StringIO) -> None:
    logger = logging.getLogger("dk2020flow.daemon")
    logger.info(
        "connecting with s3cret-pass", extra={"action": "tick", "fields": {"x": "s3cret-pass"}}
    )
    assert "s3cret-pass" not in log_lines.getvalue()
    assert "***" in log_lines.getvalue()


def test_outbox_left_sending_by_a_crash_goes_out_after_the_lease(
    service: Service, sqlite_store: SqlStore, clock: ManualClock, settings: Settings, mail_dir: Path
) -> None:
    open_ping_cases(service, 1)
    clock.advance(dt.timedelta(hours=1))
    service.fire_due(clock.now(), limit=100)
    with sqlite_store.transaction() as tx:
        (claimed,) = tx.claim_outbox(clock.now(), 10, clock.now() + dt.timedelta(minutes=5))
    daemon = make_daemon(service, clock, settings, mail_dir)
    assert daemon.tick().next_due == clock.now() + dt.timedelta(minutes=5)  # the lease's end
    clock.advance(dt.timedelta(minutes=5))
    assert daemon.tick().delivery.sent == 1
    with sqlite_store.read() as tx:
        assert tx.outbox_message(claimed.id).status is OutboxStatus.SENT  # type: ignore[union-attr]


def _first(records: list[dict[str, object]], action: str) -> int:
    return next(i for i, r in enumerate(records) if r.get("action") == action)


def _last_armed(records: list[dict[str, object]]) -> int:
    armed = [i for i, r in enumerate(records) if r.get("action") == "armed"]
    return armed[-1] if armed else -1
