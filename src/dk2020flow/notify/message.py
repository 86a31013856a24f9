"""Building the e-mail message from a rendered mail.

Every value that reaches a header is checked here: addresses are validated
with email-validator, display names and the subject lose any line breaks,
and a header that still would carry one is refused. Case data can therefore
never add a header (``Bcc:``) or end the header block early.

The message is written here too, once (:class:`MimeMessage`): its bytes are
those the email package would write for it (``notify/mime.py``), made without
building an ``EmailMessage``.
"""

from __future__ import annotations

import datetime as dt
import email
import functools
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from email_validator import EmailNotValidError, validate_email

from dk2020flow.notify import mime
from dk2020flow.notify.errors import InvalidAddressError, MessageError
from dk2020flow.notify.ics import CalendarAttachment
from dk2020flow.notify.mime import AddressList, Part
from dk2020flow.notify.render import RenderedMail

Mailbox = tuple[str, str]
"""``(display name, address)``; the name may be empty."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+@[A-Za-z0-9.\-]+>")
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")
"""Both matched whole (``fullmatch``): ``$`` would let a trailing line break through."""
_ID_PART = re.compile(r"[^A-Za-z0-9\-]")


SENDER_KEY = "sender"
"""Where a mail's stored intent (its outbox row's) keeps the ``[name, address]`` it is from."""


def stored_sender(intent: Mapping[str, object] | None) -> Mailbox | None:
    """The sender a queued mail was rendered with (its workflow's ``sender:``, or the
    setting that overrides it), or None for a row queued without one."""
    found = intent.get(SENDER_KEY) if intent else None
    if isinstance(found, list | tuple) and len(found) == 2:
        name, address = found
        if isinstance(name, str) and isinstance(address, str) and address:
            return (name, address)
    return None


def one_line(text: str) -> str:
    """A header-safe single line: control characters (CR, LF, tab …) become spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())


def validate_address(address: str) -> str:
    """The normalised address, or :class:`InvalidAddressError` saying what is wrong."""
    if not isinstance(address, str):
        raise InvalidAddressError("an e-mail address is empty")
    return _validated(address)


@functools.lru_cache(maxsize=4096)
def _validated(address: str) -> str:
    # Validation is pure and slow (email-validator parses the whole address): a
    # programme mails the same few hundred addresses thousands of times.
    if not address.strip():
        raise InvalidAddressError("an e-mail address is empty")
    if _CONTROL.search(address):
        raise InvalidAddressError(f"the e-mail address {address!r} contains a line break")
    try:
        result = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddressError(f"{address!r} is not a valid e-mail address: {exc}") from exc
    return str(result.normalized)


def make_message_id(outbox_id: int | str, domain: str, case: int | str | None = None) -> str:
    """``<outbox-42.751@domain>``: stable for an outbox row, so a resend is recognisable."""
    domain = domain.strip().lower()
    if not domain or not re.fullmatch(r"[a-z0-9.\-]+", domain):
        raise MessageError(f"{domain!r} is not a usable Message-ID domain (e.g. dk2020.example.dk)")
    local = f"outbox-{_ID_PART.sub('-', str(outbox_id))}"
    if case is not None:
        local += f".{_ID_PART.sub('-', str(case))}"
    return f"<{local}@{domain}>"


_CACHE_SIZE = 4096
_SET_HERE = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "auto-submitted",
        "resent-bcc",
    }
)
"""Headers ``build_message`` writes itself (and Bcc, which a message never carries)."""


def _address(mailbox: Mailbox) -> Address:
    name, address = mailbox
    normalised = validate_address(address)
    username, _, domain = normalised.rpartition("@")
    return Address(display_name=one_line(name or ""), username=username, domain=domain)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _address_header(
    name: str, mailboxes: tuple[Mailbox, ...]
) -> tuple[AddressList, tuple[str, ...]]:
    """The value of the ``name`` header (From, To, Cc, Reply-To) of these mailboxes,
    validated, and their addresses as the envelope gives them."""
    addresses = [_address(m) for m in mailboxes]
    return AddressList(addresses), tuple(address.addr_spec for address in addresses)


def _mailboxes(given: Sequence[Mailbox]) -> tuple[Mailbox, ...]:
    return tuple((name, address) for name, address in given)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class MimeMessage:
    """A built message, written once: what a transport sends.

    ``as_bytes()`` gives what ``EmailMessage.as_bytes(policy=policy.SMTP)`` gave
    for the same message (but for the MIME boundaries, derived from the
    Message-ID and the content). ``message["Subject"]`` reads a top-level header
    as text; :meth:`to_email_message` parses the bytes with the email package,
    for the rare reader that wants its API.
    """

    root: Part = field(repr=False)
    """The MIME tree the bytes were written from (see ``notify/mime.py``)."""
    message_id: str
    sender: str
    """The envelope sender: the From address."""
    recipients: tuple[str, ...]
    """The envelope recipients: the To and Cc addresses, without duplicates."""
    text: str = field(repr=False)
    html: str = field(repr=False)
    calendar: CalendarAttachment | None = field(repr=False)
    data: bytes = field(repr=False)
    """The message as sent over SMTP (CRLF line ends, ASCII headers)."""

    def as_bytes(self, *, utf8: bool = False) -> bytes:
        """The message for SMTP; ``utf8`` writes non-ASCII headers as UTF-8 (for a
        server that takes SMTPUTF8, as ``policy.SMTPUTF8`` would)."""
        return mime.write(self.root, utf8=True) if utf8 else self.data

    def items(self) -> Iterator[tuple[str, str]]:
        """The top-level headers, in order, with their values as text."""
        for name, value in self.root.headers:
            yield name, str(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        for found, value in self.root.headers:
            if found.lower() == wanted:
                return str(value)
        return default

    def __getitem__(self, name: str) -> str | None:
        """The header's value as text, or None (as ``EmailMessage`` answers)."""
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def to_email_message(self) -> EmailMessage:
        """The message parsed by the email package (``policy.default``)."""
        parsed = email.message_from_bytes(self.data, policy=policy.default)
        if not isinstance(parsed, EmailMessage):  # pragma: no cover - policy.default makes one
            raise TypeError("the email package did not make an EmailMessage")
        return parsed


@functools.lru_cache(maxsize=256)
def _date(local: dt.datetime, offset: dt.timedelta | None) -> str:
    # format_datetime reads nothing else: the local time and the offset (%z). A batch
    # of mail shares its date.
    return format_datetime(local.replace(tzinfo=dt.timezone(offset) if offset else dt.UTC))


def _extra_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    checked: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise MessageError(f"{name!r} is not a valid header name")
        key = name.lower()
        if key in _SET_HERE or key.startswith("content-"):
            raise MessageError(
                f"the {name} header is not one to add: build_message sets it (or never does)"
            )
        if key in seen:
            raise MessageError(f"the {name} header is given twice")
        seen.add(key)
        if _CONTROL.search(value):
            raise MessageError(f"the value of header {name} contains a line break")
        checked.append((name, value))
    return checked


_TEXT_HEADERS = (
    ("Content-Type", 'text/plain; charset="utf-8"'),
    ("Content-Transfer-Encoding", "quoted-printable"),
)
_HTML_HEADERS = (
    ("Content-Type", 'text/html; charset="utf-8"'),
    ("Content-Transfer-Encoding", "quoted-printable"),
    ("MIME-Version", "1.0"),
)


def build_message(
    mail: RenderedMail,
    *,
    sender: Mailbox,
    to: Sequence[Mailbox],
    message_id: str,
    date: dt.datetime,
    cc: Sequence[Mailbox] = (),
    reply_to: Mailbox | None = None,
    language: str | None = None,
    calendar: CalendarAttachment | None = None,
    headers: Mapping[str, str] | None = None,
) -> MimeMessage:
    """A multipart message: plain text + HTML alternative, and an optional ``.ics``.

    ``date`` must be timezone-aware (it comes from the injected clock).
    ``headers`` adds headers of its own (``X-…``), not ones this function sets.
    Raises :class:`InvalidAddressError` for a bad address and
    :class:`MessageError` for anything else unsafe.
    """
    if not to:
        raise MessageError("a message needs at least one recipient in To")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise MessageError(f"{message_id!r} is not a valid Message-ID (use make_message_id)")
    if date.tzinfo is None or date.utcoffset() is None:
        raise MessageError("the Date of a message must be timezone-aware")

    from_header, (envelope_sender,) = _address_header("From", _mailboxes([sender]))
    to_header, to_addresses = _address_header("To", _mailboxes(to))
    top: list[tuple[str, str]] = [("From", from_header), ("To", to_header)]
    recipients = dict.fromkeys(to_addresses)
    if cc:
        cc_header, cc_addresses = _address_header("Cc", _mailboxes(cc))
        top.append(("Cc", cc_header))
        recipients.update(dict.fromkeys(cc_addresses))
    if reply_to is not None:
        top.append(("Reply-To", _address_header("Reply-To", _mailboxes([reply_to]))[0]))
    top += [
        ("Subject", one_line(mail.subject) or "(no subject)"),
        ("Date", _date(date.replace(tzinfo=None), date.utcoffset())),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
        ("Auto-Submitted", "auto-generated"),
    ]
    top += _extra_headers(headers or {})
    # After the body's Content-Type, as the email package leaves it.
    after = [("Content-Language", one_line(language))] if language else []

    text = Part(headers=_TEXT_HEADERS, body=mime.quoted_printable(mail.text))
    html = Part(headers=_HTML_HEADERS, body=mime.quoted_printable(mail.html))
    attachment = None
    if calendar is not None:
        # As bytes, so the CRLF line ends that iCalendar requires survive.
        content = calendar.content.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
        attachment = mime.calendar_part(content, calendar.method.value, calendar.filename)
    # The boundaries come from the Message-ID and the content: the same message is
    # written the same way every time.
    digest = hashlib.sha1(message_id.encode("utf-8"), usedforsecurity=False)
    for part in (text, html, attachment):
        if part is not None:
            digest.update(part.body)
    seed = digest.digest()
    if attachment is None:
        root = mime.multipart("alternative", (text, html), seed=seed, before=top, after=after)
    else:
        alternative = mime.multipart("alternative", (text, html), seed=seed)
        root = mime.multipart(
            "mixed", (alternative, attachment), seed=seed, before=top, after=after
        )
    return MimeMessage(
        root=root,
        message_id=message_id,
        sender=envelope_sender,
        recipients=tuple(recipients),
        text=mail.text,
        html=mail.html,
        calendar=calendar,
        data=mime.write(root),
    )


def envelope_recipients(message: MimeMessage | EmailMessage) -> list[str]:
    """Every address in To and Cc (and Bcc, in a parsed message), without duplicates."""
    if isinstance(message, MimeMessage):
        return list(message.recipients)
    seen: dict[str, None] = {}
    for header in ("To", "Cc", "Bcc"):
        for value in message.get_all(header, []):
            for address in getattr(value, "addresses", ()):
                seen.setdefault(address.addr_spec, None)
    return list(seen)
