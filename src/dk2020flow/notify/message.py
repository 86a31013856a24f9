"""Building the e-mail message from a rendered mail.

Every value that reaches a header is checked here: addresses are validated
with email-validator, display names and the subject lose any line breaks,
and a header that still would carry one is refused. Case data can therefore
never add a header (``Bcc:``) or end the header block early.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping, Sequence
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email

from dk2020flow.notify.errors import InvalidAddressError, MessageError
from dk2020flow.notify.ics import CalendarAttachment
from dk2020flow.notify.render import RenderedMail

Mailbox = tuple[str, str]
"""``(display name, address)``; the name may be empty."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_MESSAGE_ID = re.compile(r"^<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+@[A-Za-z0-9.\-]+>$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-]*$")
_ID_PART = re.compile(r"[^A-Za-z0-9\-]")


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


# ----------------------------------------------------------------------------- headers

_HEADER_CACHE_SIZE = 4096


class _Header(BaseHeader):
    """The base of every header class of ``POLICY``: it remembers how it folds.

    A header object never changes once made, and folding it (the email
    package's most expensive step) depends on nothing but the object and the
    three settings of the policy the folding reads, so the result is kept by
    those (the generator makes a new policy object for every MIME part).
    """

    def fold(self, *, policy: Policy) -> str:
        folds: dict[tuple[Any, ...], str] | None = self.__dict__.get("_folds")
        if folds is None:
            folds = self.__dict__["_folds"] = {}
        key = (type(policy), policy.linesep, policy.max_line_length, getattr(policy, "utf8", None))
        folded = folds.get(key)
        if folded is None:
            folded = folds[key] = super().fold(policy=policy)
        return folded


class _HeaderFactory(HeaderRegistry):
    """``policy.default``'s header registry, with its classes made once (the
    standard registry makes a new class on every header) and headers given as
    text made once per (name, value): the Content-Type, Date, From … of one
    message are those of the next, and sharing the object shares its folding."""

    def __init__(self) -> None:
        super().__init__(base_class=_Header)
        self._classes: dict[str, type[BaseHeader]] = {}
        self._made: dict[tuple[str, str], BaseHeader] = {}

    def __getitem__(self, name: str) -> Any:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found

    def __call__(self, name: str, value: Any) -> Any:
        if type(value) is not str:
            return self[name](name, value)
        key = (name, value)
        made = self._made
        found = made.pop(key, None)  # and back at the end: the least recently used go first
        if found is None:
            if len(made) >= _HEADER_CACHE_SIZE:
                del made[next(iter(made))]
            found = self[name](name, value)
        made[key] = found
        return found


POLICY = policy.default.clone(header_factory=_HeaderFactory())
"""``policy.default`` with a header factory that makes and folds each distinct header once."""


def _address(mailbox: Mailbox) -> Address:
    name, address = mailbox
    normalised = validate_address(address)
    username, _, domain = normalised.rpartition("@")
    return Address(display_name=one_line(name or ""), username=username, domain=domain)


@functools.lru_cache(maxsize=_HEADER_CACHE_SIZE)
def _address_header(name: str, mailboxes: tuple[Mailbox, ...]) -> Any:
    """The ``name`` header (From, To, Cc, Reply-To) of these mailboxes, validated."""
    return POLICY.header_factory(name, [_address(m) for m in mailboxes])


def _mailboxes(given: Sequence[Mailbox]) -> tuple[Mailbox, ...]:
    return tuple((name, address) for name, address in given)


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
) -> EmailMessage:
    """A multipart message: plain text + HTML alternative, and an optional ``.ics``.

    ``date`` must be timezone-aware (it comes from the injected clock).
    Raises :class:`InvalidAddressError` for a bad address and
    :class:`MessageError` for anything else unsafe.
    """
    if not to:
        raise MessageError("a message needs at least one recipient in To")
    if not _MESSAGE_ID.match(message_id):
        raise MessageError(f"{message_id!r} is not a valid Message-ID (use make_message_id)")
    if date.tzinfo is None or date.utcoffset() is None:
        raise MessageError("the Date of a message must be timezone-aware")

    message = EmailMessage(policy=POLICY)
    message["From"] = _address_header("From", _mailboxes([sender]))
    message["To"] = _address_header("To", _mailboxes(to))
    if cc:
        message["Cc"] = _address_header("Cc", _mailboxes(cc))
    if reply_to is not None:
        message["Reply-To"] = _address_header("Reply-To", _mailboxes([reply_to]))
    message["Subject"] = one_line(mail.subject) or "(no subject)"
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["MIME-Version"] = "1.0"
    message["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        if not _HEADER_NAME.match(name):
            raise MessageError(f"{name!r} is not a valid header name")
        if _CONTROL.search(value):
            raise MessageError(f"the value of header {name} contains a line break")
        message[name] = value

    message.set_content(mail.text, cte="quoted-printable")
    message.add_alternative(mail.html, subtype="html", cte="quoted-printable")
    if calendar is not None:
        # As bytes, so the CRLF line ends that iCalendar requires survive.
        message.add_attachment(
            calendar.content.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"),
            maintype="text",
            subtype="calendar",
            cte="base64",
            filename=calendar.filename,
            params={"method": calendar.method.value, "charset": "utf-8"},
        )
    if language:
        # After the body: turning the message into a multipart moves Content-* headers.
        message["Content-Language"] = one_line(language)
    return message


def envelope_recipients(message: EmailMessage) -> list[str]:
    """Every address in To and Cc (and Bcc, if a caller added one), without duplicates."""
    seen: dict[str, None] = {}
    for header in ("To", "Cc", "Bcc"):
        for value in message.get_all(header, []):
            for address in getattr(value, "addresses", ()):
                seen.setdefault(address.addr_spec, None)
    return list(seen)
