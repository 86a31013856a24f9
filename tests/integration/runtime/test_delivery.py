"""Outbox delivery against a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import datetime as dt
import email
import random
from email import policy
from email.message import EmailMessage

import pytest

from dk2020flow.notify.transports import SmtpTransport
from dk2020flow.runtime.delivery import Outcome, deliver_batch, next_attempt
from dk2020flow.settings import Settings
from dk2020flow.store.port import OutboxStatus
from dk2020flow.store.repository import SqlStore

from .conftest import ICS, T0, SmtpServer, free_port, new_mail, queue

SENDER = ("DK2020-sekretariatet", "dk2020@concito.example.dk")


def transport(port: int) -> SmtpTransport:
    return SmtpTransport(host="127.0.0.1", port=port, timeout=5)


def deliver(store: SqlStore, port: int, now: dt.datetime, settings: Settings, seed: int = 1):  # type: ignore[no-untyped-def]
    return deliver_batch(
        store, transport(port), now=now, settings=settings, rng=random.Random(seed), sender=SENDER
    )


def row(store: SqlStore, row_id: int):  # type: ignore[no-untyped-def]
    with store.read() as tx:
        found = tx.outbox_message(row_id)
    assert found is not None
    return found


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


# ----------------------------------------------------------------------------- back-off


def test_next_attempt_doubles_with_jitter_and_is_capped() -> None:
    base, cap = dt.timedelta(seconds=60), dt.timedelta(hours=1)
    rng = random.Random(42)
    waits = [(next_attempt(T0, n, base, cap, rng) - T0).total_seconds() for n in range(1, 10)]
    spans = [min(3600.0, 60.0 * 2 ** (n - 1)) for n in range(1, 10)]
    for wait, span in zip(waits, spans, strict=True):
        assert span / 2 <= wait <= span
    assert waits[-1] <= 3600
    # Pure: the same seed gives the same answers.
    again = random.Random(42)
    assert waits == [
        (next_attempt(T0, n, base, cap, again) - T0).total_seconds() for n in range(1, 10)
    ]


def test_next_attempt_table() -> None:
    class Fixed:
        def __init__(self, value: float) -> None:
            self.value = value

        def random(self) -> float:
            return self.value

    base, cap = dt.timedelta(minutes=1), dt.timedelta(minutes=10)
    cases = [
        (1, 0.0, 30),
        (1, 1.0, 60),
        (2, 0.0, 60),
        (3, 0.5, 180),
        (5, 1.0, 600),  # 16 min capped to 10
        (50, 0.0, 300),
    ]
    for attempts, draw, seconds in cases:
        assert next_attempt(T0, attempts, base, cap, Fixed(draw)) == T0 + dt.timedelta(
            seconds=seconds
        )
    with pytest.raises(ValueError, match="attempts"):
        next_attempt(T0, 0, base, cap, Fixed(0))


# ----------------------------------------------------------------------------- delivery


def test_message_arrives_whole(
    sqlite_store: SqlStore, smtp_server: SmtpServer, settings: Settings
) -> None:
    (row_id,) = queue(
        sqlite_store,
        new_mail(cc=(("Borgmester", "borgmester@aarhus.example.dk"),), ics=ICS),
    )
    result = deliver(sqlite_store, smtp_server.port, T0, settings)
    assert (result.claimed, result.sent, result.retried, result.dead) == (1, 1, 0, 0)
    stored = row(sqlite_store, row_id)
    assert stored.status is OutboxStatus.SENT
    assert stored.sent_at == T0
    assert stored.attempts == 1

    (rcpts, raw) = smtp_server.messages[0]
    assert sorted(rcpts) == ["borgmester@aarhus.example.dk", "kontakt@aarhus.example.dk"]
    msg = parse(raw)
    assert msg["Message-ID"] == stored.message_id
    assert msg["Subject"] == "Påmindelse: svar senest 31. august"
    assert "dk2020@concito.example.dk" in msg["From"]
    assert "kontakt@aarhus.example.dk" in msg["To"]
    assert "borgmester@aarhus.example.dk" in msg["Cc"]
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and "Husk at svare." in text.get_content()
    assert html is not None and "<b>svare</b>" in html.get_content()
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["invitation.ics"]
    assert attachments[0].get_content_type() == "text/calendar"
    assert b"UID:deadline-1-reply_deadline@dk2020flow" in attachments[0].get_payload(decode=True)


def test_one_connection_for_a_batch(
    sqlite_store: SqlStore, smtp_server: SmtpServer, settings: Settings
) -> None:
    queue(sqlite_store, *[new_mail((("", f"k{n}@example.dk"),)) for n in range(5)])
    opened = 0

    class Counting(SmtpTransport):
        async def open(self) -> None:
            nonlocal opened
            if not self.connected:
                opened += 1
            await super().open()

    result = deliver_batch(
        sqlite_store,
        Counting(host="127.0.0.1", port=smtp_server.port, timeout=5),
        now=T0,
        settings=settings,
        rng=random.Random(1),
        sender=SENDER,
    )
    assert result.sent == 5
    assert opened == 1
    assert len(smtp_server.messages) == 5


def test_server_down_then_up_is_delivered_after_retries(
    sqlite_store: SqlStore, settings: Settings
) -> None:
    port = free_port()
    (row_id,) = queue(sqlite_store, new_mail())
    now = T0
    for attempt in (1, 2):
        result = deliver(sqlite_store, port, now, settings)  # nobody listens on the port
        assert result.retried == 1, result
        stored = row(sqlite_store, row_id)
        assert stored.status is OutboxStatus.PENDING
        assert stored.attempts == attempt
        assert "connect" in stored.last_error
        assert stored.next_attempt_at > now
        # Not due again before next_attempt_at …
        assert deliver(sqlite_store, port, now, settings).claimed == 0
        now = stored.next_attempt_at
    server = SmtpServer(port)
    server.start()
    try:
        result = deliver(sqlite_store, port, now, settings)
    finally:
        server.stop()
    assert result.sent == 1
    stored = row(sqlite_store, row_id)
    assert stored.status is OutboxStatus.SENT
    assert stored.attempts == 3
    assert len(server.messages) == 1


def test_too_many_attempts_make_it_dead(sqlite_store: SqlStore, settings: Settings) -> None:
    port = free_port()
    (row_id,) = queue(sqlite_store, new_mail())
    now = T0
    for _ in range(settings.mail_max_attempts):
        deliver(sqlite_store, port, now, settings)
        now = row(sqlite_store, row_id).next_attempt_at
    stored = row(sqlite_store, row_id)
    assert stored.status is OutboxStatus.DEAD
    assert stored.attempts == settings.mail_max_attempts
    assert f"gave up after {settings.mail_max_attempts} attempts" in stored.last_error


def test_5xx_is_dead(sqlite_store: SqlStore, smtp_server: SmtpServer, settings: Settings) -> None:
    smtp_server.handler.data_reply = "554 5.7.1 Message rejected as spam"
    (row_id,) = queue(sqlite_store, new_mail())
    result = deliver(sqlite_store, smtp_server.port, T0, settings)
    assert result.dead == 1
    stored = row(sqlite_store, row_id)
    assert stored.status is OutboxStatus.DEAD
    assert "554" in stored.last_error


def test_4xx_is_retried(
    sqlite_store: SqlStore, smtp_server: SmtpServer, settings: Settings
) -> None:
    smtp_server.handler.data_reply = "451 4.3.0 Try again later"
    (row_id,) = queue(sqlite_store, new_mail())
    result = deliver(sqlite_store, smtp_server.port, T0, settings)
    assert result.retried == 1
    assert row(sqlite_store, row_id).status is OutboxStatus.PENDING
    assert "451" in row(sqlite_store, row_id).last_error


def test_every_recipient_refused_is_dead_with_the_reasons(
    sqlite_store: SqlStore, smtp_server: SmtpServer, settings: Settings
) -> None:
    smtp_server.handler.refuse_rcpt = {"kontakt@aarhus.example.dk": "550 5.1.1 no such user"}
    (row_id,) = queue(sqlite_store, new_mail())
    result = deliver(sqlite_store, smtp_server.port, T0, settings)
    assert result.dead == 1
    stored = row(sqlite_store, row_id)
    assert stored.status is OutboxStatus.DEAD
    assert "kontakt@aarhus.example.dk" in stored.last_error
    assert "550" in stored.last_error


def test_some_recipients_refused_is_sent_with_the_refusals_noted(
    sqlite_store: SqlStore, smtp_server: SmtpServer, settings: Settings
) -> None:
    smtp_server.handler.refuse_rcpt = {"gone@aarhus.example.dk": "550 5.1.1 no such user"}
    (row_id,) = queue(
        sqlite_store, new_mail((("", "kontakt@aarhus.example.dk"), ("", "gone@aarhus.example.dk")))
    )
    result = deliver(sqlite_store, smtp_server.port, T0, settings)
    assert result.sent == 1
    assert result.outcomes[0].outcome is Outcome.DELIVERED
    assert "gone@aarhus.example.dk" in result.outcomes[0].detail
    stored = row(sqlite_store, row_id)
    assert stored.status is OutboxStatus.SENT
    assert smtp_server.messages[0][0] == ["kontakt@aarhus.example.dk"]
    assert "gone@aarhus.example.dk: 550" in stored.last_error


def test_unsendable_rows_are_dead_and_do_not_stop_the_batch(
    sqlite_store: SqlStore, smtp_server: SmtpServer, settings: Settings
) -> None:
    bad, good = queue(
        sqlite_store,
        new_mail((("", "not an address"),)),
        new_mail(),
    )
    result = deliver(sqlite_store, smtp_server.port, T0, settings)
    assert (result.sent, result.dead) == (1, 1)
    assert row(sqlite_store, bad).status is OutboxStatus.DEAD
    assert "not an address" in row(sqlite_store, bad).last_error
    assert row(sqlite_store, good).status is OutboxStatus.SENT


def test_header_injection_is_refused(
    sqlite_store: SqlStore, smtp_server: SmtpServer, settings: Settings
) -> None:
    (row_id,) = queue(
        sqlite_store, new_mail((("Eve\r\nBcc: victim@example.dk", "eve@example.dk"),))
    )
    deliver(sqlite_store, smtp_server.port, T0, settings)
    for _, raw in smtp_server.messages:
        assert b"\r\nBcc:" not in raw.split(b"\r\n\r\n")[0]
    assert row(sqlite_store, row_id).status in (OutboxStatus.SENT, OutboxStatus.DEAD)


def test_an_expired_lease_is_sent_again_with_the_same_message_id(
    sqlite_store: SqlStore, smtp_server: SmtpServer, settings: Settings
) -> None:
    """In-process version of the crash between send and mark (see test_faults for kill -9)."""
    (row_id,) = queue(sqlite_store, new_mail())
    with sqlite_store.transaction() as tx:
        claimed = tx.claim_outbox(T0, 10, T0 + dt.timedelta(seconds=settings.mail_lease_seconds))
    assert [m.id for m in claimed] == [row_id]
    # The process "died" here: nothing marks it. Before the lease expires nobody takes it …
    assert (
        deliver(sqlite_store, smtp_server.port, T0 + dt.timedelta(seconds=10), settings).claimed
        == 0
    )
    # … afterwards it is sent, with its Message-ID.
    later = T0 + dt.timedelta(seconds=settings.mail_lease_seconds + 1)
    assert deliver(sqlite_store, smtp_server.port, later, settings).sent == 1
    stored = row(sqlite_store, row_id)
    assert stored.status is OutboxStatus.SENT
    assert parse(smtp_server.messages[0][1])["Message-ID"] == stored.message_id
