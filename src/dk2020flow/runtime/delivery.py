"""Outbox delivery: claim due messages, send them over one connection, mark each.

The life of a message (DESIGN.md invariant 4)::

    pending ──claim (lease)──► sending ──send ok──► sent
       ▲                          │
       └──── retry (back-off) ◄───┤ temporary failure (connection refused, 4xx,
                                  │ timeout, dropped connection)
                                  └──► dead  permanent failure (5xx, bad address)
                                             or mail_max_attempts tries

1. One short transaction claims up to ``mail_batch_size`` messages: it sets
   them ``sending`` with a lease (``lease_until = now + mail_lease_seconds``)
   and counts the attempt. Expired leases are claimed first.
2. Outside any transaction, the messages go out through ONE transport
   connection for the batch (reopened once if it drops).
3. After each failed send, one short transaction marks that message back to
   ``pending`` with ``next_attempt_at`` (exponential back-off with jitter), or
   ``dead`` with the reason. The messages sent are marked ``sent`` together, in
   one transaction at the end of the batch (or before the next other mark).

**At least once.** A crash (or kill -9) between a send and its mark leaves the
row ``sending`` (with the batch's other rows sent but not yet marked); when its
lease expires another delivery claims it and sends it again, with the same
``Message-ID`` (made from the row when it was queued), so the recipient's mail
system or a person can recognise the duplicate. A message is never lost; in
that narrow window it may be sent twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr
from enum import StrEnum
from typing import Any, Protocol

from dk2020flow.notify.errors import (
    InvalidAddressError,
    MessageError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from dk2020flow.notify.ics import CalendarAttachment, CalendarMethod
from dk2020flow.notify.message import (
    MimeMessage,
    build_message,
    envelope_recipients,
    stored_sender,
)
from dk2020flow.notify.render import RenderedMail
from dk2020flow.notify.transports import SendResult, Transport
from dk2020flow.runtime.logs import LOGGER_NAME, log_action
from dk2020flow.settings import Settings
from dk2020flow.store.port import OutboxMessage, Store

logger = logging.getLogger(f"{LOGGER_NAME}.delivery")
MARK_EVERY = 10
"""Sent messages marked per transaction: bounds the resends after a crash to this many."""

MAX_ERROR = 1000


class RandomSource(Protocol):
    """What back-off needs of ``random.Random`` (seed it in tests)."""

    def random(self) -> float: ...


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryOutcome:
    """What happened to one message of a batch."""

    outbox_id: int
    message_id: str
    outcome: Outcome
    attempts: int
    detail: str = ""
    next_attempt_at: dt.datetime | None = None


@dataclass(kw_only=True, slots=True)
class DeliveryResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    outcomes: list[DeliveryOutcome] = field(default_factory=list)

    def add(self, outcome: DeliveryOutcome) -> None:
        self.outcomes.append(outcome)
        if outcome.outcome is Outcome.DELIVERED:
            self.sent += 1
        elif outcome.outcome is Outcome.RETRY:
            self.retried += 1
        else:
            self.dead += 1


# ----------------------------------------------------------------------------- back-off


def next_attempt(
    now: dt.datetime,
    attempts: int,
    base: dt.timedelta,
    cap: dt.timedelta,
    rng: RandomSource,
) -> dt.datetime:
    """When to try again after ``attempts`` failed tries (``attempts >= 1``).

    Exponential back-off with "equal jitter": the span doubles with every try
    (``base``, ``2·base``, ``4·base`` … up to ``cap``) and the wait is drawn
    uniformly from the upper half of it, ``[span/2, span]``, so daemons that
    failed together do not come back together, and no wait is ever shorter
    than half the span. Pure: the same ``rng`` state gives the same answer.
    """
    if attempts < 1:
        raise ValueError(f"attempts counts the tries made so far (>= 1), got {attempts}")
    if base <= dt.timedelta(0) or cap < base:
        raise ValueError(f"need 0 < base <= cap, got base={base}, cap={cap}")
    exponent = min(attempts - 1, 62)  # 2**62 · base overflows no float, and is capped anyway
    span = min(cap.total_seconds(), base.total_seconds() * 2.0**exponent)
    wait = span / 2 + rng.random() * span / 2
    return now + dt.timedelta(seconds=wait)


# ----------------------------------------------------------------------------- messages


class UnsendableError(ValueError):
    """The stored message cannot become a valid e-mail (a permanent failure)."""


def _ics_method(ics: str) -> CalendarMethod:
    match = re.search(r"^METHOD:([A-Za-z-]+)\s*$", ics, re.MULTILINE)
    try:
        return CalendarMethod(match.group(1).upper()) if match else CalendarMethod.PUBLISH
    except ValueError:
        return CalendarMethod.PUBLISH


@functools.lru_cache(maxsize=64)
def sender_mailbox(sender: str | tuple[str, str]) -> tuple[str, str]:
    """``"Name <addr>"`` (or a ``(name, addr)`` pair) as a ``(name, addr)`` pair."""
    if isinstance(sender, tuple):
        return sender
    name, address = parseaddr(sender)
    return (name, address or sender)


def build_email(
    row: OutboxMessage,
    *,
    sender: str | tuple[str, str],
    date: dt.datetime,
    render: bool = True,
) -> MimeMessage:
    """The e-mail for an outbox row: From, To, Cc, Subject, Date, the row's
    Message-ID, the text body with the HTML alternative, and the ``.ics``.

    Raises ``UnsendableError`` for a row that can never be sent (no recipient,
    an invalid address, a header that would carry a line break). ``render=False``
    (a transport whose ``reads_mime`` is False) leaves the MIME bytes unmade.
    """
    if not row.to:
        raise UnsendableError(
            "the message has no recipient (add a contact, then `dk2020flow outbox retry`)"
        )
    try:
        return build_message(
            RenderedMail(subject=row.subject, text=row.text, html=row.html),
            # The workflow's sender, fixed when the mail was queued; ``sender`` for older rows.
            sender=stored_sender(row.intent) or sender_mailbox(sender),
            to=row.to,
            cc=row.cc,
            message_id=row.message_id,
            date=date,
            language=row.language,
            calendar=(
                CalendarAttachment(content=row.ics, method=_ics_method(row.ics))
                if row.ics
                else None
            ),
            headers={"X-Dk2020flow-Outbox-Id": str(row.id)},
            render=render,
        )
    except (MessageError, InvalidAddressError) as exc:
        raise UnsendableError(str(exc)) from exc
    except (ValueError, TypeError) as exc:
        raise UnsendableError(f"the message cannot be built: {exc}") from exc


# ----------------------------------------------------------------------------- delivery


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def _refusals(answer: SendResult) -> str:
    """The per-recipient refusals of a partly accepted message, for ``last_error``."""
    if not answer.refused:
        return ""
    return _clip(
        "some recipients refused: "
        + "; ".join(f"{r.address}: {r.code} {r.reason}" for r in answer.refused)
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class _Batch:
    store: Store
    now: dt.datetime
    settings: Settings
    rng: RandomSource
    on_outcome: Callable[[DeliveryOutcome], None] | None


def _record(
    batch: _Batch,
    result: DeliveryResult,
    row: OutboxMessage,
    kind: Outcome,
    detail: str,
    next_attempt_at: dt.datetime | None = None,
) -> None:
    """Count, log and report what became of ``row``."""
    outcome = DeliveryOutcome(
        outbox_id=row.id,
        message_id=row.message_id,
        outcome=kind,
        attempts=row.attempts,
        detail=detail,
        next_attempt_at=next_attempt_at,
    )
    result.add(outcome)
    fields: dict[str, Any] = {
        "outbox_id": outcome.outbox_id,
        "message_id": outcome.message_id,
        "attempts": outcome.attempts,
    }
    if outcome.next_attempt_at is not None:
        fields["next_attempt_at"] = outcome.next_attempt_at
    if outcome.detail:
        fields["error"] = outcome.detail
    log_action(
        logger,
        outcome.outcome.value,
        level=logging.WARNING if outcome.outcome is Outcome.DEAD else logging.INFO,
        **fields,
    )
    if batch.on_outcome is not None:
        batch.on_outcome(outcome)


def _mark_sent(
    batch: _Batch, sent: list[tuple[OutboxMessage, str]], result: DeliveryResult
) -> None:
    """Mark the messages sent so far, in one transaction (they were all sent already)."""
    if not sent:
        return
    done = list(sent)
    sent.clear()
    with batch.store.transaction() as tx:
        # Some recipients may have refused: sent, with the refusals kept in last_error.
        tx.mark_sent_many([(row.id, note) for row, note in done], batch.now)
    for row, note in done:
        _record(batch, result, row, Outcome.DELIVERED, note)


def _mark_dead(batch: _Batch, row: OutboxMessage, result: DeliveryResult, error: str) -> None:
    error = _clip(error)
    with batch.store.transaction() as tx:
        tx.mark_dead(row.id, error, batch.now)
    _record(batch, result, row, Outcome.DEAD, error)


def _mark_failed(batch: _Batch, row: OutboxMessage, result: DeliveryResult, error: str) -> None:
    """A temporary failure: back off, or give up after ``mail_max_attempts`` tries."""
    settings = batch.settings
    if row.attempts >= settings.mail_max_attempts:
        _mark_dead(
            batch, row, result, f"gave up after {row.attempts} attempts; last error: {error}"
        )
        return
    error = _clip(error)
    when = next_attempt(
        batch.now,
        max(row.attempts, 1),
        dt.timedelta(seconds=settings.mail_backoff_seconds),
        dt.timedelta(seconds=max(settings.mail_backoff_max_seconds, settings.mail_backoff_seconds)),
        batch.rng,
    )
    with batch.store.transaction() as tx:
        tx.mark_retry(row.id, when, error)
    _record(batch, result, row, Outcome.RETRY, error, next_attempt_at=when)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    if isinstance(exc, TemporaryDeliveryError | PermanentDeliveryError):
        return text or name
    return f"{name}: {text}" if text else name


async def _close_quietly(transport: Transport) -> None:
    try:
        await transport.close()
    except Exception:  # closing a broken connection must not mask the real outcome
        logger.debug("closing the transport failed", exc_info=True)


async def adeliver_batch(
    store: Store,
    transport: Transport,
    *,
    now: dt.datetime,
    settings: Settings,
    rng: RandomSource,
    sender: str | tuple[str, str],
    on_outcome: Callable[[DeliveryOutcome], None] | None = None,
) -> DeliveryResult:
    """The async body of :func:`deliver_batch`."""
    rows = _claim(store, now, settings)
    return await _send_claimed(
        store,
        transport,
        rows,
        now=now,
        settings=settings,
        rng=rng,
        sender=sender,
        on_outcome=on_outcome,
    )


async def adeliver_message(
    store: Store,
    transport: Transport,
    message_id: int,
    *,
    now: dt.datetime,
    settings: Settings,
    rng: RandomSource,
    sender: str | tuple[str, str],
) -> DeliveryResult:
    """Deliver one given message now, as a batch of one (a sign-in mail, so that the user
    need not wait for the daemon). Nothing claimed (``claimed == 0``) if it is not pending
    and due; a failure leaves it for the daemon exactly as in a batch."""
    lease_until = now + dt.timedelta(seconds=settings.mail_lease_seconds)
    with store.transaction() as tx:
        row = tx.claim_message(message_id, now, lease_until)
    return await _send_claimed(
        store,
        transport,
        [row] if row is not None else [],
        now=now,
        settings=settings,
        rng=rng,
        sender=sender,
        on_outcome=None,
    )


def _claim(store: Store, now: dt.datetime, settings: Settings) -> list[OutboxMessage]:
    """Step 1: take up to ``mail_batch_size`` messages, with a lease."""
    lease_until = now + dt.timedelta(seconds=settings.mail_lease_seconds)
    with store.transaction() as tx:
        return tx.claim_outbox(now, settings.mail_batch_size, lease_until)


async def _send_claimed(
    store: Store,
    transport: Transport,
    rows: list[OutboxMessage],
    *,
    now: dt.datetime,
    settings: Settings,
    rng: RandomSource,
    sender: str | tuple[str, str],
    on_outcome: Callable[[DeliveryOutcome], None] | None,
) -> DeliveryResult:
    """Steps 2 and 3: send the claimed messages and mark them."""
    batch = _Batch(store=store, now=now, settings=settings, rng=rng, on_outcome=on_outcome)
    result = DeliveryResult()
    result.claimed = len(rows)
    if not rows:
        return result

    connected = False
    connect_error = ""
    # Sent but not yet marked: marked together, in one transaction, every MARK_EVERY
    # messages, before any other mark (so outcomes keep their order) and when the batch
    # ends. A crash before that leaves them `sending`; they go out again after the lease
    # with the same Message-ID (at least once; at most MARK_EVERY repeats per crash).
    sent: list[tuple[OutboxMessage, str]] = []
    try:
        for position, row in enumerate(rows):
            try:
                message = build_email(
                    row, sender=sender, date=now, render=getattr(transport, "reads_mime", True)
                )
            except UnsendableError as exc:
                _mark_sent(batch, sent, result)
                _mark_dead(batch, row, result, str(exc))
                continue
            if not connected:
                try:
                    await transport.open()
                    connected = True
                except PermanentDeliveryError as exc:
                    connect_error = f"cannot connect to the mail server: {_describe(exc)}"
                except (TemporaryDeliveryError, OSError, TimeoutError) as exc:
                    connect_error = f"cannot connect to the mail server: {_describe(exc)}"
                if not connected:
                    # No connection for this batch: every message left waits for the next try.
                    _mark_sent(batch, sent, result)
                    for rest in rows[position:]:
                        _mark_failed(batch, rest, result, connect_error)
                    break
            try:
                answer = await transport.send(message, envelope_recipients(message))
            except PermanentDeliveryError as exc:
                _mark_sent(batch, sent, result)
                _mark_dead(batch, row, result, _describe(exc))
                continue
            except (TemporaryDeliveryError, OSError, TimeoutError) as exc:
                _mark_sent(batch, sent, result)
                _mark_failed(batch, row, result, _describe(exc))
                # The connection may be gone: reopen it for the next message.
                await _close_quietly(transport)
                connected = False
                continue
            sent.append((row, _refusals(answer)))
            if len(sent) >= MARK_EVERY:
                _mark_sent(batch, sent, result)
        _mark_sent(batch, sent, result)
    except BaseException:
        # Interrupted (a store error, cancellation): keep what was sent from going
        # out twice if the store still takes the marks; if not, the lease brings it back.
        try:
            _mark_sent(batch, sent, result)
        except Exception:
            logger.debug("marking the sent messages failed", exc_info=True)
        raise
    finally:
        if connected:
            await _close_quietly(transport)
    return result


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def deliver_batch(
    store: Store,
    transport: Transport,
    *,
    now: dt.datetime,
    settings: Settings,
    rng: RandomSource,
    sender: str | tuple[str, str],
    on_outcome: Callable[[DeliveryOutcome], None] | None = None,
) -> DeliveryResult:
    """Deliver one batch of the outbox as of ``now``; see the module docstring.

    ``sender`` is the From header (``MailSettings``' sender). Store errors
    propagate (the claimed rows keep their lease and are taken again when it
    expires); transport errors never do: they become retries or dead letters.
    """
    if _loop_running():
        # As asyncio.run would, but before anything is claimed.
        raise RuntimeError("deliver_batch() cannot be called from a running event loop")
    # The claim needs no event loop: when nothing is due, none is started.
    rows = _claim(store, now, settings)
    if not rows:
        return DeliveryResult()
    return asyncio.run(
        _send_claimed(
            store,
            transport,
            rows,
            now=now,
            settings=settings,
            rng=rng,
            sender=sender,
            on_outcome=on_outcome,
        )
    )
