"""Accounts and sign-in: the one door the CLI (``dk2020flow users``), the web console
and the participants' portal go through.

Staff accounts are made by an admin. A participant (a contact person, a mayor …) has no
account to make: an address the programme knows (a ``contacts`` row, from
``dk2020flow orgs import``) gets a ``participant`` account on its first sign-in
request, in the contact row's name and language. A participant's roles are never stored
on the account: they are the contact rows for the address, read at each request
(``participant_roles``), one set per organisation.

Sign-in is by a one-time link sent through the outbox (so the folder transport works
on a laptop), with a short code in the same mail for signing in on another device.

- Tokens, codes and session cookies are random (``secrets``) and stored only as their
  SHA-256 hashes; nothing secret is logged.
- A link is valid for ``link_lifetime`` and once; its code for a few wrong guesses.
- Requests and code guesses are counted per address and per client in
  ``sign_in_attempts``, so every web worker shares the limit.
- An unknown or disabled address is answered exactly like a known one (nothing tells
  which addresses have accounts), but no mail is sent.
- A session ends at ``session_lifetime``, when revoked, or when its user is disabled.
- An address that is neither a staff account nor a contact is answered like any other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import html
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal
from urllib.parse import urlencode

from email_validator import EmailNotValidError, validate_email

from dk2020flow.definition.model import Text, is_language
from dk2020flow.errors import ConflictError, Dk2020flowError, NotFoundError, quoted
from dk2020flow.service.programme import programme_workflows
from dk2020flow.service.roles import ADMIN, READ_ONLY, is_role_name
from dk2020flow.store.port import Contact, NewMail, SessionInfo, SessionUser, UserInfo

if TYPE_CHECKING:
    from dk2020flow.service.core import Service
    from dk2020flow.store.port import AccountsTx as _AccountsTx
    from dk2020flow.store.port import Store, Tx

__all__ = [
    "PARTICIPANT",
    "STAFF",
    "AccountInputError",
    "Accounts",
    "OidcRefusedError",
    "ParticipantRoles",
    "RateLimitedError",
    "SessionInfo",
    "SessionUser",
    "SignInError",
    "UserInfo",
]

log = logging.getLogger("dk2020flow.accounts")

SIGN_IN_LINK_LIFETIME = dt.timedelta(minutes=15)
"""The service's default; the web passes ``WebConfig.sign_in_link_lifetime``."""
SESSION_LIFETIME = dt.timedelta(hours=12)
"""The service's default; the web passes ``WebConfig.session_lifetime``."""
TOUCH_EVERY = dt.timedelta(minutes=1)
"""A session's last_seen_at is written at most this often (not on every request)."""

STAFF = "staff"
PARTICIPANT = "participant"
"""The two kinds of account (``users.kind``)."""

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a phone
CODE_LENGTH = 8
SIGN_IN_TEMPLATE = "sign_in"
"""The sign-in mail's template name: one of ``store.port.ONE_TIME_SECRET_TEMPLATES``,
whose bodies the outbox forgets once they are sent."""
MAX_CODE_ATTEMPTS = 5
"""Wrong codes a link survives; after that the link and its code are void."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RateLimit:
    per_address: int = 5
    per_client: int = 20
    window: dt.timedelta = dt.timedelta(minutes=15)


@dataclass(frozen=True, kw_only=True, slots=True)
class ParticipantRoles:
    """What a participant is, read from the contact rows for their address."""

    by_organisation: dict[str, tuple[str, ...]]
    """Organisation code -> the person's roles on that organisation's cases."""
    name: str
    language: str


def participant_roles(
    contacts: Sequence[Contact], *, default_language: str = "en"
) -> ParticipantRoles | None:
    """The roles of the contact rows of one address (None: there are none); their
    language, else ``default_language`` (the programme's: :func:`programme_language`)."""
    if not contacts:
        return None
    by_organisation: dict[str, tuple[str, ...]] = {}
    for contact in contacts:
        held = by_organisation.get(contact.organisation_code, ())
        if contact.role not in held:
            by_organisation[contact.organisation_code] = (*held, contact.role)
    first = contacts[0]
    # Any language the contacts CSV took (the portal's texts then fall back to English,
    # its dates are in that language: web/i18n.py); none: the programme's.
    language = first.language if is_language(first.language) else default_language
    return ParticipantRoles(by_organisation=by_organisation, name=first.name, language=language)


class AccountInputError(Dk2020flowError):
    """An account's e-mail, name, role or language is not valid (nothing changed)."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class RateLimitedError(Dk2020flowError):
    """Too many sign-in attempts from this address or client: wait and try again."""

    def __init__(self, retry_after: dt.timedelta) -> None:
        minutes = max(1, round(retry_after.total_seconds() / 60))
        super().__init__(f"too many sign-in attempts; try again in {minutes} minutes")
        self.retry_after = retry_after


SignInProblem = Literal["unknown", "expired", "used", "wrong_code"]


class SignInError(Dk2020flowError):
    """A sign-in link or code that does not (or no longer) work: ask for a new link."""

    MESSAGES: ClassVar[dict[str, str]] = {
        "unknown": "the sign-in link is not valid; ask for a new one",
        "expired": "the sign-in link has expired; ask for a new one",
        "used": "the sign-in link has been used already; ask for a new one",
        "wrong_code": "the code is wrong or has expired; check it, or ask for a new link",
    }

    def __init__(self, problem: SignInProblem) -> None:
        super().__init__(self.MESSAGES[problem])
        self.problem: SignInProblem = problem


OidcRefusal = Literal["unknown", "subject"]


class OidcRefusedError(Dk2020flowError):
    """A sign-in by OpenID Connect the programme refuses: the address is no active account
    and no contact (``unknown``), or the account is bound to another subject of the
    provider (``subject``). Nothing was created or changed."""

    def __init__(self, problem: OidcRefusal, address: str) -> None:
        messages = {
            "unknown": f"{address} has no account here and is in no programme's contacts",
            "subject": f"the account of {address} is bound to another identity at the provider",
        }
        super().__init__(messages[problem])
        self.problem: OidcRefusal = problem
        self.address = address


def digest(secret: str) -> str:
    """What the database keeps of a token, code or session cookie."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def normal_code(code: str) -> str:
    """A code as typed (``abcd-efgh``, ``ABCD EFGH``) in its stored form."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def normal_email(email: str) -> str:
    """The address lower-cased, or ``AccountInputError`` naming the field."""
    given = email.strip()
    try:
        checked = validate_email(given, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AccountInputError("email", f"e-mail {quoted(given)} is not valid: {exc}") from None
    return checked.normalized.lower()


class Accounts:
    """Accounts and sign-in over the service's store and clock."""

    def __init__(
        self,
        service: Service,
        *,
        link_lifetime: dt.timedelta = SIGN_IN_LINK_LIFETIME,
        session_lifetime: dt.timedelta = SESSION_LIFETIME,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.service = service
        self.link_lifetime = link_lifetime
        self.session_lifetime = session_lifetime
        self.rate_limit = rate_limit or RateLimit()

    @property
    def _store(self) -> Store:
        return self.service.store

    def _now(self) -> dt.datetime:
        return self.service.clock.now()

    # ------------------------------------------------------------------ accounts

    def add_user(
        self,
        email: str,
        name: str,
        roles: list[str],
        *,
        actor: str,
        language: str | None = None,
    ) -> UserInfo:
        """A new staff account (an address once disabled is enabled again with these
        roles), in ``language`` (None: the programme's, :func:`programme_language`).
        ``AccountInputError`` names a bad e-mail, name, role or language."""
        address = normal_email(email)
        shown = " ".join(name.split())
        if not shown:
            raise AccountInputError("name", "the name is empty: give the person's name")
        if len(shown) > 200:
            raise AccountInputError("name", f"the name is too long ({len(shown)} > 200 characters)")
        wanted = _role_names(roles)
        if language is not None and not is_language(language):
            raise AccountInputError(
                "language",
                f"language {quoted(language)} is not a language code that has dates and "
                "numbers: two lower-case letters such as da, en, de or fr",
            )
        with self._store.transaction() as tx:
            _check_known(wanted, self.staff_roles(tx))
            language = language or programme_language(self.service, tx)
            existing = tx.find_user(address)
            if existing is not None and existing.active:
                raise AccountInputError("email", f"there is already an account for {address}")
            if existing is not None:
                user = tx.enable_user(existing.id, name=shown, roles=wanted, language=language)
            else:
                user = tx.insert_user(
                    email=address,
                    name=shown,
                    kind="staff",
                    roles=wanted,
                    language=language,
                    now=self._now(),
                )
        log.info(
            "user added",
            extra={"action": "user_added", "fields": {"user_id": user.id, "actor": actor}},
        )
        return user

    def staff_roles(self, tx: Tx | None = None) -> list[str] | None:
        """The roles a staff account may hold: every role a loaded workflow names (the
        newest version of each), then ``admin`` and ``read_only``. None while no workflow
        is loaded: a role is then only checked to be a role name (docs/commands.md,
        "Staff accounts": accounts may be made before ``workflow load``)."""
        if tx is None:
            with self._store.read() as read:
                return self.staff_roles(read)
        titled = self._workflow_roles(tx)
        return None if titled is None else [*titled, ADMIN, READ_ONLY]

    def workflow_role_titles(self) -> dict[str, Text]:
        """The loaded workflows' roles with their titles (the first workflow by name
        that names a role gives its title): what the users page offers."""
        with self._store.read() as tx:
            return self._workflow_roles(tx) or {}

    def _workflow_roles(self, tx: Tx) -> dict[str, Text] | None:
        newest: dict[str, int] = {}
        for definition_id, name in tx.definition_names():  # oldest first
            newest[name] = definition_id
        if not newest:
            return None
        roles: dict[str, Text] = {}
        for name in sorted(newest):
            for role, spec in self.service.compiled(tx, newest[name]).workflow.roles.items():
                roles.setdefault(role, spec.title)
        return roles

    def list_users(self) -> list[UserInfo]:
        with self._store.read() as tx:
            return tx.users()

    def disable_user(self, email: str, *, actor: str) -> UserInfo:
        """Disable an account: its sessions stop working at once, its links too."""
        address = normal_email(email)
        with self._store.transaction() as tx:
            user = tx.find_user(address)
            if user is None:
                raise NotFoundError(
                    f"there is no account for {address} (`dk2020flow users list` shows them)"
                )
            if not user.active:
                return user
            done = tx.disable_user(user.id, self._now())
        log.info(
            "user disabled",
            extra={"action": "user_disabled", "fields": {"user_id": done.id, "actor": actor}},
        )
        return done

    # ------------------------------------------------------------------ sign-in

    def request_sign_in(
        self, email: str, *, client: str, base_url: str, next_path: str = "/"
    ) -> int | None:
        """Queue a sign-in mail (link and code) for an active account; the outbox id.

        A contact's address without an account gets a participant account first (in
        the contact's name and language); a participant's mail is in the language of
        their contact row. An unknown or disabled address (or one that is not an
        address, or a participant no longer in the contacts) returns None and does
        nothing else a caller could see; ``RateLimitedError`` when this address or
        client asked too often.
        """
        now = self._now()
        try:
            address = normal_email(email)
        except AccountInputError:
            address = email.strip().lower()
        with self._store.transaction() as tx:
            self._check_rate(tx, address, client, now)
            user = tx.find_user(address)
            language = user.language if user is not None else "en"
            if user is None or user.kind == PARTICIPANT:
                found = contact_account(
                    tx, address, user, now, default_language=programme_language(self.service, tx)
                )
                if found is None:
                    return None
                user, language = found[0], found[1].language
            if not user.active:
                return None
            token = secrets.token_urlsafe(32)
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            tx.insert_sign_in_token(
                user_id=user.id,
                token_hash=digest(token),
                code_hash=digest(code),
                now=now,
                expires_at=now + self.link_lifetime,
            )
            query = {"token": token, **({"next": next_path} if next_path != "/" else {})}
            link = f"{base_url.rstrip('/')}/sign-in/link?{urlencode(query)}"
            mail = _sign_in_mail(user, link, code, self.link_lifetime, now, language=language)
            [message_id] = tx.queue_mail([mail])
        log.info(
            "sign-in link sent",
            extra={
                "action": "sign_in_requested",
                "fields": {"user_id": user.id, "outbox_id": message_id},
            },
        )
        return message_id

    def link_problem(self, token: str) -> SignInProblem | None:
        """Why a link would not sign in now (None: it would); consumes nothing."""
        with self._store.read() as tx:
            found = tx.sign_in_token(digest(token))
            if found is None:
                return "unknown"
            user = tx.user(found.user_id)
        return _problem(found.used_at, found.expires_at, user, self._now())

    def sign_in_with_link(
        self, token: str, *, client: str, user_agent: str
    ) -> tuple[str, SessionUser]:
        """Use a link (once): a new session's cookie value and its user, or ``SignInError``."""
        now = self._now()
        with self._store.transaction() as tx:
            found = tx.sign_in_token(digest(token))
            if found is None:
                raise SignInError("unknown")
            user = tx.user(found.user_id)
            problem = _problem(found.used_at, found.expires_at, user, now)
            if problem is not None or user is None:
                raise SignInError(problem or "unknown")
            if not tx.use_sign_in_token(found.id, now):
                raise SignInError("used")
            return self._open(tx, user, "link", client, user_agent, now)

    def sign_in_with_code(
        self, email: str, code: str, *, client: str, user_agent: str
    ) -> tuple[str, SessionUser]:
        """Sign in with the short code of a link sent to ``email`` (on another device).

        Every try counts towards the rate limits; a wrong code counts against the
        address's open links, which are void after ``MAX_CODE_ATTEMPTS`` wrong ones.
        """
        now = self._now()
        try:
            address = normal_email(email)
        except AccountInputError:
            address = email.strip().lower()
        wanted = digest(normal_code(code))
        with self._store.transaction() as tx:
            self._check_rate(tx, address, client, now)
            user = tx.find_user(address)
            tokens = tx.open_sign_in_tokens(user.id, now) if user and user.active else []
            tokens = [tok for tok in tokens if tok.code_attempts < MAX_CODE_ATTEMPTS]
            match = next(
                (tok for tok in tokens if hmac.compare_digest(tok.code_hash, wanted)), None
            )
            if match is None or user is None or not tx.use_sign_in_token(match.id, now):
                for tok in tokens:
                    tx.count_code_attempt(tok.id)
                failed = True
            else:
                failed = False
                cookie = self._open(tx, user, "code", client, user_agent, now)
        if failed:
            # Outside the transaction above: the counted guesses must stay counted.
            raise SignInError("wrong_code")
        return cookie

    def sign_in_with_oidc(
        self, email: str, subject: str, *, client: str, user_agent: str
    ) -> tuple[str, SessionUser]:
        """A session (method ``oidc``) for the address the provider vouched for.

        The address is matched as a sign-in link's would be: an active staff account, or a
        participant (an account made now from the contact rows, as ``request_sign_in``
        does). The provider's subject is bound to the account on its first sign-in; after
        that another subject for the same address is refused (``OidcRefusedError``), and so
        is an unknown or disabled address, with nothing created. Of two first sign-ins
        that bind the same subject at once, the loser is refused as well.
        """
        now = self._now()
        try:
            address = normal_email(email)
        except AccountInputError:
            raise OidcRefusedError("unknown", email.strip()) from None
        if not subject or len(subject) > 255:
            raise OidcRefusedError("subject", address)
        with self._store.transaction() as tx:
            user = tx.find_user(address)
            if user is None or user.kind == PARTICIPANT:
                found = contact_account(
                    tx, address, user, now, default_language=programme_language(self.service, tx)
                )
                if found is None:
                    raise OidcRefusedError("unknown", address)
                user = found[0]
            if not user.active:
                raise OidcRefusedError("unknown", address)
            bound = tx.oidc_subject(user.id)
            if bound is None:
                try:
                    refused = not tx.bind_oidc_subject(user.id, subject)
                except ConflictError:  # another first sign-in bound it at the same time
                    refused = True
            else:
                refused = not hmac.compare_digest(bound.encode(), subject.encode())
            if refused:  # raised in the transaction: an account made above is not kept
                log.warning(
                    "OpenID Connect subject refused",
                    extra={"action": "oidc_subject_refused", "fields": {"user_id": user.id}},
                )
                raise OidcRefusedError("subject", address)
            return self._open(tx, user, "oidc", client, user_agent, now)

    def open_session(self, email: str, *, method: str, client: str, user_agent: str) -> str:
        """A session for an active account without a link (tests, a future OIDC sign-in)."""
        now = self._now()
        address = normal_email(email)
        with self._store.transaction() as tx:
            user = tx.find_user(address)
            if user is None or not user.active:
                raise NotFoundError(f"there is no active account for {address}")
            token, _ = self._open(tx, user, method, client, user_agent, now)
        return token

    def _open(
        self,
        tx: _AccountsTx,
        user: UserInfo,
        method: str,
        client: str,
        user_agent: str,
        now: dt.datetime,
    ) -> tuple[str, SessionUser]:
        token = secrets.token_urlsafe(32)
        session_id = tx.insert_session(
            user_id=user.id,
            token_hash=digest(token),
            now=now,
            expires_at=now + self.session_lifetime,
            user_agent=user_agent[:300],
            client=client[:64],
            method=method[:16],
        )
        log.info(
            "signed in",
            extra={
                "action": "signed_in",
                "fields": {"user_id": user.id, "session_id": session_id, "method": method},
            },
        )
        return token, SessionUser(
            user_id=user.id,
            session_id=session_id,
            email=user.email,
            name=user.name,
            roles=user.roles,
            language=user.language,
            kind=user.kind,
        )

    def _check_rate(self, tx: _AccountsTx, address: str, client: str, now: dt.datetime) -> None:
        """Refuse when the address or the client is over its limit; else count this try."""
        limit = self.rate_limit
        since = now - limit.window
        keys = {
            "email:" + digest(address): limit.per_address,
            "client:" + digest(client): limit.per_client,
        }
        for key, most in keys.items():
            if tx.count_sign_in_attempts(key, since) >= most:
                log.warning(
                    "sign-in rate limited",
                    extra={"action": "sign_in_limited", "fields": {"key": key.split(":")[0]}},
                )
                raise RateLimitedError(limit.window)
        tx.record_sign_in_attempt(list(keys), now)

    # ------------------------------------------------------------------ sessions

    def session_user(self, token: str, now: dt.datetime) -> SessionUser | None:
        """The user of a session cookie, or None (unknown, expired, revoked, disabled)."""
        found = self.session(token, now)
        return None if found is None else found[0]

    def session(
        self, token: str, now: dt.datetime
    ) -> tuple[SessionUser, ParticipantRoles | None] | None:
        """The user of a session cookie and, for a participant, their roles now
        (``participant_roles``; None for staff, or when the address is in no contact row
        any more), read in one transaction; None: no valid session (unknown, expired,
        revoked, disabled). Read at every request: a session revoked or a contact row
        removed stops counting at the next one."""
        if not token or len(token) > 200:
            return None
        hashed = digest(token)
        contacts: Sequence[Contact] = ()
        with self._store.read() as tx:
            found = tx.session_user(hashed, now)
            if found is None:
                return None
            user, last_seen = found
            if user.kind == PARTICIPANT:
                contacts = tx.contacts_with_email(user.email.lower())
        if now - last_seen >= TOUCH_EVERY:
            with self._store.transaction() as tx:
                tx.touch_session(user.session_id, now)
        if user.kind != PARTICIPANT:
            return user, None
        return user, self._participant_roles(contacts)

    def participant_roles(self, email: str) -> ParticipantRoles | None:
        """A participant's roles per organisation, from the contact rows for ``email``
        now (None: the address is in no contact row any more)."""
        with self._store.read() as tx:
            contacts = tx.contacts_with_email(email.lower())
        return self._participant_roles(contacts)

    def _participant_roles(self, contacts: Sequence[Contact]) -> ParticipantRoles | None:
        # The programme's language from the programme the pages show (kept for
        # ``service.programme.PROGRAMME_LIFETIME``): no read of the definitions per request.
        # Asked after the read transaction has ended: when it has to read the programme
        # again, that is a transaction of its own, not a second connection held at once.
        return participant_roles(contacts, default_language=shown_programme_language(self.service))

    def sessions(self, user_id: int) -> list[SessionInfo]:
        with self._store.read() as tx:
            return tx.sessions_of(user_id, self._now())

    def revoke_session(self, user_id: int, session_id: int) -> None:
        """End one of the user's own sessions (``NotFoundError`` if it is not theirs)."""
        with self._store.transaction() as tx:
            if not tx.revoke_session(user_id, session_id, self._now()):
                raise NotFoundError(f"you have no active session {session_id}")

    def sign_out(self, token: str) -> None:
        with self._store.transaction() as tx:
            tx.revoke_session_token(digest(token), self._now())


def shown_programme_language(service: Service) -> str:
    """``programme_language`` of the programme as the pages show it
    (``service.programme.programme_workflows``, read at most once per
    ``PROGRAMME_LIFETIME``): the default language of the first workflow by name; English
    while no workflow is loaded."""
    workflows = programme_workflows(service)
    if not workflows:
        return "en"
    return min(workflows, key=lambda workflow: workflow.workflow).default_language


def programme_language(service: Service, tx: Tx) -> str:
    """The programme's language, for an account or contact that names none: the default
    language of the loaded workflow (the first by name, if several); English while no
    workflow is loaded."""
    versions = tx.definition_names()  # ids and names, not the text: a portal page reads this
    if not versions:
        return "en"
    first = min(name for _, name in versions)
    newest = max(definition_id for definition_id, name in versions if name == first)
    return service.compiled(tx, newest).workflow.default_language


def contact_account(
    tx: Tx,
    address: str,
    user: UserInfo | None,
    now: dt.datetime,
    *,
    default_language: str = "en",
) -> tuple[UserInfo, ParticipantRoles] | None:
    """The participant's account of a contact ``address`` (``user``, its account if it has
    one) and the roles its contact rows give; None when no contact row has the address.
    The account is made on first need, in ``tx`` — whichever way the person signs in."""
    known = participant_roles(tx.contacts_with_email(address), default_language=default_language)
    if known is None:
        return None
    if user is None:
        try:
            user = tx.insert_user(
                email=address,
                name=known.name,
                kind=PARTICIPANT,
                roles=[],
                language=known.language,
                now=now,
            )
        except ConflictError:  # a first sign-in in another tab made it a moment ago
            user = tx.find_user(address)
            if user is None:  # pragma: no cover - the conflict was this address's row
                raise
            return user, known
        log.info(
            "participant account made",
            extra={"action": "participant_added", "fields": {"user_id": user.id}},
        )
    return user, known


def _role_names(roles: Sequence[str]) -> list[str]:
    """The roles given, once each, each a role name (lower-case letters, digits and _)."""
    wanted = list(dict.fromkeys(role.strip() for role in roles))
    if not wanted:
        raise AccountInputError(
            "roles", "give at least one role (a role of the workflow, admin or read_only)"
        )
    for role in wanted:
        if not is_role_name(role):
            raise AccountInputError(
                "roles",
                f"role {quoted(role)} is not a role name (lower-case letters, digits and _, "
                "as the workflow file names its roles)",
            )
    return wanted


def _check_known(wanted: Sequence[str], known: Sequence[str] | None) -> None:
    """Every role in ``wanted`` is one of ``known`` (None: no workflow is loaded yet)."""
    if known is None:
        return
    for role in wanted:
        if role not in known:
            raise AccountInputError(
                "roles",
                f"role {quoted(role)} is not one of: {', '.join(known)} (the roles of the "
                "loaded workflows, admin and read_only)",
            )


def _problem(
    used_at: dt.datetime | None, expires_at: dt.datetime, user: UserInfo | None, now: dt.datetime
) -> SignInProblem | None:
    if user is None or not user.active:
        return "unknown"
    if used_at is not None:
        return "used"
    if expires_at <= now:
        return "expired"
    return None


# ---------------------------------------------------------------------- the mail

_TEXTS = {
    "da": {
        "subject": "Log ind på dk2020flow",
        "hello": "Hej {name}",
        "intro": "Klik på linket for at logge ind på dk2020flow. Linket virker i {minutes} "
        "minutter og kun én gang.",
        "button": "Log ind",
        "code": "Vil du logge ind på en anden enhed? Skriv koden {code} sammen med din "
        "e-mailadresse på login-siden.",
        "ignore": "Har du ikke bedt om at logge ind, kan du se bort fra denne mail.",
    },
    "en": {
        "subject": "Sign in to dk2020flow",
        "hello": "Hello {name}",
        "intro": "Follow the link to sign in to dk2020flow. It works for {minutes} minutes "
        "and only once.",
        "button": "Sign in",
        "code": "Signing in on another device? Enter the code {code} with your e-mail "
        "address on the sign-in page.",
        "ignore": "If you did not ask to sign in, you can ignore this mail.",
    },
}


def shown_code(code: str) -> str:
    """``ABCDEFGH`` as ``ABCD-EFGH`` (easier to read and type)."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def _sign_in_mail(
    user: UserInfo,
    link: str,
    code: str,
    lifetime: dt.timedelta,
    now: dt.datetime,
    *,
    language: str,
) -> NewMail:
    # The mail's own texts are Danish and English: English for any other language.
    language = language if language in _TEXTS else "en"
    texts = _TEXTS[language]
    minutes = round(lifetime.total_seconds() / 60)
    hello = texts["hello"].format(name=user.name)
    intro = texts["intro"].format(minutes=minutes)
    code_line = texts["code"].format(code=shown_code(code))
    text = f"{hello}\n\n{intro}\n\n{link}\n\n{code_line}\n\n{texts['ignore']}\n"
    esc = html.escape
    body = (
        f"<p>{esc(hello)}</p>\n<p>{esc(intro)}</p>\n"
        f'<p><a href="{esc(link)}">{esc(texts["button"])}</a></p>\n'
        f"<p>{esc(code_line)}</p>\n<p>{esc(texts['ignore'])}</p>\n"
    )
    return NewMail(
        case_id=None,
        template=SIGN_IN_TEMPLATE,
        language=language,
        to=((user.name, user.email),),
        cc=(),
        subject=texts["subject"],
        text=text,
        html=f'<!DOCTYPE html>\n<html lang="{language}"><body>\n{body}</body></html>\n',
        ics=None,
        not_before=now,
        created_at=now,
        urgent=True,
    )
