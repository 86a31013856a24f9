"""Webhook delivery: the scheduler daemon POSTs the notices the store queued.

The life of a delivery (docs/webhooks.md)::

    pending ──claim (lease, one attempt more)──► leased ──2xx──► sent
       ▲                                            │
       └──── back-off (exponential + jitter) ◄──────┤ any other status, refused connection,
                                                    │ timeout, dropped connection
                                                    └──► dead after webhook_max_attempts

1. One short transaction claims up to ``webhook_batch_size`` due deliveries with a lease
   (``store/sql/webhooks.py``: SKIP LOCKED on PostgreSQL, so several daemons never hold
   one delivery at the same time).
2. Outside any transaction they are POSTed, grouped by origin (scheme, host, port): each
   origin's deliveries go one after another over one kept-alive connection (kept for the
   next batch too), up to ``webhook_concurrency`` origins at once, so one slow receiver
   does not hold up the others. An origin that cannot be reached fails the rest of its
   deliveries in the batch without trying each (they wait for their next attempt).
3. The outcomes are written in one transaction per ``MARK_EVERY`` deliveries and at the
   end: a daemon that dies in between sends those again after their lease (at least once,
   with the same ``webhook-id``).

Headers are those of the Standard Webhooks scheme: ``webhook-id`` (the delivery id),
``webhook-timestamp`` (seconds since 1970, from the daemon's clock, at the attempt) and
``webhook-signature: v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``, where
the key is the base64-decoded part of the subscription's ``whsec_…`` secret.

The HTTP client is the standard library's ``http.client`` (no new dependency): one
``HTTPConnection`` per origin, reused while the receiver keeps it open.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import http.client
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from dk2020flow import __version__
from dk2020flow.clock import Clock, SystemClock
from dk2020flow.errors import Dk2020flowError
from dk2020flow.runtime.delivery import RandomSource, next_attempt
from dk2020flow.runtime.logs import LOGGER_NAME, log_action
from dk2020flow.settings import FileAndEnvSettings, SettingsError
from dk2020flow.store.port import ClaimedWebhook, Store, WebhookOutcome, WebhookStatus

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

logger = logging.getLogger(f"{LOGGER_NAME}.webhooks")

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
MARK_EVERY = 20
"""Outcomes written per transaction: bounds the resends after a crash to this many per origin."""
MAX_RESPONSE = 64 * 1024
"""Bytes of a receiver's answer read; a longer one closes the connection."""
MAX_ERROR = 500
ERROR_RETRY_SECONDS = 10.0
IDLE_RETRY_SECONDS = 5.0
USER_AGENT = f"dk2020flow/{__version__} (webhooks)"


# ----------------------------------------------------------------------------- settings


class WebhookSettings(FileAndEnvSettings):
    """Webhook delivery settings, from ``DK2020FLOW_WEBHOOK_*`` variables over the
    configuration file (the keys are the fields' names, as for ``Settings``)."""

    model_config = SettingsConfigDict(env_prefix="DK2020FLOW_", env_file=None, extra="ignore")

    webhook_batch_size: int = Field(default=100, ge=1, le=10_000)
    webhook_max_attempts: int = Field(
        default=12, ge=1, le=100, description="A delivery is dead after this many attempts."
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="Connecting, and each read or write of a POST."
    )
    webhook_lease_seconds: float = Field(default=300.0, gt=0)
    webhook_backoff_seconds: float = Field(default=30.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    webhook_concurrency: int = Field(
        default=4, ge=1, le=64, description="Receivers (origins) sent to at the same time."
    )

    @model_validator(mode="after")
    def _lease_outlasts_attempts(self) -> Self:
        if self.webhook_lease_seconds < 3 * self.webhook_timeout_seconds:
            raise ValueError(
                "webhook_lease_seconds must be at least 3 x webhook_timeout_seconds "
                "(a delivery's lease must outlast its attempt)"
            )
        return self


def load_webhook_settings() -> WebhookSettings:
    """The webhook settings; a bad value is one ``SettingsError`` naming the variable."""
    try:
        return WebhookSettings()
    except ValidationError as exc:
        problems = "; ".join(
            (
                f"DK2020FLOW_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                if e["loc"]
                else e["msg"]
            )
            for e in exc.errors()
        )
        raise SettingsError(
            f"invalid webhook settings ({problems}); fix the variable or the key in the "
            "configuration file (docs/webhooks.md, 'Settings')"
        ) from None


# ----------------------------------------------------------------------------- signing


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret: its base64 part decoded (Standard Webhooks);
    a secret that is not in that form signs with its own UTF-8 bytes."""
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return secret.encode("utf-8")


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(claimed: ClaimedWebhook, body: bytes, at: dt.datetime) -> dict[str, str]:
    """The headers of one attempt at ``at``."""
    timestamp = int(at.timestamp())
    delivery_id = claimed.delivery.delivery_id
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(claimed.secret, delivery_id, timestamp, body),
    }


# ----------------------------------------------------------------------------- HTTP

Origin = tuple[str, str, int]


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def origin_of(url: str) -> tuple[Origin, str]:
    """``(scheme, host, port)`` and the request target (path and query) of a URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (scheme, parts.hostname or "", port), target


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpAnswer:
    """What one POST got: an HTTP status, or (``status`` None) why there was none."""

    status: int | None
    error: str = ""
    connected: bool = True
    """False: the receiver could not be reached at all (the rest of its batch waits)."""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class HttpPoster:
    """POSTs over kept-alive connections: one idle connection kept per origin.

    Thread-safe: a connection is taken out of the pool while one thread uses it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._idle: dict[Origin, http.client.HTTPConnection] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self.opened = 0
        """Connections opened so far (the benchmark and the tests read it)."""

    def _take(self, origin: Origin) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            conn = self._idle.pop(origin, None)
            if conn is not None:
                return conn, True
            scheme, host, port = origin
            self.opened += 1
            if scheme == "https":
                if self._tls is None:
                    self._tls = ssl.create_default_context()
                return (
                    http.client.HTTPSConnection(
                        host, port, timeout=self.timeout, context=self._tls
                    ),
                    False,
                )
            return http.client.HTTPConnection(host, port, timeout=self.timeout), False

    def _give(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            old = self._idle.get(origin)
            self._idle[origin] = conn
        if old is not None and old is not conn:
            old.close()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpAnswer:
        origin, target = origin_of(url)
        where = f"{origin[1]}:{origin[2]}"
        for _ in range(2):
            conn, reused = self._take(origin)
            if conn.sock is None:
                try:
                    conn.connect()
                except TimeoutError:
                    conn.close()
                    return HttpAnswer(
                        status=None,
                        error=f"cannot connect to {where}: no answer within {self.timeout:g} s",
                        connected=False,
                    )
                except OSError as exc:
                    conn.close()
                    return HttpAnswer(
                        status=None,
                        error=_clip(f"cannot connect to {where}: {exc.strerror or exc}"),
                        connected=False,
                    )
            try:
                conn.request("POST", target, body=body, headers=headers)
                response = conn.getresponse()
                text = response.read(MAX_RESPONSE)
            except TimeoutError:
                conn.close()
                return HttpAnswer(status=None, error=f"no answer within {self.timeout:g} s")
            except (ConnectionError, http.client.BadStatusLine) as exc:
                conn.close()
                if reused:
                    continue  # a kept-alive connection the receiver had closed: a new one
                return HttpAnswer(
                    status=None, error=_clip(f"{where} dropped the connection: {exc}")
                )
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                return HttpAnswer(
                    status=None, error=_clip(f"bad answer from {where}: {type(exc).__name__} {exc}")
                )
            if response.will_close or not response.isclosed():
                conn.close()
            else:
                self._give(origin, conn)
            status = response.status
            if 200 <= status < 300:
                return HttpAnswer(status=status)
            detail = text.decode("utf-8", "replace").strip()
            error = f"HTTP {status} {response.reason}".rstrip()
            return HttpAnswer(status=status, error=_clip(f"{error}: {detail}" if detail else error))
        return HttpAnswer(status=None, error=f"{where} dropped the connection twice")

    def close(self) -> None:
        with self._lock:
            idle = list(self._idle.values())
            self._idle.clear()
        for conn in idle:
            conn.close()


# ----------------------------------------------------------------------------- one batch


@dataclass(kw_only=True, slots=True)
class WebhookResult:
    """What one or more batches did."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    released: int = 0
    next_due: dt.datetime | None = None

    def add(self, other: WebhookResult) -> None:
        self.claimed += other.claimed
        self.sent += other.sent
        self.retried += other.retried
        self.dead += other.dead
        self.released += other.released

    @property
    def did_work(self) -> bool:
        return bool(self.sent or self.retried or self.dead)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Batch:
    store: Store
    poster: HttpPoster
    clock: Clock
    settings: WebhookSettings
    rng: RandomSource
    stopping: Callable[[], bool]
    now: dt.datetime
    budget: float
    """``time.monotonic()`` after which no attempt starts (its lease could run out)."""
    result: WebhookResult
    lock: threading.Lock


def _failed(batch: _Batch, claimed: ClaimedWebhook, answer: HttpAnswer) -> WebhookOutcome:
    delivery = claimed.delivery
    settings = batch.settings
    at = batch.clock.now()
    if delivery.attempts >= settings.webhook_max_attempts:
        return WebhookOutcome(
            id=delivery.id,
            attempts=delivery.attempts,
            status=WebhookStatus.DEAD,
            at=at,
            http_status=answer.status,
            error=_clip(f"gave up after {delivery.attempts} attempts; last error: {answer.error}"),
        )
    when = next_attempt(
        at,
        max(delivery.attempts, 1),
        dt.timedelta(seconds=settings.webhook_backoff_seconds),
        dt.timedelta(
            seconds=max(settings.webhook_backoff_max_seconds, settings.webhook_backoff_seconds)
        ),
        batch.rng,
    )
    return WebhookOutcome(
        id=delivery.id,
        attempts=delivery.attempts,
        status=WebhookStatus.PENDING,
        at=at,
        next_attempt_at=when,
        http_status=answer.status,
        error=answer.error,
    )


def _flush(batch: _Batch, done: list[tuple[ClaimedWebhook, WebhookOutcome]]) -> None:
    """Write the outcomes so far in one transaction, then count and log them."""
    if not done:
        return
    outcomes = list(done)
    done.clear()
    with batch.store.transaction() as tx:
        tx.finish_webhooks([outcome for _, outcome in outcomes])
    with batch.lock:
        for _claimed, outcome in outcomes:
            result = batch.result
            if outcome.status is WebhookStatus.SENT:
                result.sent += 1
            elif outcome.status is WebhookStatus.DEAD:
                result.dead += 1
            elif outcome.released:
                result.released += 1
            else:
                result.retried += 1
    for claimed, outcome in outcomes:
        _log(claimed, outcome)


def _log(claimed: ClaimedWebhook, outcome: WebhookOutcome) -> None:
    fields: dict[str, Any] = {
        "delivery_id": claimed.delivery.delivery_id,
        "subscription": claimed.delivery.subscription_id,
        "attempts": outcome.attempts,
    }
    if outcome.http_status is not None:
        fields["status"] = outcome.http_status
    if outcome.status is WebhookStatus.SENT:
        log_action(logger, "webhook_sent", level=logging.DEBUG, **fields)
    elif outcome.status is WebhookStatus.DEAD:
        log_action(logger, "webhook_dead", level=logging.WARNING, error=outcome.error, **fields)
    elif outcome.released:
        log_action(logger, "webhook_released", level=logging.DEBUG, **fields)
    else:
        log_action(
            logger,
            "webhook_retry",
            error=outcome.error,
            next_attempt_at=outcome.next_attempt_at,
            **fields,
        )


def _send_origin(batch: _Batch, group: list[ClaimedWebhook]) -> None:
    """One origin's deliveries, one after another over one connection."""
    done: list[tuple[ClaimedWebhook, WebhookOutcome]] = []
    unreachable: HttpAnswer | None = None
    try:
        for claimed in group:
            delivery = claimed.delivery
            if batch.stopping() or time.monotonic() > batch.budget:
                # Not attempted: back as it was, for this daemon's next pass or another's.
                done.append(
                    (
                        claimed,
                        WebhookOutcome(
                            id=delivery.id,
                            attempts=delivery.attempts,
                            status=WebhookStatus.PENDING,
                            at=batch.now,
                            next_attempt_at=batch.now,
                            released=True,
                        ),
                    )
                )
                continue
            if unreachable is not None:
                done.append((claimed, _failed(batch, claimed, unreachable)))
            else:
                body = delivery.body.encode("utf-8")
                answer = batch.poster.post(
                    claimed.url, body, signed_headers(claimed, body, batch.clock.now())
                )
                if answer.ok:
                    outcome = WebhookOutcome(
                        id=delivery.id,
                        attempts=delivery.attempts,
                        status=WebhookStatus.SENT,
                        at=batch.clock.now(),
                        http_status=answer.status,
                    )
                else:
                    outcome = _failed(batch, claimed, answer)
                    if not answer.connected:
                        unreachable = answer
                done.append((claimed, outcome))
            if len(done) >= MARK_EVERY:
                _flush(batch, done)
    finally:
        # Also when interrupted: what was sent is not sent again if the store takes it.
        try:
            _flush(batch, done)
        except Exception:
            logger.debug("writing the webhook outcomes failed", exc_info=True)
            raise


def deliver_webhooks(
    store: Store,
    poster: HttpPoster,
    *,
    clock: Clock,
    settings: WebhookSettings,
    rng: RandomSource,
    stopping: Callable[[], bool] = lambda: False,
    executor: ThreadPoolExecutor | None = None,
) -> WebhookResult:
    """Claim one batch of due deliveries and send it; see the module docstring.

    Store errors propagate (the claimed deliveries keep their lease and are taken again
    when it ends); HTTP errors never do: they become retries or dead letters."""
    now = clock.now()
    lease = settings.webhook_lease_seconds
    with store.transaction() as tx:
        claimed = tx.claim_webhooks(
            now, settings.webhook_batch_size, now + dt.timedelta(seconds=lease)
        )
    result = WebhookResult(claimed=len(claimed))
    if not claimed:
        return result
    groups: dict[Origin, list[ClaimedWebhook]] = {}
    for item in claimed:
        groups.setdefault(origin_of(item.url)[0], []).append(item)
    batch = _Batch(
        store=store,
        poster=poster,
        clock=clock,
        settings=settings,
        rng=rng,
        stopping=stopping,
        now=now,
        # Leave two attempts' time of the lease: no attempt starts that could outlive it.
        budget=time.monotonic() + lease - 2 * settings.webhook_timeout_seconds,
        result=result,
        lock=threading.Lock(),
    )
    if executor is None or len(groups) == 1:
        for group in groups.values():
            _send_origin(batch, group)
    else:
        futures = [executor.submit(_send_origin, batch, group) for group in groups.values()]
        errors = [error for future in futures if (error := future.exception()) is not None]
        if errors:
            raise errors[0]
    return result


# ----------------------------------------------------------------------------- the loop


class WebhookWorker:
    """The daemon's webhook loop: its own APScheduler jobs in its own executor, so a slow
    receiver never delays a deadline.

    ``webhooks`` is a one-shot job armed at the next due delivery (re-armed after each
    pass, as the daemon's ``wake``); ``webhooks-sweep`` runs every ``sweep_seconds`` and
    picks up deliveries other processes queued (a change made by the CLI or the API).
    The daemon calls ``wake`` after a dispatch that changed cases. Each pass logs one
    ``webhooks`` line (after its outcomes were committed) with ``next_due``.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        settings: WebhookSettings,
        sweep_seconds: float = 60.0,
        rng: RandomSource | None = None,
        stopping: Callable[[], bool] = lambda: False,
        poster: HttpPoster | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.sweep_seconds = sweep_seconds
        self.rng: RandomSource = rng or random.Random()
        self.stopping = stopping
        self.poster = poster or HttpPoster(settings.webhook_timeout_seconds)
        self.counters = {"webhooks_sent": 0, "webhooks_retried": 0, "webhooks_dead": 0}
        self._executor: ThreadPoolExecutor | None = None
        """Sends to several origins at once; made when first needed, ended by ``close``."""
        self._scheduler: BaseScheduler | None = None
        self._work = threading.Lock()
        self._state = threading.Lock()
        self._running = False
        self._again = False
        self._wall: Clock = SystemClock()

    def run_due(self, *, sweep: bool = False) -> WebhookResult:
        """Send batches while full ones come back (and the daemon is not stopping); log
        one ``webhooks`` line; return the totals and when the next delivery is due."""
        with self._work:
            total = WebhookResult()
            while True:
                part = deliver_webhooks(
                    self.store,
                    self.poster,
                    clock=self.clock,
                    settings=self.settings,
                    rng=self.rng,
                    stopping=self.stopping,
                    executor=self._threads(),
                )
                total.add(part)
                if part.claimed < self.settings.webhook_batch_size or self.stopping():
                    break
            with self.store.read() as tx:
                total.next_due = tx.next_webhook_at()
            self.counters["webhooks_sent"] += total.sent
            self.counters["webhooks_retried"] += total.retried
            self.counters["webhooks_dead"] += total.dead
            if total.claimed or not sweep:
                fields: dict[str, Any] = {
                    "sent": total.sent,
                    "retried": total.retried,
                    "dead": total.dead,
                    "released": total.released,
                    "next_due": total.next_due,
                }
                if sweep:
                    fields["sweep"] = True
                log_action(logger, "webhooks", **fields)
            return total

    def _threads(self) -> ThreadPoolExecutor | None:
        if self.settings.webhook_concurrency <= 1:
            return None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.settings.webhook_concurrency,
                thread_name_prefix="dk2020flow-webhooks",
            )
        return self._executor

    # ------------------------------------------------------------------ scheduling

    def attach(self, scheduler: BaseScheduler) -> None:
        """Add the loop's executor and jobs to the daemon's scheduler (before it starts)."""
        from apscheduler.executors.pool import ThreadPoolExecutor as JobExecutor
        from apscheduler.triggers.interval import IntervalTrigger

        scheduler.add_executor(JobExecutor(max_workers=1), "webhooks")
        scheduler.add_job(
            self._sweep_job,
            IntervalTrigger(seconds=self.sweep_seconds, timezone=dt.UTC),
            id="webhooks-sweep",
            executor="webhooks",
            misfire_grace_time=max(1, int(self.sweep_seconds)),
        )
        self._scheduler = scheduler
        self._arm(self._wall.now())

    def wake(self) -> None:
        """Run a pass soon (the daemon's dispatch queued notices); one running now is
        followed by another."""
        with self._state:
            if self._running:
                self._again = True
                return
        self._arm(self._wall.now())

    def _arm(self, wall_at: dt.datetime) -> None:
        from apscheduler.triggers.date import DateTrigger

        scheduler = self._scheduler
        if scheduler is None or self.stopping():
            return
        scheduler.add_job(
            self._wake_job,
            DateTrigger(run_date=wall_at, timezone=dt.UTC),
            id="webhooks",
            executor="webhooks",
            replace_existing=True,
            misfire_grace_time=None,  # a late wake-up still runs
            max_instances=2,  # armed from a running pass: queued behind it, never skipped
        )

    def _wake_job(self) -> None:
        self._pass()

    def _sweep_job(self) -> None:
        self._pass(sweep=True)

    def _pass(self, *, sweep: bool = False) -> None:
        if self.stopping():
            return
        with self._state:
            self._running = True
            self._again = False
        wall_at: dt.datetime | None = None
        try:
            while True:
                wall_at = self._one_pass(sweep=sweep)
                with self._state:
                    if not self._again or self.stopping():
                        break
                    self._again = False  # woken meanwhile: go again at once
                sweep = False
        finally:
            with self._state:
                self._running = False
        if wall_at is not None:
            self._arm(wall_at)

    def _one_pass(self, *, sweep: bool) -> dt.datetime | None:
        """One ``run_due``; when (wall clock) to run the next one (None: nothing pending)."""
        retry = dt.timedelta(seconds=min(self.sweep_seconds, ERROR_RETRY_SECONDS))
        try:
            result = self.run_due(sweep=sweep)
        except Dk2020flowError as exc:
            log_action(logger, "error", f"webhook delivery: {exc}", level=logging.ERROR)
            return self._wall.now() + retry
        except Exception:
            logger.exception(
                "unexpected error in a webhook pass (a bug: please report it)",
                extra={"action": "error", "fields": {}},
            )
            return self._wall.now() + retry
        if result.next_due is None:
            return None  # nothing pending: the sweep (or a wake) notices new deliveries
        now = self.clock.now()
        if result.next_due <= now and not result.did_work:
            # Due, yet nothing could be taken (another daemon holds it): do not spin.
            idle = min(self.sweep_seconds, IDLE_RETRY_SECONDS)
            return self._wall.now() + dt.timedelta(seconds=idle)
        return self._wall.now() + max(dt.timedelta(0), result.next_due - now)

    def close(self) -> None:
        """Close the kept-alive connections and the sending threads (after the last pass)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self.poster.close()
