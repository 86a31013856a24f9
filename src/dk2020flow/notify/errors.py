"""Errors of the notify layer: what went wrong with a mail, and whether to retry."""

from __future__ import annotations

from dk2020flow.errors import Dk2020flowError


class MailError(Dk2020flowError):
    """Base class of mail errors."""


class MailConfigError(MailError):
    """The mail settings are incomplete or contradictory (names the setting to fix)."""


class MessageError(MailError):
    """A message cannot be built safely (e.g. a line break in a header value)."""


class DeliveryError(MailError):
    """A message was not delivered. ``code`` is the SMTP reply code when there was one."""

    permanent: bool = False

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TemporaryDeliveryError(DeliveryError):
    """Worth retrying later: connection refused or dropped, timeouts, 4xx replies."""

    permanent = False


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help: 5xx replies, every recipient refused, an invalid address."""

    permanent = True


class InvalidAddressError(PermanentDeliveryError, MessageError):
    """An e-mail address is not valid."""
