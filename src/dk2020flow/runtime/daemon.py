"""The scheduler daemon: fires due timers and delivers the outbox.

The truth is in the database (DESIGN.md invariant 3): timers and mail are
rows; the daemon keeps nothing in memory that a restart would miss. Inside the
process, APScheduler 3.11 runs a handful of in-memory jobs:

``wake``
    A ONE-SHOT job armed at the next due instant (``Service.next_due_at()``:
    the earliest pending timer, programme timer, message or expired lease).
    It dispatches (``Service.fire_due(now)`` again and again until a batch
    takes nothing), delivers one outbox batch, and re-arms itself. An idle
    daemon therefore sleeps until something is due instead of polling.
``sweep``
    Every ``sweep_seconds`` (default 60 s), the same work: it picks up changes
    other processes made (a new case whose deadline is sooner than the armed
    wake-up, a message requeued by ``outbox retry``) and is the safety net.
``heartbeat``
    Every ``heartbeat_seconds`` it writes the daemon's row (``DaemonInfo``:
    id ``host:pid:random``, last tick, counters) so ``scheduler status`` can
    tell a live daemon from a dead one.
``housekeeping``
    Hourly: reports dead and parked mail (a warning line operators can alert on).

All jobs have ``coalesce=True`` and ``max_instances=1``, except the wake-up,
which may have one more waiting behind a running pass (a wake during a pass is
never dropped); the work jobs share a one-thread executor so two passes never
overlap. ``misfire_grace_time`` is set on purpose: a wake-up is never dropped however late it runs (``None``); a
sweep or heartbeat missed by more than its own interval is skipped, since the
next one does the same work.

Stopping (SIGTERM, SIGINT): the current batch finishes (its transaction
commits or rolls back as a whole, nothing is left half-done), a final
heartbeat records ``stopped_at``, the exit status is 0. A kill -9 mid-batch
rolls the batch's transaction back: its timers are pending again and fire on
the next run, exactly once.

On SQLite only one daemon may run against a database file: it holds an
exclusive ``flock`` on ``<dbfile>.daemon.lock`` for its life, and a second one
is refused with a message naming the holder's pid.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import random
import secrets
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dk2020flow.clock import Clock, SystemClock
from dk2020flow.errors import ConflictError, Dk2020flowError
from dk2020flow.notify.transports import Transport
from dk2020flow.runtime.delivery import DeliveryResult, RandomSource, deliver_batch
from dk2020flow.runtime.logs import LOGGER_NAME, log_action
from dk2020flow.runtime.webhooks import WebhookWorker, load_webhook_settings
from dk2020flow.service.core import Service
from dk2020flow.service.dispatch import DispatchResult
from dk2020flow.settings import Settings
from dk2020flow.store.port import DaemonInfo, OutboxStatus, WebhookStatus

logger = logging.getLogger(f"{LOGGER_NAME}.daemon")

_WALL = SystemClock()
"""The machine's time, for arming APScheduler's wake-ups (its triggers run on wall time)."""

HOUSEKEEPING_SECONDS = 3600.0
ERROR_RETRY_SECONDS = 10.0
"""After a failed pass (database down …), try again this soon (or at the sweep, if sooner)."""
IDLE_RETRY_SECONDS = 5.0
"""A pass that found work due but could take none (another daemon holds it) waits this long."""
MAX_CONFLICT_RETRIES = 5
"""A batch rolled back by a concurrent daemon is taken again this many times in a row."""
DEFAULT_SENDER = ("dk2020flow", "dk2020flow@example.org")


class DaemonLockedError(Dk2020flowError):
    """Another daemon already runs against this SQLite database file."""

    exit_code = 6


# ----------------------------------------------------------------------------- SQLite lock


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    return Path(database).expanduser().resolve()


class DaemonLock:
    """An exclusive ``flock`` on ``<dbfile>.daemon.lock``, held for the daemon's life.

    The kernel drops the lock when the process dies, however it dies (kill -9
    included), so a stale lock file never blocks a restart.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".daemon.lock")
        self._file: IO[str] | None = None

    def acquire(self, owner: str) -> None:
        import fcntl

        try:
            handle = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise DaemonLockedError(
                f"cannot create the daemon lock file {self.path}: {exc.strerror}; "
                "check that the database's directory is writable"
            ) from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            words = holder.split()
            who = f" (pid {words[0]}" + (f", daemon {words[1]}" if len(words) > 1 else "") + ")"
            raise DaemonLockedError(
                f"another scheduler daemon{who if words else ''} already runs against the SQLite "
                f"database {self.database}: on SQLite only one daemon may run per database file. "
                "Stop it first, or move to PostgreSQL to run several "
                "(docs/operations.md, 'Scaling out')"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {owner}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is None:
            return
        import fcntl

        with contextlib.suppress(OSError):
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None


# ----------------------------------------------------------------------------- results


@dataclass(kw_only=True, slots=True)
class TickResult:
    """What one pass did: the dispatch loop and one delivery batch."""

    now: dt.datetime
    batches: int = 0
    dispatch: DispatchResult = field(default_factory=DispatchResult)
    delivery: DeliveryResult = field(default_factory=DeliveryResult)
    next_due: dt.datetime | None = None

    @property
    def did_work(self) -> bool:
        return bool(
            self.dispatch.total or self.delivery.sent or self.delivery.retried or self.delivery.dead
        )


def _add(total: DispatchResult, part: DispatchResult) -> None:
    total.fired += part.fired
    total.discarded += part.discarded
    total.skipped += part.skipped
    total.failed += part.failed
    total.deferred = part.deferred  # what is still waiting after the last batch
    total.programme += part.programme
    total.errors.extend(part.errors)


# ----------------------------------------------------------------------------- daemon


class Daemon:
    """Fires due timers and delivers mail for one database; see the module docstring.

    ``clock`` says what time it is for the work (``--now`` replays); ``wall``
    (the system clock unless a test injects one) stamps heartbeats, which are
    about this process being alive, not about the programme's time.
    """

    def __init__(
        self,
        service: Service,
        transport: Transport,
        *,
        clock: Clock,
        settings: Settings,
        once: bool = False,
        sender: str | tuple[str, str] = DEFAULT_SENDER,
        rng: RandomSource | None = None,
        wall: Clock | None = None,
        single_sqlite_daemon: bool = True,
        webhooks: WebhookWorker | None = None,
    ) -> None:
        self.service = service
        self.transport = transport
        self.clock = clock
        self.settings = settings
        self.once = once
        self.sender = sender
        self.rng: RandomSource = rng or random.Random()
        self.wall: Clock = wall or SystemClock()
        # Webhook deliveries: a loop of their own beside the work jobs (runtime/webhooks.py).
        self.webhooks = webhooks or WebhookWorker(
            service.store,
            clock=clock,
            settings=load_webhook_settings(),
            sweep_seconds=settings.sweep_seconds,
            rng=self.rng,
            stopping=lambda: self.stopping,
        )
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.host}:{self.pid}:{secrets.token_hex(3)}"
        self.started_at = self.wall.now()
        self.last_tick_at: dt.datetime | None = None
        self.next_due: dt.datetime | None = None
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "ticks",
                "fired",
                "discarded",
                "skipped",
                "failed",
                "programme",
                "delivered",
                "retried",
                "dead",
                "errors",
            ),
            0,
        )
        database = sqlite_file(service.store.url) if single_sqlite_daemon else None
        self._lock = DaemonLock(database) if database is not None else None
        self._work_lock = threading.Lock()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._scheduler: BackgroundScheduler | None = None
        self.wake_at: dt.datetime | None = None
        """The wall-clock instant the one-shot wake-up is armed for (None: none armed)."""

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        """Run until stopped (or, with ``once``, until everything due now is done); exit status."""
        with self._locked():
            log_action(
                logger,
                "started",
                daemon=self.id,
                database=self.service.database,
                mode="once" if self.once else "daemon",
                now=self.clock.now(),
            )
            if self.once:
                return self._run_once()
            return self._run_forever()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock is not None:
            self._lock.acquire(self.id)
        try:
            yield
        finally:
            if self._lock is not None:
                self._lock.release()

    def _run_once(self) -> int:
        self.heartbeat()
        try:
            self.tick()
            self.webhooks.run_due()
        finally:
            self.webhooks.close()
            self.heartbeat(stopped=True)
            log_action(logger, "stopped", daemon=self.id, **self._stats())
        return 0

    def _run_forever(self) -> int:
        installed = self._install_signal_handlers()
        scheduler = BackgroundScheduler(
            executors={
                "work": ThreadPoolExecutor(max_workers=1),
                "default": ThreadPoolExecutor(max_workers=1),
            },
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=dt.UTC,
        )
        self._scheduler = scheduler
        try:
            self.heartbeat()
            scheduler.add_job(
                self._sweep_job,
                IntervalTrigger(seconds=self.settings.sweep_seconds, timezone=dt.UTC),
                id="sweep",
                executor="work",
                misfire_grace_time=max(1, int(self.settings.sweep_seconds)),
            )
            scheduler.add_job(
                self._heartbeat_job,
                IntervalTrigger(seconds=self.settings.heartbeat_seconds, timezone=dt.UTC),
                id="heartbeat",
                executor="default",
                misfire_grace_time=max(1, int(self.settings.heartbeat_seconds)),
            )
            scheduler.add_job(
                self._housekeeping_job,
                IntervalTrigger(seconds=HOUSEKEEPING_SECONDS, timezone=dt.UTC),
                id="housekeeping",
                executor="work",
                misfire_grace_time=int(HOUSEKEEPING_SECONDS),
            )
            self.webhooks.attach(scheduler)  # its jobs, in an executor of their own
            self._arm(_WALL.now())  # the first pass: right away
            scheduler.start()
            while not self._stop.wait(timeout=1.0):
                pass
        finally:
            # Let the running pass finish (its transaction commits or rolls back whole).
            if scheduler.running:
                scheduler.shutdown(wait=True)
            self.webhooks.close()
            self._scheduler = None
            self.heartbeat(stopped=True)
            log_action(logger, "stopped", daemon=self.id, **self._stats())
            self._restore_signal_handlers(installed)
            self._stopped.set()
        return 0

    def stop(self) -> None:
        """Ask the daemon to stop after the current batch (what SIGTERM/SIGINT do)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait_stopped(self, timeout: float) -> bool:
        return self._stopped.wait(timeout)

    def wake(self) -> None:
        """Run a pass now (a change made something due; tests after moving the clock)."""
        if self._scheduler is not None and not self.stopping:
            self._arm(_WALL.now())

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, _frame: FrameType | None) -> None:
            log_action(logger, "stopping", signal=signal.Signals(signum).name, daemon=self.id)
            self._stop.set()

        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handler)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    # ------------------------------------------------------------------ jobs

    def _arm(self, wall_at: dt.datetime) -> None:
        scheduler = self._scheduler
        if scheduler is None or self.stopping:
            return
        scheduler.add_job(
            self._wake_job,
            DateTrigger(run_date=wall_at, timezone=dt.UTC),
            id="wake",
            executor="work",
            replace_existing=True,
            misfire_grace_time=None,  # a late wake-up still runs: never drop due work
            # One more may wait behind a running pass (the executor's one thread keeps them
            # apart): a wake-up armed during a pass is work that pass may not have seen.
            max_instances=2,
        )
        self.wake_at = wall_at
        # The next pass is armed (DEBUG: not shown by default; tests wait on it).
        log_action(logger, "armed", level=logging.DEBUG, wake_at=wall_at, next_due=self.next_due)

    def _wall_time_for(self, instant: dt.datetime) -> dt.datetime:
        """When, on the wall clock, the work clock reaches ``instant``."""
        wait = max(dt.timedelta(0), instant - self.clock.now())
        return _WALL.now() + wait

    def _wake_job(self) -> None:
        self.wake_at = None
        self._pass()

    def _sweep_job(self) -> None:
        self._pass(sweep=True)

    def _pass(self, *, sweep: bool = False) -> None:
        """A pass from a job: errors are logged, never raised into the scheduler."""
        if self.stopping:
            return
        retry = min(self.settings.sweep_seconds, ERROR_RETRY_SECONDS)
        try:
            result = self.tick(sweep=sweep)
        except Dk2020flowError as exc:
            self.counters["errors"] += 1
            log_action(logger, "error", str(exc), level=logging.ERROR, daemon=self.id)
            self._arm(_WALL.now() + dt.timedelta(seconds=retry))
            return
        except Exception:
            self.counters["errors"] += 1
            logger.exception(
                "unexpected error in a scheduler pass (a bug: please report it)",
                extra={"action": "error", "fields": {"daemon": self.id}},
            )
            self._arm(_WALL.now() + dt.timedelta(seconds=retry))
            return
        if result.dispatch.total:
            self.webhooks.wake()  # the firings may have queued webhook notices
        if result.next_due is None:
            return  # nothing pending at all: the sweep notices new work
        wall_at = self._wall_time_for(result.next_due)
        if result.next_due <= result.now and not result.did_work:
            # Due, yet nothing could be taken (another daemon holds it): do not spin.
            wall_at = _WALL.now() + dt.timedelta(
                seconds=min(self.settings.sweep_seconds, IDLE_RETRY_SECONDS)
            )
        if not sweep or self.wake_at is None or wall_at < self.wake_at:
            self._arm(wall_at)

    def _heartbeat_job(self) -> None:
        try:
            self.heartbeat()
        except Dk2020flowError as exc:
            log_action(logger, "error", f"heartbeat failed: {exc}", level=logging.WARNING)

    def _housekeeping_job(self) -> None:
        try:
            with self.service.store.read() as tx:
                counts = tx.outbox_counts()
                dead_hooks = tx.webhook_counts()[WebhookStatus.DEAD]
            dead, parked = counts[OutboxStatus.DEAD], counts[OutboxStatus.PARKED]
        except Dk2020flowError as exc:
            log_action(logger, "error", f"housekeeping failed: {exc}", level=logging.WARNING)
            return
        level = logging.WARNING if dead or parked or dead_hooks else logging.INFO
        log_action(
            logger,
            "housekeeping",
            level=level,
            dead_mail=dead,
            parked_mail=parked,
            dead_webhooks=dead_hooks,
            **({"hint": "see `dk2020flow outbox list --status dead`"} if dead else {}),
            **(
                {"webhook_hint": "see `dk2020flow webhooks deliveries --status dead`"}
                if dead_hooks
                else {}
            ),
        )

    # ------------------------------------------------------------------ work

    def tick(self, *, sweep: bool = False) -> TickResult:
        """One pass at the clock's now: dispatch until a batch takes nothing, then
        deliver one outbox batch. Returns what it did and the next due instant."""
        with self._work_lock:
            now = self.clock.now()
            result = TickResult(now=now)
            self._dispatch(result)
            result.delivery = self._deliver(now)
            result.next_due = self.service.next_due_at()
            self.next_due = result.next_due
            self.last_tick_at = self.wall.now()
            self.counters["ticks"] += 1
            if result.did_work or not sweep:
                fields: dict[str, Any] = {
                    "now": now,
                    "batches": result.batches,
                    "fired": result.dispatch.fired,
                    "discarded": result.dispatch.discarded,
                    "skipped": result.dispatch.skipped,
                    "failed": result.dispatch.failed,
                    "deferred": result.dispatch.deferred,
                    "programme": result.dispatch.programme,
                    "delivered": result.delivery.sent,
                    "retried": result.delivery.retried,
                    "dead": result.delivery.dead,
                    "next_due": result.next_due,
                }
                if sweep:
                    fields["sweep"] = True
                log_action(logger, "tick", **fields)
            return result

    def _dispatch(self, result: TickResult) -> None:
        """Batches until one takes nothing this daemon can fire now.

        A short batch does not end the pass: its firings may have armed deadlines
        that are already past (a state entered late), due at this same instant. A
        batch that only put cases off (changed meanwhile by another daemon or a
        command) is taken again a few times; what is still held is the next pass's.
        """
        limit = self.settings.batch_size
        conflicts = 0
        stalled = 0
        while True:
            now = self.clock.now()
            try:
                part = self.service.fire_due(now, limit=limit)
            except ConflictError as exc:
                # Another daemon won a lock (PostgreSQL deadlock/serialisation): the whole
                # batch rolled back, nothing half-done; take the work again.
                conflicts += 1
                log_action(logger, "conflict", str(exc), level=logging.WARNING, retry=conflicts)
                if conflicts > MAX_CONFLICT_RETRIES or self.stopping:
                    raise
                continue
            conflicts = 0
            result.batches += 1
            _add(result.dispatch, part)
            self._count_dispatch(part)
            if self.stopping:
                return
            if part.total:
                stalled = 0
                continue
            if not part.deferred:
                return  # nothing due now that this daemon can take
            stalled += 1
            if stalled > MAX_CONFLICT_RETRIES:
                return

    def _count_dispatch(self, part: DispatchResult) -> None:
        for name in ("fired", "discarded", "skipped", "failed", "programme"):
            self.counters[name] += getattr(part, name)
        if part.fired or part.programme or part.discarded:
            log_action(
                logger,
                "fired",
                fired=part.fired,
                programme=part.programme,
                discarded=part.discarded,
                deferred=part.deferred,
            )
        if part.skipped:
            log_action(logger, "skipped", skipped=part.skipped)
        for error in part.errors:
            log_action(logger, "failed", error, level=logging.ERROR)

    def _deliver(self, now: dt.datetime) -> DeliveryResult:
        result = deliver_batch(
            self.service.store,
            self.transport,
            now=now,
            settings=self.settings,
            rng=self.rng,
            sender=self.sender,
        )
        self.counters["delivered"] += result.sent
        self.counters["retried"] += result.retried
        self.counters["dead"] += result.dead
        return result

    # ------------------------------------------------------------------ heartbeat

    def _stats(self) -> dict[str, Any]:
        return {**self.counters, "next_due": self.next_due}

    def info(self, *, stopped: bool = False) -> DaemonInfo:
        seen = self.wall.now()
        stats: dict[str, Any] = dict(self.counters)
        stats["clock_now"] = self.clock.now().isoformat()
        stats["next_due"] = self.next_due.isoformat() if self.next_due else None
        stats["mode"] = "once" if self.once else "daemon"
        stats.update(self.webhooks.counters)
        return DaemonInfo(
            id=self.id,
            host=self.host,
            pid=self.pid,
            started_at=self.started_at,
            last_tick_at=self.last_tick_at,
            last_seen_at=seen,
            stopped_at=seen if stopped else None,
            stats=stats,
        )

    def heartbeat(self, *, stopped: bool = False) -> None:
        info = self.info(stopped=stopped)
        with self.service.store.transaction() as tx:
            tx.heartbeat(info)
        fields: dict[str, Any] = {"daemon": self.id, "last_tick_at": self.last_tick_at}
        if stopped:
            fields["stopped_at"] = info.stopped_at
        log_action(logger, "heartbeat", **fields)
