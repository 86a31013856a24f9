"""REST API tokens and idempotent changes: the one door ``dk2020flow tokens`` and the
REST API (``web/api/``) go through.

- A token's secret is ``dkf_`` and 43 random characters (``secrets.token_urlsafe(32)``),
  shown once when it is created; the database keeps its SHA-256 hash and its first
  characters (``hint``, so that a listed token can be recognised), never the secret.
- A token acts with its roles only (each one a staff role or a role of a loaded
  workflow); the history records its changes as ``token:<name>``.
- A token is refused once revoked or expired; ``last_used_at`` is written at most once
  a minute, so authenticating a read does not write on every request.
- An ``Idempotency-Key`` makes a change safe to send twice: ``Service.fire_idempotent``
  (and ``extend_idempotent``, ``check_idempotent``, ``set_data_idempotent``) claims the
  key in the transaction of the change and stores the answer with it; the same key
  with the same request gets that answer again, changing nothing; with another request
  it is refused (``IdempotencyKeyReusedError``). Refusals are not remembered. Keys are
  kept ``IDEMPOTENCY_KEYS_KEPT`` (7 days): a token's older keys are deleted when it is
  next used, everyone's by ``dk2020flow tokens purge-keys``; a revoked token's at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dk2020flow.errors import Dk2020flowError, NotFoundError, quoted
from dk2020flow.service.roles import ACCOUNT_ROLES
from dk2020flow.store.port import ApiToken

if TYPE_CHECKING:
    from dk2020flow.engine.records import CaseSnapshot
    from dk2020flow.service.core import Service
    from dk2020flow.store.port import Tx

__all__ = [
    "IDEMPOTENCY_KEYS_KEPT",
    "Answer",
    "ApiToken",
    "CreatedToken",
    "Idempotency",
    "TokenInputError",
    "Tokens",
    "request_fingerprint",
    "token_actor",
]

log = logging.getLogger("dk2020flow.tokens")

SECRET_PREFIX = "dkf_"  # noqa: S105 (a prefix, not a secret)
HINT_LENGTH = 8
"""Characters of the secret kept in clear (``dkf_AbCd``): enough to recognise a token."""
TOUCH_EVERY = dt.timedelta(minutes=1)
"""A token's last_used_at is written at most this often (not on every request)."""
IDEMPOTENCY_KEYS_KEPT = dt.timedelta(days=7)
"""How long an Idempotency-Key (and its answer) is kept: the same key sent after that
is a new request."""
MAX_NAME_LENGTH = 100
MAX_KEY_LENGTH = 255
_NAME = re.compile(r"[\w.-]+")
_KEY = re.compile(r"[\x21-\x7e]+")
"""Visible ASCII: a key is an opaque string (a UUID, typically)."""


class TokenInputError(Dk2020flowError):
    """A token's name, role or expiry, or an Idempotency-Key, is not valid (nothing changed)."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CreatedToken:
    """A token just created, with its secret: shown this once, kept nowhere."""

    token: ApiToken
    secret: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    """The answer to an idempotent change: the first one, or (``replayed``) the one
    remembered for its key."""

    status_code: int
    body: dict[str, Any]
    replayed: bool


@dataclass(frozen=True)
class Idempotency:
    """An ``Idempotency-Key`` sent by a token with a change.

    ``fingerprint`` identifies the request (``request_fingerprint``: method, path,
    body): the key sent again with another fingerprint is refused. ``respond`` makes
    the answer to remember from the changed case, inside the change's transaction; it
    must be JSON (what is replayed is its JSON, so both answers are equal).
    """

    token_id: int
    key: str
    fingerprint: str
    respond: Callable[[CaseSnapshot], tuple[int, dict[str, Any]]]

    def __post_init__(self) -> None:
        if not 1 <= len(self.key) <= MAX_KEY_LENGTH or not _KEY.fullmatch(self.key):
            raise TokenInputError(
                "Idempotency-Key",
                f"the Idempotency-Key {quoted(self.key)} is not valid: give 1 to "
                f"{MAX_KEY_LENGTH} visible ASCII characters (a UUID, for example)",
            )


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """A hash of a request (its method, path and JSON body, keys in any order)."""
    canonical = json.dumps(
        [method.upper(), path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def token_actor(name: str) -> str:
    """Who a token's changes are in a case's history as."""
    return f"token:{name}"


def digest(secret: str) -> str:
    """What the database keeps of a secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def usable(token: ApiToken, now: dt.datetime) -> bool:
    """Neither revoked nor expired at ``now``."""
    return token.revoked_at is None and (token.expires_at is None or now < token.expires_at)


class Tokens:
    """API tokens over the service's store and clock."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def _now(self, now: dt.datetime | None) -> dt.datetime:
        return now or self.service.clock.now()

    def known_roles(self, tx: Tx) -> list[str]:
        """The roles a token may hold: ``admin`` and ``read_only``, then the roles of the
        loaded workflows' latest versions."""
        roles = dict.fromkeys(ACCOUNT_ROLES)
        for name in sorted({d.name for d in tx.definitions()}):
            roles.update(dict.fromkeys(self.service.latest(tx, name).workflow.roles))
        return list(roles)

    def programme_roles(self, tx: Tx) -> set[str]:
        """The roles that act for the programme, not for one organisation: ``admin``,
        ``read_only`` and every loaded workflow's roles with a shared mailbox (its
        ``email:``, the same on every case: a secretariat, a reviewer)."""
        roles = set(ACCOUNT_ROLES)
        for name in {d.name for d in tx.definitions()}:
            workflow = self.service.latest(tx, name).workflow
            roles.update(role for role, spec in workflow.roles.items() if spec.email)
        return roles

    def create(
        self,
        name: str,
        roles: Sequence[str],
        *,
        created_by: str,
        expires_at: dt.datetime | None = None,
        every_case: bool = False,
        now: dt.datetime | None = None,
    ) -> CreatedToken:
        """A new token with ``roles``; its secret is in the answer and nowhere else.
        ``TokenInputError`` names a bad name, role or expiry (nothing is created).

        A token's roles hold on every case: tokens cannot yet be bound to one
        organisation. A participant's role (``contact_person``, ``council`` …) on every
        case is therefore refused unless ``every_case`` says that is meant (a test
        harness, a system acting for all organisations)."""
        at = self._now(now)
        wanted_name = _checked_name(name)
        if not roles:
            raise TokenInputError("role", "give the token at least one role (--role ROLE)")
        if expires_at is not None and expires_at <= at:
            raise TokenInputError(
                "expires",
                f"the expiry {expires_at.isoformat(timespec='minutes')} is not in the future: "
                "give a later one",
            )
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        with self.service.store.transaction() as tx:
            known = self.known_roles(tx)
            programme = self.programme_roles(tx)
            wanted = list(dict.fromkeys(role.strip() for role in roles))
            for role in wanted:
                if role not in known:
                    raise TokenInputError(
                        "role", f"role {quoted(role)} is not one of: {', '.join(known)}"
                    )
                if role not in programme and not every_case:
                    raise TokenInputError(
                        "role",
                        f"role {quoted(role)} is a participant's role, and a token acts in it "
                        "on every organisation's case (tokens cannot be bound to one "
                        "organisation yet): give --every-case if that is meant",
                    )
            token = tx.insert_api_token(
                name=wanted_name,
                roles=wanted,
                secret_hash=digest(secret),
                hint=secret[:HINT_LENGTH],
                created_by=created_by,
                now=at,
                expires_at=expires_at,
            )
            if token is None:
                raise TokenInputError(
                    "name",
                    f"there is already a token named {quoted(wanted_name)} (a revoked one keeps "
                    "its name, so that the history stays unambiguous): choose another name",
                )
        log.info(
            "API token created",
            extra={"action": "token_created", "fields": {"token": token.name, "actor": created_by}},
        )
        return CreatedToken(token=token, secret=secret)

    def list(self) -> list[ApiToken]:
        """Every token, revoked and expired ones too, by name."""
        with self.service.store.read() as tx:
            return tx.api_tokens()

    def revoke(self, name: str, *, now: dt.datetime | None = None) -> ApiToken:
        """Revoke a token: it is refused from now on, and its idempotency keys are
        forgotten. Revoking a revoked token changes nothing."""
        at = self._now(now)
        with self.service.store.transaction() as tx:
            token = tx.find_api_token(name)
            if token is None:
                raise NotFoundError(
                    f"there is no API token named {quoted(name)} "
                    "(`dk2020flow tokens list` shows them)"
                )
            if token.revoked_at is not None:
                return token
            revoked = tx.revoke_api_token(token.id, at)
            tx.purge_idempotency_keys(None, token_id=token.id)
        log.info("API token revoked", extra={"action": "token_revoked", "fields": {"token": name}})
        return revoked

    def authenticate(self, secret: str, now: dt.datetime | None = None) -> ApiToken | None:
        """The token whose secret this is, if it is neither revoked nor expired at
        ``now``; None otherwise (an unknown secret included)."""
        at = self._now(now)
        if not secret.startswith(SECRET_PREFIX):
            return None
        hashed = digest(secret)
        with self.service.store.read() as tx:
            token = tx.api_token_by_hash(hashed)
        if token is None or not usable(token, at):
            return None
        if token.last_used_at is None or at - token.last_used_at >= TOUCH_EVERY:
            with self.service.store.transaction() as tx:
                tx.touch_api_token(token.id, at)
                tx.purge_idempotency_keys(at - IDEMPOTENCY_KEYS_KEPT, token_id=token.id)
            token = replace(token, last_used_at=at)
        return token

    def purge_idempotency_keys(
        self, *, kept: dt.timedelta = IDEMPOTENCY_KEYS_KEPT, now: dt.datetime | None = None
    ) -> int:
        """Delete every token's idempotency keys older than ``kept``; how many."""
        with self.service.store.transaction() as tx:
            return tx.purge_idempotency_keys(self._now(now) - kept)


def _checked_name(name: str) -> str:
    shown = name.strip()
    if not shown:
        raise TokenInputError("name", "the token's name is empty: give it a name (kl-dashboard)")
    if len(shown) > MAX_NAME_LENGTH:
        raise TokenInputError(
            "name",
            f"the token's name is too long ({len(shown)} > {MAX_NAME_LENGTH} characters)",
        )
    if not _NAME.fullmatch(shown):
        raise TokenInputError(
            "name",
            f"the token's name {quoted(shown)} may have letters, digits, '.', '_' and '-' "
            "only (kl-dashboard, region_midt)",
        )
    return shown
