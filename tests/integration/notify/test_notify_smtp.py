"""SmtpTransport against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import socket
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from dk2020flow.notify import (
    DeliveryError,
    PermanentDeliveryError,
    RenderedMail,
    SendOutcome,
    SendResult,
    SmtpTransport,
    TemporaryDeliveryError,
    build_message,
    envelope_recipients,
    event_calendar,
    make_message_id,
)
from dk2020flow.notify.message import MimeMessage

from .conftest import RecordingHandler, SmtpServer, free_port

CPH = ZoneInfo("Europe/Copenhagen")
SENDER = ("DK2020-sekretariatet hos CONCITO", "dk2020@concito.example.dk")
METTE = ("Mette Lindholm", "mette.lindholm@aarhus.example.dk")
SOREN = ("Søren Kjær", "soren.kjaer@rm.example.dk")


def _message(
    outbox_id: int, *, calendar: bool = False, to: tuple[tuple[str, str], ...] = (METTE,)
) -> MimeMessage:
    attachment = None
    if calendar:
        attachment = event_calendar(
            uid="event-dk2020-round1-start_conference@dk2020.example.dk",
            summary="Startkonference for runde 1",
            starts_at=dt.datetime(2020, 11, 26, 10, 0, tzinfo=CPH),
            ends_at=dt.datetime(2020, 11, 26, 16, 0, tzinfo=CPH),
            timezone="Europe/Copenhagen",
            stamp=dt.datetime(2020, 11, 1, 8, 0, tzinfo=dt.UTC),
            organizer=SENDER,
            attendees=to,
            location="Online",
        )
    mail = RenderedMail(
        subject=f"Invitation: Startkonference for runde 1 ({outbox_id})",
        text="Kære Mette Lindholm,\n\nAarhus Kommune er inviteret.\n",
        html="<p>Kære Mette Lindholm,</p><p>Aarhus Kommune er inviteret.</p>\n",
    )
    return build_message(
        mail,
        sender=SENDER,
        to=list(to),
        cc=[SOREN],
        message_id=make_message_id(outbox_id, "dk2020.example.dk", 751),
        date=dt.datetime(2020, 11, 1, 9, 0, tzinfo=CPH),
        calendar=attachment,
        language="da",
    )


def _transport(server: SmtpServer, **kwargs: object) -> SmtpTransport:
    return SmtpTransport(host=server.host, port=server.port, starttls=False, timeout=5, **kwargs)  # type: ignore[arg-type]


def test_a_message_arrives_whole(smtp_server: SmtpServer) -> None:
    message = _message(1, calendar=True)

    async def run() -> SendResult:
        transport = _transport(smtp_server)
        try:
            return await transport.send(message, envelope_recipients(message))
        finally:
            await transport.close()

    result = asyncio.run(run())
    assert result.outcome is SendOutcome.SENT
    assert result.accepted == (METTE[1], SOREN[1])
    [received] = smtp_server.handler.messages
    assert received.mail_from == SENDER[1]
    assert received.rcpt_tos == [METTE[1], SOREN[1]]
    # The bytes written once, as the folder transport writes them too.
    assert received.content == message.as_bytes()
    parsed = email.message_from_bytes(received.content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Message-ID"] == "<outbox-1.751@dk2020.example.dk>"
    assert parsed["Subject"] == "Invitation: Startkonference for runde 1 (1)"
    assert parsed["From"] == "DK2020-sekretariatet hos CONCITO <dk2020@concito.example.dk>"
    assert parsed["To"] == "Mette Lindholm <mette.lindholm@aarhus.example.dk>"
    assert parsed["Cc"] == "Søren Kjær <soren.kjaer@rm.example.dk>"
    assert parsed["Date"] == "Sun, 01 Nov 2020 09:00:00 +0100"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert "Aarhus Kommune er inviteret." in text.get_content()
    assert html is not None
    assert "<p>Aarhus Kommune er inviteret.</p>" in html.get_content()
    [ics] = list(parsed.iter_attachments())
    assert isinstance(ics, EmailMessage)
    assert ics.get_content_type() == "text/calendar"
    assert ics.get_param("method") == "REQUEST"
    payload = ics.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert b"UID:event-dk2020-round1-start_conference@dk2020.example.dk\r\n" in payload
    assert b"BEGIN:VTIMEZONE\r\nTZID:Europe/Copenhagen" in payload


def test_one_connection_is_reused_across_a_batch(smtp_server: SmtpServer) -> None:
    async def run() -> None:
        transport = _transport(smtp_server)
        await transport.open()
        for outbox_id in range(1, 6):
            message = _message(outbox_id)
            await transport.send(message, envelope_recipients(message))
        await transport.close()

    asyncio.run(run())
    assert len(smtp_server.handler.messages) == 5
    assert len(smtp_server.handler.sessions) == 1


def test_a_dropped_connection_is_reopened_once(smtp_server: SmtpServer) -> None:
    async def run() -> list[SendResult]:
        transport = _transport(smtp_server)
        results = []
        try:
            first = _message(1)
            results.append(await transport.send(first, envelope_recipients(first)))
            smtp_server.drop_connections()  # the server hangs up on the idle connection
            second = _message(2)
            results.append(await transport.send(second, envelope_recipients(second)))
        finally:
            await transport.close()
        return results

    results = asyncio.run(run())
    assert [r.outcome for r in results] == [SendOutcome.SENT, SendOutcome.SENT]
    ids = [
        email.message_from_bytes(m.content, policy=policy.default)["Message-ID"]
        for m in smtp_server.handler.messages
    ]
    assert ids == ["<outbox-1.751@dk2020.example.dk>", "<outbox-2.751@dk2020.example.dk>"]
    assert len(smtp_server.handler.sessions) == 2


def test_one_refused_recipient_is_reported_and_the_rest_delivered(smtp_server: SmtpServer) -> None:
    smtp_server.handler.refuse[SOREN[1]] = "550 5.1.1 No such user"
    message = _message(1)

    async def run() -> SendResult:
        transport = _transport(smtp_server)
        try:
            return await transport.send(message, envelope_recipients(message))
        finally:
            await transport.close()

    result = asyncio.run(run())
    assert result.outcome is SendOutcome.PARTIAL
    assert result.accepted == (METTE[1],)
    [refusal] = result.refused
    assert (refusal.address, refusal.code, refusal.permanent) == (SOREN[1], 550, True)
    assert "No such user" in refusal.reason
    [received] = smtp_server.handler.messages
    assert received.rcpt_tos == [METTE[1]]


@pytest.mark.parametrize(
    ("replies", "error", "code"),
    [
        (("550 5.1.1 No such user", "553 5.1.3 Bad address"), PermanentDeliveryError, 553),
        (("550 5.1.1 No such user", "450 4.2.1 Mailbox busy"), TemporaryDeliveryError, 450),
    ],
)
def test_every_recipient_refused(
    smtp_server: SmtpServer,
    replies: tuple[str, str],
    error: type[DeliveryError],
    code: int,
) -> None:
    smtp_server.handler.refuse.update({METTE[1]: replies[0], SOREN[1]: replies[1]})
    message = _message(1)

    async def run() -> None:
        transport = _transport(smtp_server)
        try:
            await transport.send(message, envelope_recipients(message))
        finally:
            await transport.close()

    with pytest.raises(error) as raised:
        asyncio.run(run())
    assert raised.value.code == code
    assert smtp_server.handler.messages == []


def test_a_5xx_on_data_is_permanent_and_the_connection_stays_usable(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.handler.data_reply = "554 5.6.0 Message rejected as spam"

    async def run() -> SendResult:
        transport = _transport(smtp_server)
        try:
            first = _message(1)
            with pytest.raises(PermanentDeliveryError) as raised:
                await transport.send(first, envelope_recipients(first))
            assert raised.value.code == 554
            assert "554" in str(raised.value)
            assert "spam" in str(raised.value)
            smtp_server.handler.data_reply = None
            second = _message(2)
            return await transport.send(second, envelope_recipients(second))
        finally:
            await transport.close()

    assert asyncio.run(run()).outcome is SendOutcome.SENT
    assert len(smtp_server.handler.messages) == 1
    assert len(smtp_server.handler.sessions) == 1


def test_a_4xx_on_data_is_temporary(smtp_server: SmtpServer) -> None:
    smtp_server.handler.data_reply = "451 4.3.0 Try again later"
    message = _message(1)

    async def run() -> None:
        transport = _transport(smtp_server)
        try:
            await transport.send(message, envelope_recipients(message))
        finally:
            await transport.close()

    with pytest.raises(TemporaryDeliveryError) as raised:
        asyncio.run(run())
    assert raised.value.code == 451


def test_nothing_listening_is_temporary() -> None:
    port = free_port()
    transport = SmtpTransport(host="127.0.0.1", port=port, starttls=False, timeout=5)
    message = _message(1)
    with pytest.raises(TemporaryDeliveryError, match=f"127.0.0.1:{port}"):
        asyncio.run(transport.send(message, envelope_recipients(message)))


def test_a_server_that_never_answers_times_out_as_temporary() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        transport = SmtpTransport(host="127.0.0.1", port=port, starttls=False, timeout=0.3)
        message = _message(1)
        with pytest.raises(TemporaryDeliveryError, match="did not answer in time"):
            asyncio.run(transport.send(message, envelope_recipients(message)))


def test_starttls_required_but_not_offered_is_temporary(smtp_server: SmtpServer) -> None:
    transport = SmtpTransport(
        host=smtp_server.host, port=smtp_server.port, starttls=True, timeout=5
    )
    message = _message(1)
    with pytest.raises(TemporaryDeliveryError):
        asyncio.run(transport.send(message, envelope_recipients(message)))
    assert smtp_server.handler.messages == []


def test_invalid_recipient_is_permanent_before_anything_is_sent(smtp_server: SmtpServer) -> None:
    transport = _transport(smtp_server)
    message = _message(1)
    with pytest.raises(PermanentDeliveryError, match="not a valid e-mail address"):
        asyncio.run(transport.send(message, ["not-an-address"]))
    with pytest.raises(PermanentDeliveryError, match="no recipients"):
        asyncio.run(transport.send(message, []))
    assert smtp_server.handler.sessions == []


@pytest.fixture
def ascii_only_server() -> Iterator[SmtpServer]:
    """A server that does not offer SMTPUTF8 (aiosmtpd's default does)."""
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=False)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, handler, controller)
    finally:
        controller.stop()


def test_a_non_ascii_address_goes_with_smtputf8_and_utf8_headers(
    smtp_server: SmtpServer,
) -> None:
    soren = ("Søren Kjær", "søren@rm.example.dk")
    message = _message(1, to=(soren,))

    async def run() -> SendResult:
        transport = _transport(smtp_server)
        try:
            return await transport.send(message, envelope_recipients(message))
        finally:
            await transport.close()

    assert asyncio.run(run()).accepted == (soren[1], SOREN[1])
    [received] = smtp_server.handler.messages
    assert received.rcpt_tos == [soren[1], SOREN[1]]
    # As the email package writes it with policy.SMTPUTF8: the headers in UTF-8.
    assert received.content == message.as_bytes(utf8=True)
    assert "To: Søren Kjær <søren@rm.example.dk>\r\n".encode() in received.content
    parsed = email.message_from_bytes(received.content, policy=policy.default)
    assert parsed["Subject"] == "Invitation: Startkonference for runde 1 (1)"


def test_a_non_ascii_address_without_smtputf8_is_temporary(ascii_only_server: SmtpServer) -> None:
    message = _message(1, to=(("Søren", "søren@rm.example.dk"),))
    transport = _transport(ascii_only_server)

    async def send_then_close() -> None:
        try:
            await transport.send(message, envelope_recipients(message))
        finally:
            await transport.close()  # the connection stays open after the refusal

    with pytest.raises(TemporaryDeliveryError, match="SMTPUTF8"):
        asyncio.run(send_then_close())
    assert ascii_only_server.handler.messages == []
