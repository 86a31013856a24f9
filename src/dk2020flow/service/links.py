"""Links to a case in milestone mail (docs/portal.md, "Links in mail").

A mail that goes to one person who is a contact of the case carries a *case link*: it
signs that person in and opens the case in the portal. It is a signed token, not a row:

    {case id}.{expiry, Unix seconds}.{HMAC-SHA256(key, case id, lower-cased address, expiry)}

so rendering a mail (in the transaction of the change, 2,000 of them in a scheduler
batch) writes nothing. The key is random and kept in the database (``link_keys``, made
on first need), so every daemon and web worker signs and checks with the same one
without a shared file; a new key (``renew_key``) voids every link made before it.

The address is not in the link: checking it tries the case's contacts now, so a link
whose person is no longer a contact of that case (or whose case, key, expiry or
signature was changed) signs nobody in. An expired link that is otherwise sound leads
to the sign-in page with the address filled in.

Like the one-time sign-in link, the link's GET only shows a button and consumes
nothing (mail scanners fetch every link); the POST signs in. A case link may be used
again until it expires: a milestone mail is read on more than one day and device.

A copy that goes to more than one address (To and Cc) carries the plain address of the
case instead (the portal's, or the console's for a role's shared mailbox): whoever
opens it signs in as themselves.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal
from urllib.parse import quote, urlencode

from dk2020flow.errors import Dk2020flowError, NotFoundError

if TYPE_CHECKING:
    from dk2020flow.service.accounts import SessionUser
    from dk2020flow.service.core import Service
    from dk2020flow.settings import Settings
    from dk2020flow.store.port import LinksTx, Tx

__all__ = [
    "CASE_LINK_PATH",
    "CaseLinkError",
    "CaseLinkSignIn",
    "CaseLinks",
    "LinkTarget",
    "case_links_from",
    "purpose_key",
    "renew_key",
]

log = logging.getLogger("dk2020flow.links")

CASE_LINK_PATH = "/sign-in/case"
"""Where a case link points (``web/routes/auth.py``): GET a button, POST signs in."""
CASE_LINK_DAYS = 14
"""The default lifetime (the ``case_link_days`` setting)."""
_TOKEN = re.compile(r"^(\d{1,12})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$")
_DOMAIN = "dk2020flow case link v1"

CaseLinkProblem = Literal["unknown", "expired"]


class CaseLinkError(Dk2020flowError):
    """A case link that signs nobody in: not one we made (or no longer), or expired."""

    MESSAGES: ClassVar[dict[str, str]] = {
        "unknown": "the link is not valid (any more); sign in with your e-mail address",
        "expired": "the link has expired; sign in with your e-mail address",
    }

    def __init__(self, problem: CaseLinkProblem, target: LinkTarget | None = None) -> None:
        super().__init__(self.MESSAGES[problem])
        self.problem: CaseLinkProblem = problem
        self.target = target
        """For an expired link: whose and which case it was (the sign-in page fills
        the address in)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkTarget:
    """Whom a sound case link signs in, and to which case."""

    case_id: int
    email: str
    expires_at: dt.datetime


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _mac(key: bytes, case_id: int, email: str, expires: int) -> str:
    """The signature, base64url without padding (the one-shot ``hmac.digest``: OpenSSL's)."""
    message = f"{_DOMAIN}\n{case_id}\n{email.lower()}\n{expires}".encode()
    digest = hmac.digest(key, message, "sha256")
    return binascii.b2a_base64(digest, newline=False).rstrip(b"=").translate(_URLSAFE).decode()


class CaseLinks:
    """Makes the links a mail carries, and checks a case link.

    ``public_url``: the public address of ``dk2020flow serve`` (the ``public_url``
    setting); without it mail carries no link at all, and says nothing broken.
    """

    def __init__(
        self,
        *,
        public_url: str | None,
        lifetime: dt.timedelta = dt.timedelta(days=CASE_LINK_DAYS),
    ) -> None:
        self.public_url = public_url.rstrip("/") if public_url else None
        self.lifetime = lifetime
        # The key read at one instant: a batch of firings (one ``now``) reads it once.
        self._cached: tuple[dt.datetime, bytes] | None = None

    def _key(self, tx: LinksTx, now: dt.datetime) -> bytes:
        cached = self._cached
        if cached is not None and cached[0] == now:
            return cached[1]
        found = tx.link_key()
        if found is None:
            # Made in this transaction: not cached, as the transaction may yet roll back.
            _, secret = tx.ensure_link_key(secrets.token_hex(32), now)
            return bytes.fromhex(secret)
        key = bytes.fromhex(found[1])
        self._cached = (now, key)
        return key

    # ------------------------------------------------------------------ making

    def token(self, tx: LinksTx, case_id: int, email: str, now: dt.datetime) -> str:
        """The signed token of (case, address), valid for ``lifetime`` from ``now``."""
        expires = int((now + self.lifetime).timestamp())
        return f"{case_id}.{expires}.{_mac(self._key(tx, now), case_id, email, expires)}"

    def signed_url(self, tx: LinksTx, case_id: int, email: str, now: dt.datetime) -> str:
        """The case link of one person ("" without a public address)."""
        if not self.public_url:
            return ""
        # The token is URL-safe as it is (digits, ".", base64url).
        return f"{self.public_url}{CASE_LINK_PATH}?token={self.token(tx, case_id, email, now)}"

    def unsigned_url(self) -> str:
        """What a preview shows for a case link (it signs nobody in)."""
        return f"{self.public_url}{CASE_LINK_PATH}?token=…" if self.public_url else ""

    def portal_url(self, case_id: int) -> str:
        """The case in the portal, for whoever signs in ("" without a public address)."""
        return f"{self.public_url}/portal/cases/{case_id}" if self.public_url else ""

    def console_url(self, case_id: int) -> str:
        """The case in the console, for staff ("" without a public address)."""
        return f"{self.public_url}/cases/{quote(f'#{case_id}')}" if self.public_url else ""

    # ------------------------------------------------------------------ checking

    def check(self, tx: Tx, token: str, now: dt.datetime) -> LinkTarget:
        """Whom ``token`` signs in, or ``CaseLinkError``. Reads only; uses nothing up."""
        found = _TOKEN.match(token.strip())
        if found is None:
            raise CaseLinkError("unknown")
        case_id, expires, signature = int(found[1]), int(found[2]), found[3]
        key = tx.link_key()
        if key is None:
            raise CaseLinkError("unknown")
        secret = bytes.fromhex(key[1])
        try:
            case = tx.load_case(case_id)
        except NotFoundError:
            raise CaseLinkError("unknown") from None
        addresses = dict.fromkeys(c.email.lower() for c in tx.contacts(case.organisation_code))
        email = next(
            (
                address
                for address in addresses
                if hmac.compare_digest(_mac(secret, case_id, address, expires), signature)
            ),
            None,
        )
        if email is None:
            raise CaseLinkError("unknown")
        target = LinkTarget(
            case_id=case_id, email=email, expires_at=dt.datetime.fromtimestamp(expires, dt.UTC)
        )
        if target.expires_at <= now:
            raise CaseLinkError("expired", target)
        return target

    def rotate_key(self, tx: LinksTx, now: dt.datetime) -> int:
        """A new key: every case link made before stops working. Its id."""
        self._cached = None
        return tx.add_link_key(secrets.token_hex(32), now)


def case_links_from(settings: Settings) -> CaseLinks:
    """The links the settings ask for (``public_url``, ``case_link_days``)."""
    return CaseLinks(
        public_url=settings.public_url, lifetime=dt.timedelta(days=settings.case_link_days)
    )


class CaseLinkSignIn:
    """Signing in by a case link, over the service's store and clock."""

    def __init__(self, service: Service, *, session_lifetime: dt.timedelta | None = None) -> None:
        self.service = service
        self.session_lifetime = session_lifetime

    @property
    def _links(self) -> CaseLinks:
        return self.service.mail.links

    def check(self, token: str) -> LinkTarget:
        """Whom the link would sign in now, or ``CaseLinkError``; changes nothing."""
        with self.service.store.read() as tx:
            return self._links.check(tx, token, self.service.clock.now())

    def sign_in(
        self, token: str, *, client: str, user_agent: str
    ) -> tuple[str, SessionUser, LinkTarget]:
        """A session of the link's person (a participant account is made on first use,
        as a sign-in request makes it): its cookie value, its user and the link's
        target; or ``CaseLinkError``."""
        from dk2020flow.service.accounts import Accounts, contact_account

        now = self.service.clock.now()
        with self.service.store.transaction() as tx:
            target = self._links.check(tx, token, now)
            user = tx.find_user(target.email)
            if user is None:
                found = contact_account(tx, target.email, None, now)
                if found is None:  # pragma: no cover - check() found the contact
                    raise CaseLinkError("unknown")
                user = found[0]
            if not user.active:
                raise CaseLinkError("unknown")
        accounts = Accounts(self.service)
        if self.session_lifetime is not None:
            accounts.session_lifetime = self.session_lifetime
        cookie = accounts.open_session(
            target.email, method="case_link", client=client, user_agent=user_agent
        )
        session = accounts.session_user(cookie, now)
        if session is None:  # pragma: no cover - just opened
            raise CaseLinkError("unknown")
        log.info(
            "signed in by a case link",
            extra={
                "action": "case_link_used",
                "fields": {"user_id": user.id, "case_id": target.case_id},
            },
        )
        return cookie, session, target

    def landing(self, kind: str, case_id: int) -> str:
        """Where the new session goes: the case, in the portal (or the console, for staff)."""
        from dk2020flow.service.accounts import PARTICIPANT

        if kind == PARTICIPANT:
            return f"/portal/cases/{case_id}"
        return f"/cases/{quote(f'#{case_id}')}"

    def sign_in_page(self, target: LinkTarget | None) -> str:
        """The sign-in page for an expired link: the address filled in, the case next."""
        if target is None:
            return "/sign-in"
        query = urlencode({"email": target.email, "next": f"/portal/cases/{target.case_id}"})
        return f"/sign-in?{query}"


def renew_key(service: Service) -> int:
    """A new key for case links (its id): every link made before stops working."""
    with service.store.transaction() as tx:
        return service.mail.links.rotate_key(tx, service.clock.now())


def purpose_key(service: Service, purpose: str) -> bytes:
    """A key for another use than case links (``"oidc-pending"``: the single sign-on's
    pending cookie), derived from the link key as HMAC-SHA256(key, purpose): no table of
    its own, the same key for every worker, and void with the links once ``renew_key``
    makes a new key. The link key is made on first need, as a case link makes it."""
    with service.store.read() as tx:
        found = tx.link_key()
    if found is None:
        with service.store.transaction() as tx:
            found = tx.ensure_link_key(secrets.token_hex(32), service.clock.now())
    message = f"dk2020flow {purpose} v1".encode()
    return hmac.digest(bytes.fromhex(found[1]), message, "sha256")
