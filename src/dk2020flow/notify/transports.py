"""Transports: how a built message leaves the process.

- :class:`SmtpTransport` talks to a mail server through aiosmtplib, keeping one
  connection open across a batch and reconnecting once when the server has
  dropped it.
- :class:`FolderTransport` writes one ``.eml`` file per message (the embedded
  default: no mail server needed). The file is named after the Message-ID and
  written atomically, so a resend replaces the same file.
- :class:`ConsoleTransport` prints messages, for debugging.

Every failure is a :class:`TemporaryDeliveryError` (retry later) or a
:class:`PermanentDeliveryError` (park the message as dead); the outbox
delivery loop decides on that alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import sys
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol, TextIO, runtime_checkable

import aiosmtplib
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from dk2020flow.notify.errors import (
    DeliveryError,
    MailConfigError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from dk2020flow.notify.message import MimeMessage, validate_address
from dk2020flow.settings import FileAndEnvSettings

# ----------------------------------------------------------------------------- results


class SendOutcome(StrEnum):
    SENT = "sent"
    """Every recipient was accepted."""
    PARTIAL = "partial"
    """Some recipients were accepted, others refused (see ``refused``)."""


@dataclass(frozen=True)
class Refusal:
    address: str
    code: int
    reason: str

    @property
    def permanent(self) -> bool:
        return self.code >= 500


@dataclass(frozen=True)
class SendResult:
    accepted: tuple[str, ...]
    refused: tuple[Refusal, ...] = ()
    response: str = ""

    @property
    def outcome(self) -> SendOutcome:
        return SendOutcome.PARTIAL if self.refused else SendOutcome.SENT


@runtime_checkable
class Transport(Protocol):
    async def open(self) -> None: ...

    async def send(self, message: MimeMessage, recipients: list[str]) -> SendResult: ...

    async def close(self) -> None: ...


def _check_recipients(recipients: list[str]) -> list[str]:
    if not recipients:
        raise PermanentDeliveryError("the message has no recipients")
    return [validate_address(address) for address in recipients]


# ----------------------------------------------------------------------------- SMTP


def _classify(exc: Exception, what: str) -> DeliveryError:
    """Turn an aiosmtplib error into a temporary or permanent delivery error."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if codes and all(code >= 500 for code in codes):
            return PermanentDeliveryError(f"every recipient was refused: {detail}", code=max(codes))
        return TemporaryDeliveryError(
            f"every recipient was refused, some only for now: {detail}",
            code=min(codes) if codes else None,
        )
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # The message is fine: the settings are not. Retry once they are fixed.
        return TemporaryDeliveryError(
            f"the SMTP server refused the login ({exc.code} {exc.message}); "
            "check DK2020FLOW_SMTP_USERNAME and DK2020FLOW_SMTP_PASSWORD",
            code=exc.code,
        )
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | aiosmtplib.SMTPConnectTimeoutError):
        return TemporaryDeliveryError(f"{what}: the SMTP server did not answer in time")
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return TemporaryDeliveryError(f"{what}: cannot connect to the SMTP server: {exc}")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return TemporaryDeliveryError(f"{what}: the SMTP server closed the connection")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return TemporaryDeliveryError(f"{what}: the SMTP server does not support it: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        kind = PermanentDeliveryError if exc.code >= 500 else TemporaryDeliveryError
        return kind(f"{what}: the SMTP server answered {exc.code} {exc.message}", code=exc.code)
    if isinstance(exc, ssl.SSLError):
        return TemporaryDeliveryError(f"{what}: TLS failed: {exc}")
    if isinstance(exc, OSError | aiosmtplib.SMTPException):
        return TemporaryDeliveryError(f"{what}: {exc or type(exc).__name__}")
    if isinstance(exc, ValueError):
        return PermanentDeliveryError(f"{what}: {exc}")
    return TemporaryDeliveryError(f"{what}: {type(exc).__name__}: {exc}")


class SmtpTransport:
    """SMTP through aiosmtplib; one connection per batch (``open`` … ``close``).

    ``starttls``: True requires STARTTLS, False never uses it, None upgrades
    only when the server offers it. ``use_tls`` is implicit TLS (port 465).
    ``send`` connects on demand too, so ``open`` is optional.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int | None = None,
        starttls: bool | None = None,
        use_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        local_hostname: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if use_tls and starttls:
            raise MailConfigError("use either implicit TLS (tls) or STARTTLS (starttls), not both")
        if (username is None) != (password is None):
            raise MailConfigError("give both an SMTP username and a password, or neither")
        self.host = host
        self.port = port if port is not None else (465 if use_tls else 25)
        self.starttls = starttls
        self.use_tls = use_tls
        self.username = username
        self._password = password
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.tls_context = tls_context
        self._client: aiosmtplib.SMTP | None = None

    def __repr__(self) -> str:
        return f"SmtpTransport(host={self.host!r}, port={self.port}, username={self.username!r})"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def open(self) -> None:
        if self.connected:
            return
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.use_tls,
            start_tls=False if self.use_tls else self.starttls,
            username=self.username,
            password=self._password,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
            tls_context=self.tls_context,
        )
        try:
            await client.connect()
        except Exception as exc:
            with contextlib.suppress(Exception):
                client.close()
            raise _classify(exc, f"connecting to {self.host}:{self.port}") from exc
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if client.is_connected:
            try:
                await client.quit()
            except Exception:
                client.close()

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def send(self, message: MimeMessage, recipients: list[str]) -> SendResult:
        addresses = _check_recipients(recipients)
        # Non-ASCII in an address needs SMTPUTF8, and then the headers go as UTF-8.
        utf8 = not (message.sender.isascii() and all(a.isascii() for a in addresses))
        for attempt in (1, 2):
            await self.open()
            assert self._client is not None
            try:
                errors, response = await _sendmail(self._client, message, addresses, utf8=utf8)
            except aiosmtplib.SMTPServerDisconnected as exc:
                # An idle connection the server dropped: reconnect once and resend.
                await self._drop()
                if attempt == 2:
                    raise _classify(exc, "sending") from exc
                continue
            except Exception as exc:
                if not self.connected:
                    await self._drop()
                raise _classify(exc, "sending") from exc
            refused = tuple(
                Refusal(address, reply.code, reply.message) for address, reply in errors.items()
            )
            refused_set = {r.address for r in refused}
            accepted = tuple(a for a in addresses if a not in refused_set)
            return SendResult(accepted=accepted, refused=refused, response=response)
        raise TemporaryDeliveryError("sending: the SMTP server kept closing the connection")


async def _sendmail(
    client: aiosmtplib.SMTP, message: MimeMessage, addresses: list[str], *, utf8: bool
) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
    """The message's own bytes through ``SMTP.sendmail``, with the MAIL options
    ``send_message`` would give (SMTPUTF8 when an address needs it, 8BITMIME when
    offered). The envelope is the message's From and the given recipients; the
    data never carries a Bcc (a built message has none)."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not client.is_connected:
                raise
            await client.helo()
    options: list[str] = []
    if utf8:
        if not client.supports_extension("smtputf8"):
            raise aiosmtplib.SMTPNotSupported(
                "An address containing non-ASCII characters was provided, but "
                "SMTPUTF8 is not supported by this server"
            )
        options.append("SMTPUTF8")
    if client.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    return await client.sendmail(
        message.sender, addresses, message.as_bytes(utf8=utf8), mail_options=options
    )


# ----------------------------------------------------------------------------- folder


_UNSAFE_FILE = re.compile(r"[^A-Za-z0-9._@+\-]")


def message_filename(message: MimeMessage) -> str:
    """``outbox-42.751@mail.example.org.eml`` from the Message-ID."""
    message_id = message.message_id.strip().strip("<>")
    if not message_id:
        raise PermanentDeliveryError("the message has no Message-ID; build it with one")
    name = _UNSAFE_FILE.sub("_", message_id)[:200].lstrip(".")
    return f"{name}.eml"


class FolderTransport:
    """Writes each message to ``<folder>/<Message-ID>.eml`` (atomically, idempotently)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FolderTransport(path={str(self.path)!r})"

    async def open(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TemporaryDeliveryError(
                f"cannot create the mail folder {self.path}: {exc.strerror}"
            ) from exc

    async def close(self) -> None:
        return None

    async def send(self, message: MimeMessage, recipients: list[str]) -> SendResult:
        addresses = _check_recipients(recipients)
        target = self.path / message_filename(message)
        data = message.as_bytes()
        await self.open()
        try:
            fd, temp = tempfile.mkstemp(dir=self.path, prefix=".tmp-", suffix=".eml")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as exc:
            raise TemporaryDeliveryError(f"cannot write {target}: {exc.strerror}") from exc
        return SendResult(accepted=tuple(addresses), response=f"written to {target}")


# ----------------------------------------------------------------------------- recording


class RecordingTransport:
    """Accepts every message whose recipients are valid, and writes nothing.

    For a run whose mail nobody reads (``simulate`` without ``--out``): the outbox
    goes through delivery as with any transport (the same outcomes, the same counts),
    but ``reads_mime = False`` tells delivery not to render the MIME bytes.
    """

    reads_mime = False

    def __init__(self) -> None:
        self.sent = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, message: MimeMessage, recipients: list[str]) -> SendResult:
        addresses = _check_recipients(recipients)
        self.sent += 1
        return SendResult(accepted=tuple(addresses), response="recorded")


# ----------------------------------------------------------------------------- console


class ConsoleTransport:
    """Prints each message (headers and the plain-text part) to a stream."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, message: MimeMessage, recipients: list[str]) -> SendResult:
        addresses = _check_recipients(recipients)
        out = self.stream or sys.stdout
        out.write("=" * 72 + "\n")
        for name in ("Message-ID", "Date", "From", "To", "Cc", "Subject"):
            if message.get(name):
                out.write(f"{name}: {message[name]}\n")
        out.write(f"Envelope-To: {', '.join(addresses)}\n\n")
        # The text as the message carries it: line ends made LF, a final one added.
        text = b"\n".join(message.text.encode("utf-8").splitlines()) + b"\n"
        out.write(text.decode("utf-8"))
        if message.calendar is not None:
            out.write(f"\n[attachments: {message.calendar.filename}]\n")
        out.flush()
        return SendResult(accepted=tuple(addresses), response="printed")


# ----------------------------------------------------------------------------- settings


class MailSettings(FileAndEnvSettings):
    """Mail settings from ``DK2020FLOW_MAIL_*`` and ``DK2020FLOW_SMTP_*`` variables
    (over the configuration file, see ``dk2020flow.settings``).

    Each field reads the variable of its upper-cased name with the prefix
    ``DK2020FLOW_`` (``smtp_host`` from ``DK2020FLOW_SMTP_HOST``). The SMTP
    password belongs in the environment only and is never shown: ``repr``
    leaves it out and the value is a ``SecretStr``.
    """

    model_config = SettingsConfigDict(env_prefix="DK2020FLOW_", extra="ignore", frozen=True)

    mail_transport: Literal["folder", "smtp", "console"] = "folder"
    mail_folder: Path = Path("outbox")
    mail_sender: str = Field(
        default="dk2020flow@example.org",
        description="The From address of a message whose workflow names no `sender:` "
        "(and, set, the address that overrides every workflow's: docs/templates.md).",
    )
    mail_sender_name: str = "dk2020flow"
    smtp_host: str = ""
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_starttls: bool | None = Field(
        default=None, description="true: require STARTTLS; false: never; unset: when offered."
    )
    smtp_tls: bool = Field(default=False, description="Implicit TLS (usually port 465).")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = Field(default=None, repr=False)
    smtp_timeout: float = Field(default=30.0, gt=0, le=600)


def transport_from_settings(settings: MailSettings | None = None) -> Transport:
    """The transport the settings ask for; :class:`MailConfigError` names what is missing."""
    settings = settings if settings is not None else MailSettings()
    if settings.mail_transport == "folder":
        return FolderTransport(settings.mail_folder)
    if settings.mail_transport == "console":
        return ConsoleTransport()
    if not settings.smtp_host:
        raise MailConfigError(
            "the smtp transport needs a server: set DK2020FLOW_SMTP_HOST "
            "(and DK2020FLOW_SMTP_PORT if it is not 25/465)"
        )
    if settings.smtp_username and settings.smtp_password is None:
        raise MailConfigError(
            "DK2020FLOW_SMTP_USERNAME is set but DK2020FLOW_SMTP_PASSWORD is not "
            "(the password is read from the environment only)"
        )
    if settings.smtp_password is not None and not settings.smtp_username:
        raise MailConfigError("DK2020FLOW_SMTP_PASSWORD is set but DK2020FLOW_SMTP_USERNAME is not")
    password = settings.smtp_password
    return SmtpTransport(
        host=settings.smtp_host,
        port=settings.smtp_port,
        starttls=settings.smtp_starttls,
        use_tls=settings.smtp_tls,
        username=settings.smtp_username or None,
        password=password.get_secret_value() if password is not None else None,
        timeout=settings.smtp_timeout,
    )
