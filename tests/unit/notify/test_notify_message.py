"""Building messages: header safety, addresses, structure, Message-IDs."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest

from dk2020flow.errors import Dk2020flowError
from dk2020flow.notify import (
    InvalidAddressError,
    MessageError,
    MimeMessage,
    PermanentDeliveryError,
    RenderedMail,
    build_message,
    envelope_recipients,
    event_calendar,
    make_message_id,
    validate_address,
)

CPH = ZoneInfo("Europe/Copenhagen")
DATE = dt.datetime(2020, 8, 17, 9, 0, tzinfo=CPH)
MAIL = RenderedMail(
    subject="Invitation til DK2020", text="Kære Mette\n", html="<p>Kære Mette</p>\n"
)
SENDER = ("DK2020-sekretariatet hos CONCITO", "dk2020@concito.example.dk")


def _build(**changes: object) -> MimeMessage:
    kwargs: dict[str, object] = {
        "sender": SENDER,
        "to": [("Mette Lindholm", "mette.lindholm@aarhus.example.dk")],
        "message_id": make_message_id(42, "dk2020.example.dk", 751),
        "date": DATE,
    }
    kwargs.update(changes)
    mail = kwargs.pop("mail", MAIL)
    return build_message(mail, **kwargs)  # type: ignore[arg-type]


def _reparse(message: MimeMessage) -> EmailMessage:
    return message.to_email_message()


def test_message_has_every_header_and_both_bodies() -> None:
    message = _reparse(_build(cc=[("Søren Kjær", "soren.kjaer@rm.example.dk")], language="da"))
    assert message["Message-ID"] == "<outbox-42.751@dk2020.example.dk>"
    assert message["From"] == "DK2020-sekretariatet hos CONCITO <dk2020@concito.example.dk>"
    assert message["To"] == "Mette Lindholm <mette.lindholm@aarhus.example.dk>"
    assert message["Cc"] == "Søren Kjær <soren.kjaer@rm.example.dk>"
    assert message["Subject"] == "Invitation til DK2020"
    assert message["Date"] == "Mon, 17 Aug 2020 09:00:00 +0200"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == "da"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert text.get_content().replace("\r\n", "\n") == "Kære Mette\n"
    assert html is not None
    assert html.get_content().replace("\r\n", "\n") == "<p>Kære Mette</p>\n"
    assert envelope_recipients(message) == [
        "mette.lindholm@aarhus.example.dk",
        "soren.kjaer@rm.example.dk",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "Mette\r\nBcc: evil@example.com",
        "Mette\nBcc: evil@example.com",
        "Mette\rBcc: evil@example.com",
        "Mette\u2028Bcc: evil@example.com",
        "Mette\x00\x0bBcc: evil@example.com",
    ],
)
def test_line_breaks_in_names_and_subject_never_reach_a_header(name: str) -> None:
    mail = RenderedMail(subject=f"Til {name}", text="x\n", html="<p>x</p>\n")
    message = _build(mail=mail, to=[(name, "mette@aarhus.example.dk")], sender=(name, SENDER[1]))
    raw = message.as_bytes()
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in header_block
    assert b"\nBcc:" not in header_block
    parsed = _reparse(message)
    assert parsed["Bcc"] is None
    assert envelope_recipients(parsed) == ["mette@aarhus.example.dk"]
    assert "Bcc: evil@example.com" in parsed["Subject"]


@pytest.mark.parametrize(
    "address",
    [
        "mette@aarhus.example.dk\r\nBcc: evil@example.com",
        "mette@aarhus.example.dk\nRCPT TO:<evil@example.com>",
        "not an address",
        "mette@",
        "@aarhus.example.dk",
        "",
        "mette@aarhus..dk",
    ],
)
def test_bad_addresses_are_refused_with_a_clear_error(address: str) -> None:
    with pytest.raises(InvalidAddressError) as raised:
        _build(to=[("Mette", address)])
    assert isinstance(raised.value, PermanentDeliveryError)
    assert isinstance(raised.value, Dk2020flowError)
    assert "address" in str(raised.value)


def test_validate_address_normalises() -> None:
    assert validate_address("Mette.Lindholm@AARHUS.example.dk") == (
        "Mette.Lindholm@aarhus.example.dk"
    )
    assert validate_address("søren@rm.example.dk") == "søren@rm.example.dk"


def test_message_id_is_stable_and_checked() -> None:
    assert make_message_id(7, "DK2020.example.dk") == "<outbox-7@dk2020.example.dk>"
    assert make_message_id("a b", "x.dk", "751/2") == "<outbox-a-b.751-2@x.dk>"
    with pytest.raises(MessageError, match="Message-ID domain"):
        make_message_id(1, "bad domain\r\n")
    with pytest.raises(MessageError, match="not a valid Message-ID"):
        _build(message_id="<x@y>\r\nBcc: evil@example.com")


def test_extra_headers_are_checked() -> None:
    assert _build(headers={"X-DK2020-Case": "751"})["X-DK2020-Case"] == "751"
    with pytest.raises(MessageError, match="line break"):
        _build(headers={"X-DK2020-Case": "751\r\nBcc: evil@example.com"})
    with pytest.raises(MessageError, match="header name"):
        _build(headers={"X: Bcc": "x"})


def test_naive_date_and_no_recipient_are_refused() -> None:
    with pytest.raises(MessageError, match="timezone-aware"):
        _build(date=dt.datetime(2020, 8, 17, 9, 0))
    with pytest.raises(MessageError, match="at least one recipient"):
        _build(to=[])


def test_calendar_attachment_keeps_crlf_and_method() -> None:
    calendar = event_calendar(
        uid="event-dk2020-round1-start_conference@dk2020.example.dk",
        summary="Startkonference for runde 1",
        starts_at=dt.datetime(2020, 11, 26, 10, 0, tzinfo=CPH),
        ends_at=dt.datetime(2020, 11, 26, 16, 0, tzinfo=CPH),
        timezone="Europe/Copenhagen",
        stamp=DATE,
        organizer=SENDER,
        attendees=(("Mette Lindholm", "mette.lindholm@aarhus.example.dk"),),
        location="Online",
    )
    message = _reparse(_build(calendar=calendar))
    assert message.get_content_type() == "multipart/mixed"
    [attachment] = list(message.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "REQUEST"
    assert attachment.get_filename() == "invitation.ics"
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert payload.startswith(b"BEGIN:VCALENDAR\r\n")
    assert b"\r\nMETHOD:REQUEST\r\n" in payload
    assert message.get_body(("plain",)) is not None
