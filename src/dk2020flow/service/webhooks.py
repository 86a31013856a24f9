"""Webhook subscriptions and their deliveries: the one door ``dk2020flow webhooks`` (and the
API, later) goes through (docs/webhooks.md).

- A subscription is a URL (http or https) and the event types it wants
  (``store.port.WEBHOOK_EVENT_TYPES``); its secret is ``whsec_`` and 32 random bytes in
  base64 (the Standard Webhooks form), shown once when it is added. The database keeps it
  in clear, because every delivery is signed with it.
- The notices themselves are queued by the store in the transaction of each change
  (``store/sql/webhooks.py``) and sent by the scheduler daemon (``runtime/webhooks.py``).
- Removing a subscription stops it: its deliveries still pending are given up (dead, with
  the reason); it stays listed with ``--all``.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dk2020flow.errors import Dk2020flowError, NotFoundError, quoted
from dk2020flow.store.port import (
    WEBHOOK_EVENT_TYPES,
    WebhookDelivery,
    WebhookStatus,
    WebhookSubscription,
)

if TYPE_CHECKING:
    from dk2020flow.service.core import Service

__all__ = [
    "WEBHOOK_EVENT_TYPES",
    "CreatedWebhook",
    "RemovedWebhook",
    "Webhook",
    "WebhookDelivery",
    "WebhookInputError",
    "WebhookStatus",
    "Webhooks",
    "check_url",
    "parse_events",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32
HINT_LENGTH = 10
"""Characters of the secret shown in lists (``whsec_AbCd``): enough to tell two apart."""
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 200


class WebhookInputError(Dk2020flowError):
    """A subscription's URL, event types or description is not valid (nothing changed)."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, kw_only=True, slots=True)
class Webhook:
    """A subscription as listed: never its secret, only its first characters."""

    id: int
    url: str
    events: tuple[str, ...]
    description: str
    active: bool
    created_by: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    secret_hint: str


@dataclass(frozen=True)
class CreatedWebhook:
    """A subscription just added, with its secret: shown this once."""

    webhook: Webhook
    secret: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RemovedWebhook:
    """What ``Webhooks.remove`` did."""

    webhook: Webhook
    removed: bool
    """False: it was removed already."""
    given_up: int
    """Its pending deliveries, now dead."""


def _listed(subscription: WebhookSubscription) -> Webhook:
    return Webhook(
        id=subscription.id,
        url=subscription.url,
        events=subscription.events,
        description=subscription.description,
        active=subscription.active,
        created_by=subscription.created_by,
        created_at=subscription.created_at,
        disabled_at=subscription.disabled_at,
        secret_hint=subscription.secret[:HINT_LENGTH],
    )


def new_secret() -> str:
    """``whsec_`` and the base64 of 32 random bytes (the bytes are the HMAC key)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def parse_events(given: str | Sequence[str]) -> tuple[str, ...]:
    """Event types from ``case.opened,case.closed`` (or a list of such), each once, in the
    order given; an unknown or missing one is a ``WebhookInputError`` naming it."""
    parts = [given] if isinstance(given, str) else list(given)
    names: list[str] = []
    for part in parts:
        for piece in part.split(","):
            name = piece.strip()
            if name and name not in names:
                names.append(name)
    choices = ", ".join(WEBHOOK_EVENT_TYPES)
    if not names:
        raise WebhookInputError("events", f"--events: name at least one event type ({choices})")
    unknown = [name for name in names if name not in WEBHOOK_EVENT_TYPES]
    if unknown:
        raise WebhookInputError(
            "events",
            f"--events: unknown event type {quoted(unknown[0])}; choose from {choices}",
        )
    return tuple(names)


def check_url(url: str) -> str:
    """The URL if deliveries can be POSTed to it: ``http`` or ``https``, a host, no user or
    password (it would be shown in every list and log), no fragment, no spaces."""
    text = url.strip()

    def refuse(why: str) -> WebhookInputError:
        return WebhookInputError("url", f"URL {quoted(url)} {why}")

    if not text:
        raise WebhookInputError("url", "URL is empty: give the receiver's http(s) URL")
    if len(text) > MAX_URL_LENGTH:
        raise refuse(f"is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise refuse("contains a space or a control character: percent-encode it")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise refuse(f"cannot be read: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise refuse("is not an http:// or https:// URL")
    if not parts.hostname:
        raise refuse("names no host (e.g. https://example.org/hooks)")
    if parts.username is not None or parts.password is not None:
        raise refuse(
            "holds a user name or password: they would be shown in lists and logs; "
            "check the signature instead (docs/webhooks.md)"
        )
    if parts.fragment:
        raise refuse("has a #fragment, which is never sent: leave it out")
    if port == 0:
        raise refuse("has port 0")
    host = parts.hostname
    if host.startswith("[") or ":" in host:
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            raise refuse("has an invalid IPv6 address") from None
    return text


def _description(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise WebhookInputError(
            "description",
            f"--description is {len(text)} characters long; at most {MAX_DESCRIPTION_LENGTH}",
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise WebhookInputError("description", "--description must be one line of text")
    return text


class Webhooks:
    """Subscriptions and deliveries over the service's store, at its clock's time."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._store = service.store

    def _now(self, now: dt.datetime | None) -> dt.datetime:
        return now if now is not None else self._service.clock.now()

    def add(
        self,
        url: str,
        events: str | Sequence[str],
        *,
        description: str = "",
        created_by: str,
        now: dt.datetime | None = None,
    ) -> CreatedWebhook:
        """Subscribe ``url`` to ``events``; the answer carries the secret, shown once."""
        checked = check_url(url)
        kinds = parse_events(events)
        text = _description(description)
        secret = new_secret()
        with self._store.transaction() as tx:
            added = tx.add_webhook(
                url=checked,
                events=kinds,
                secret=secret,
                description=text,
                created_by=created_by,
                now=self._now(now),
            )
        return CreatedWebhook(webhook=_listed(added), secret=secret)

    def remove(self, subscription_id: int, *, now: dt.datetime | None = None) -> RemovedWebhook:
        """Stop a subscription; its deliveries still pending are given up (dead). Removing
        one removed already changes nothing (``removed`` False)."""
        with self._store.transaction() as tx:
            removed, given_up = tx.remove_webhook(subscription_id, self._now(now))
            found = tx.webhook(subscription_id)
        assert found is not None  # remove_webhook raised NotFoundError otherwise
        return RemovedWebhook(webhook=_listed(found), removed=removed, given_up=given_up)

    def deliveries(
        self,
        *,
        status: WebhookStatus | None = None,
        subscription_id: int | None = None,
        limit: int = 100,
    ) -> list[WebhookDelivery]:
        """Deliveries, newest first."""
        with self._store.read() as tx:
            return tx.webhook_deliveries(
                status=status, subscription_id=subscription_id, limit=limit
            )

    def delivery(self, ref: str | int) -> WebhookDelivery:
        """One delivery by its id (``msg_…``) or number; ``NotFoundError`` if none."""
        with self._store.read() as tx:
            found = tx.webhook_delivery(ref)
        if found is None:
            raise NotFoundError(
                f"there is no webhook delivery {ref} (`dk2020flow webhooks deliveries` shows them)"
            )
        return found

    def retry(self, ref: str | int, *, now: dt.datetime | None = None) -> WebhookDelivery:
        """Send a dead delivery again, same id and body, its attempts starting over; the
        daemon sends it on its next pass."""
        with self._store.transaction() as tx:
            return tx.retry_webhook(ref, self._now(now))

    def counts(self) -> dict[WebhookStatus, int]:
        """Deliveries per status (the backlog: pending; the dead letters: dead)."""
        with self._store.read() as tx:
            return tx.webhook_counts()

    def list(self, *, include_removed: bool = False) -> list[Webhook]:
        """The subscriptions (removed ones too with ``include_removed``), by id."""
        with self._store.read() as tx:
            return [_listed(s) for s in tx.webhooks(include_removed=include_removed)]
