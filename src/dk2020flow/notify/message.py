"""Building the e-mail message from a rendered mail.

Every value that reaches a header is checked here: addresses are validated
with email-validator, display names and the subject lose any line breaks,
and a header that still would carry one is refused. Case data can therefore
never add a header (``Bcc:``) or end the header block early.

The message is an ``EmailMessage`` of the standard library, written with the
policies of ``notify/mime.py`` (:class:`MimeMessage` keeps it and its bytes).
"""

from __future__ import annotations

import datetime as dt
import email
import functools
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from email_validator import EmailNotValidError, validate_email

from dk2020flow.notify import mime
from dk2020flow.notify.errors import InvalidAddressError, MessageError
from dk2020flow.notify.ics import CalendarAttachment
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
        raise MessageError(f"{domain!r} is not a usable Message-ID domain (e.g. mail.example.org)")
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
def _address_header(mailboxes: tuple[Mailbox, ...]) -> tuple[tuple[Address, ...], tuple[str, ...]]:
    """The addresses of an address header (From, To, Cc, Reply-To) of these mailboxes,
    validated, and their addresses as the envelope gives them."""
    addresses = tuple(_address(m) for m in mailboxes)
    return addresses, tuple(address.addr_spec for address in addresses)


def _mailboxes(given: Sequence[Mailbox]) -> tuple[Mailbox, ...]:
    return tuple((name, address) for name, address in given)


class MimeMessage:
    """A built message: what a transport sends.

    ``as_bytes()`` gives ``EmailMessage.as_bytes(policy=mime.SMTP)`` of the message
    (``policy.SMTP`` but for the first word of a long subject, see ``notify/mime.py``),
    with MIME boundaries derived from the Message-ID and the content.
    ``message["Subject"]`` reads a top-level header as text. A message built with
    ``render=False`` makes its ``EmailMessage`` and bytes only when first asked
    for them (a transport that only records the outcome never does).
    """

    __slots__ = (
        "_data",
        "_email",
        "_make",
        "calendar",
        "html",
        "message_id",
        "recipients",
        "sender",
        "text",
    )

    def __init__(
        self,
        *,
        make: Callable[[], EmailMessage],
        message_id: str,
        sender: str,
        recipients: tuple[str, ...],
        text: str,
        html: str,
        calendar: CalendarAttachment | None,
    ) -> None:
        self._make = make
        self._email: EmailMessage | None = None
        self._data: bytes | None = None
        self.message_id = message_id
        self.sender = sender
        """The envelope sender: the From address."""
        self.recipients = recipients
        """The envelope recipients: the To and Cc addresses, without duplicates."""
        self.text = text
        self.html = html
        self.calendar = calendar

    def __repr__(self) -> str:
        return f"MimeMessage(message_id={self.message_id!r}, recipients={self.recipients!r})"

    @property
    def email(self) -> EmailMessage:
        """The message as the email package holds it (do not change it)."""
        if self._email is None:
            self._email = self._make()
        return self._email

    @property
    def root(self) -> mime.Part:
        """The MIME tree: content types and boundaries."""
        return mime.tree(self.email)

    @property
    def data(self) -> bytes:
        """The message as sent over SMTP (CRLF line ends, ASCII headers)."""
        if self._data is None:
            self._data = self.email.as_bytes(policy=mime.SMTP)
        return self._data

    def as_bytes(self, *, utf8: bool = False) -> bytes:
        """The message for SMTP; ``utf8`` writes non-ASCII headers as UTF-8 (for a
        server that takes SMTPUTF8, as ``policy.SMTPUTF8`` would)."""
        return self.email.as_bytes(policy=mime.SMTPUTF8) if utf8 else self.data

    def items(self) -> Iterator[tuple[str, str]]:
        """The top-level headers, in order, with their values as text."""
        for name, value in self.email.items():
            yield name, str(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        found = self.email.get(name)
        return default if found is None else str(found)

    def __getitem__(self, name: str) -> str | None:
        """The header's value as text, or None (as ``EmailMessage`` answers)."""
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def to_email_message(self) -> EmailMessage:
        """The message's bytes parsed by the email package (``policy.default``)."""
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
    render: bool = True,
) -> MimeMessage:
    """A multipart message: plain text + HTML alternative, and an optional ``.ics``.

    ``date`` must be timezone-aware (it comes from the injected clock).
    ``headers`` adds headers of its own (``X-…``), not ones this function sets.
    Raises :class:`InvalidAddressError` for a bad address and
    :class:`MessageError` for anything else unsafe (and the email package's
    ``ValueError`` / ``TypeError`` for a header it cannot write). With
    ``render=False`` the ``EmailMessage`` is made when first read, not here: for a
    transport that never reads it (the checks above still run here).
    """
    if not to:
        raise MessageError("a message needs at least one recipient in To")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise MessageError(f"{message_id!r} is not a valid Message-ID (use make_message_id)")
    if date.tzinfo is None or date.utcoffset() is None:
        raise MessageError("the Date of a message must be timezone-aware")

    from_addresses, (envelope_sender,) = _address_header(_mailboxes([sender]))
    to_addresses, to_envelope = _address_header(_mailboxes(to))
    top: list[tuple[str, object]] = [("From", list(from_addresses)), ("To", list(to_addresses))]
    recipients = dict.fromkeys(to_envelope)
    if cc:
        cc_addresses, cc_envelope = _address_header(_mailboxes(cc))
        top.append(("Cc", list(cc_addresses)))
        recipients.update(dict.fromkeys(cc_envelope))
    if reply_to is not None:
        top.append(("Reply-To", list(_address_header(_mailboxes([reply_to]))[0])))
    top += [
        ("Subject", one_line(mail.subject) or "(no subject)"),
        ("Date", _date(date.replace(tzinfo=None), date.utcoffset())),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
        ("Auto-Submitted", "auto-generated"),
    ]
    top += _extra_headers(headers or {})
    content_language = one_line(language) if language else None

    def make() -> EmailMessage:
        message = EmailMessage(policy=mime.DEFAULT)
        for name, value in top:
            message[name] = value
        message.set_content(mail.text, cte="quoted-printable")
        message.add_alternative(mail.html, subtype="html", cte="quoted-printable")
        if calendar is not None:
            # As bytes, so the CRLF line ends that iCalendar requires survive.
            content = calendar.content.replace("\r\n", "\n").replace("\n", "\r\n")
            message.add_attachment(
                content.encode("utf-8"),
                maintype="text",
                subtype="calendar",
                cte="base64",
                filename=calendar.filename,
                params={"method": calendar.method.value, "charset": "utf-8"},
            )
        # After the body's Content-Type, where the email package leaves it.
        if content_language is not None:
            message["Content-Language"] = content_language
        # The boundaries come from the Message-ID and the content: the same message is
        # written the same way every time.
        digest = hashlib.sha1(message_id.encode("utf-8"), usedforsecurity=False)
        for body in (mail.text, mail.html, calendar.content if calendar else ""):
            digest.update(body.encode("utf-8", "surrogatepass"))
        mime.set_boundaries(message, digest.digest())
        return message

    built = MimeMessage(
        make=make,
        message_id=message_id,
        sender=envelope_sender,
        recipients=tuple(recipients),
        text=mail.text,
        html=mail.html,
        calendar=calendar,
    )
    if render:
        built.data  # noqa: B018 - built and written now: its errors are raised here
    return built


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
