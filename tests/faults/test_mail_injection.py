"""Case data that tries to inject mail headers or HTML.

The ``inject`` workflow mails the case's contact person (``contact_person_name`` and
``contact_person_email`` fields) with the transition's comment in the subject, text and HTML.
Line breaks in names and addresses are refused at the edge (nothing changes) or, where a text
field may hold one, flattened in the header; a comment may hold
line breaks, ``<script>`` and ``<img onerror>``: the queued outbox row and the message the SMTP
server receives carry them as escaped body text only — no extra header, no extra recipient, no
markup."""

from __future__ import annotations

import random
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from dk2020flow.clock import ManualClock
from dk2020flow.errors import RefusedError
from dk2020flow.notify.transports import SmtpTransport
from dk2020flow.runtime.delivery import deliver_batch
from dk2020flow.service import Service
from dk2020flow.settings import Settings
from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore
from integration.runtime.conftest import SmtpServer

from .conftest import DATA, T0, read_conn, table_counts

INJECT = DATA / "workflows" / "inject.yaml"
NAME = "<script>alert('navn')</script> Anna"
EMAIL = "anna@aarhus.example.dk"
COMMENT = (
    "Hej\r\nBcc: victim@example.dk\r\nX-Injected: yes\r\n\r\n"
    '<script>alert(1)</script><img src=x onerror=alert(2)> & "quotes"'
)
BAD_VALUES = [
    {"contact_person_name": "Anna\r\nBcc: victim@example.dk", "contact_person_email": EMAIL},
    {"contact_person_name": "Anna\nX-Injected: yes", "contact_person_email": EMAIL},
    {"contact_person_name": "Anna", "contact_person_email": f"{EMAIL}\r\nBcc: victim@example.dk"},
    {"contact_person_name": "Anna", "contact_person_email": f"Anna <{EMAIL}>, victim@example.dk"},
]


@pytest.fixture
def service(sqlite_url: str) -> Any:
    store = SqlStore(sqlite_url)
    service = Service(store, clock=ManualClock(T0), settings=Settings())
    service.load_workflow(INJECT)
    service.open_case("inject", "Aarhus", actor="test", role="clerk")
    try:
        yield service
    finally:
        store.close()


def _deliver(service: Service, server: SmtpServer) -> None:
    result = deliver_batch(
        service.store,
        SmtpTransport(host="127.0.0.1", port=server.port, timeout=5, starttls=False),
        now=T0,
        settings=Settings(),
        rng=random.Random(1),
        sender=("DK2020", "dk2020@concito.example.dk"),
    )
    assert result.sent == 1, result


@pytest.mark.parametrize(
    "values", BAD_VALUES, ids=["crlf-name", "lf-name", "crlf-email", "list-email"]
)
def test_line_breaks_in_names_and_addresses_never_reach_a_header(
    service: Service, smtp_server: SmtpServer, values: dict[str, str]
) -> None:
    before = table_counts(service.store)
    try:
        service.fire("Aarhus", "register", actor="test", role="clerk", data=values)
    except RefusedError as error:
        refusal = str(error)
    else:
        refusal = ""
    if refusal:
        # Refused at the edge, with the field named, and nothing changed.
        assert "contact_person" in refusal
        assert table_counts(service.store) == before
        return
    # Accepted (a text field may hold a line break): the header gets it flattened.
    service.fire("Aarhus", "reply", actor="test", role="clerk")
    _deliver(service, smtp_server)
    ((recipients, raw),) = smtp_server.messages
    assert sorted(recipients) == sorted([EMAIL, "clerk@inject.example.dk"])
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"victim" not in head
    message = message_from_bytes(raw, policy=policy.default)
    names = [name.lower() for name in message]
    assert "bcc" not in names and "x-injected" not in names


def _headers(message: EmailMessage) -> list[tuple[str, str]]:
    return [(k.lower(), str(v)) for k, v in message.items()]


def test_a_comment_cannot_add_headers_recipients_or_markup(
    service: Service, smtp_server: SmtpServer
) -> None:
    service.fire(
        "Aarhus",
        "register",
        actor="test",
        role="clerk",
        data={"contact_person_name": NAME, "contact_person_email": EMAIL},
    )
    service.fire("Aarhus", "reply", actor="test", role="clerk", comment=COMMENT)

    # The queued row: a one-line subject, escaped HTML.
    o = t.outbox.c
    with read_conn(service.store) as conn:
        (row,) = conn.execute(select(o.subject, o.html, o.text, o.to_addresses)).all()
    subject, html, text, to = row
    assert "\r" not in subject and "\n" not in subject
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;img" in html
    assert [address for _, address in to] == [EMAIL]
    assert "Bcc: victim@example.dk" in text  # in the body, as the person wrote it

    # The message as the SMTP server receives it.
    _deliver(service, smtp_server)
    ((recipients, raw),) = smtp_server.messages
    assert sorted(recipients) == sorted([EMAIL, "clerk@inject.example.dk"])
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    names = [name for name, _ in _headers(message)]
    assert "bcc" not in names and "x-injected" not in names
    assert names.count("to") == 1 and names.count("subject") == 1
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"victim@example.dk" not in head
    html_part = message.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    delivered_html = str(html_part.get_content())
    assert "<script" not in delivered_html and "<img" not in delivered_html
    assert "&lt;script&gt;" in delivered_html
