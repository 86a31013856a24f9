"""A person's data: the access log, "my data" and its export, and forgetting a person.

- **The access log** (``record_read``): a read of a case page (console, portal, API) or of
  a person's own data is one row in ``access_log`` — who (staff user, participant, API
  token), when, what, how. The rows are written in batches (``AccessLogBuffer``): at most
  a second after the read, or at once when 200 are waiting, when the person's own data is
  shown, and when the service closes. A page view is then not a write transaction of its
  own (on SQLite, one writer at a time and a disk flush per commit: 20 readers queued
  behind each other). A crash of the process loses at most that second of log lines —
  what PostgreSQL's asynchronous commit of these rows risks too — never other data. Changes
  need no second log: the case history (``events``) records every change with its actor,
  and ``participants import`` changes contacts (docs/portal.md "Your data (GDPR)").
- **My data** (``my_data``, ``export``): everything the programme keeps about one
  address — contact rows, account, sessions, the mail to it, the events it made, and the
  access log entries about it (about the address itself or one of its cases).
- **Forgetting** (``forget``): contact rows, the participant account, its sessions and
  sign-in tokens go; the mail to the address keeps its fact (template, case, times,
  status) but loses the address and body. The case history is append-only and
  hash-chained, and ``case verify`` replays it against the case row, so neither is
  changed: ``forgotten_people`` keeps SHA-256 digests of the address and names, and every
  display of the history and of case data (``displayed_events``, ``displayed_case``)
  shows ``FORGOTTEN`` in their place.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dk2020flow.engine.records import CaseSnapshot
from dk2020flow.errors import Dk2020flowError, NotFoundError
from dk2020flow.store.port import (
    BODY_REMOVED_NOTE,
    ONE_TIME_SECRET_TEMPLATES,
    AccessEntry,
    Contact,
    ForgetCounts,
    OutboxMessage,
    PrivacyTx,
    SessionInfo,
    StoredEvent,
    UserInfo,
    person_digest,
)

if TYPE_CHECKING:
    from dk2020flow.service.core import Service

FORGOTTEN = "(forgotten person)"
"""What the history shows in place of a forgotten address or name."""

STAFF, PARTICIPANT, TOKEN, CLI = "staff", "participant", "token", "cli"
READ, EXPORT = "read", "export"
CASE, MY_DATA = "case", "my_data"
ACCESS_LOG_DAYS = 730
"""The default of ``privacy purge-log --older-than`` (two years)."""


class UnknownPersonError(NotFoundError):
    """``participants forget``: the address is in no contact row nor account."""

    exit_code = 1

    def __init__(self, email: str) -> None:
        super().__init__(
            f"{email}: the programme keeps no contact row or account for this address "
            "(nothing changed)"
        )


class StaffAccountError(Dk2020flowError):
    """``participants forget`` of an address that is only a staff account."""

    exit_code = 1

    def __init__(self, email: str) -> None:
        super().__init__(
            f"{email} is a staff account and no contact: staff accounts are disabled with "
            "`dk2020flow users disable`, not forgotten (nothing changed)"
        )


class PrivacyInputError(Dk2020flowError):
    exit_code = 2


digest = person_digest
"""The digest ``forgotten_people`` keeps of an address or a name."""


# ----------------------------------------------------------------------------- the access log


log = logging.getLogger(__name__)

FLUSH_ENTRIES = 200
"""A batch this large is written at once, by the request that fills it."""
FLUSH_SECONDS = 1.0
"""The longest a logged read waits in memory before its row is written."""
KEEP_UNWRITTEN = 10_000
"""Entries kept for another try while the database refuses them; older ones are dropped
(and the drop is logged as an error)."""


class AccessLogBuffer:
    """Access log entries on their way to the database, written in batches by a
    background thread (started with the first entry) or by ``flush``. Thread-safe: the
    web workers' request threads share one."""

    def __init__(
        self,
        service: Service,
        *,
        flush_entries: int = FLUSH_ENTRIES,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self._service = service
        self._flush_entries = flush_entries
        self._flush_seconds = flush_seconds
        self._entries: list[AccessEntry] = []
        self._changed = threading.Condition()
        self._writing = threading.Lock()  # one batch written at a time, in order
        self._thread: threading.Thread | None = None
        self._closing = False

    def add(self, entry: AccessEntry) -> None:
        with self._changed:
            if self._closing:  # after close: write it now rather than lose it
                full = True
            else:
                full = len(self._entries) + 1 >= self._flush_entries
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="dk2020flow-access-log", daemon=True
                    )
                    self._thread.start()
            self._entries.append(entry)
            if len(self._entries) == 1:
                self._changed.notify_all()
        if full:
            self.flush()

    def pending(self) -> int:
        """Entries not written yet."""
        with self._changed:
            return len(self._entries)

    def flush(self) -> None:
        """Write every waiting entry now (one transaction). A database error keeps them
        for the next try and is logged, never raised into the read that logged them."""
        with self._writing:
            with self._changed:
                batch, self._entries = self._entries, []
            if not batch:
                return
            try:
                with self._service.store.transaction() as tx:
                    tx.record_access(batch)
            except Dk2020flowError as exc:
                with self._changed:
                    kept = (batch + self._entries)[-KEEP_UNWRITTEN:]
                    dropped = len(batch) + len(self._entries) - len(kept)
                    self._entries = kept
                log.error(
                    "access log not written (%d entries kept for another try, %d dropped): %s",
                    len(kept),
                    dropped,
                    exc,
                    extra={"action": "access_log_failed", "fields": {"dropped": dropped}},
                )

    def close(self) -> None:
        """Stop the thread and write what waits (the service closes: serve stops)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        self.flush()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._entries and not self._closing:
                    self._changed.wait()
                if self._closing:
                    return
                # The first entry of a batch: gather the others for a moment.
                self._changed.wait(self._flush_seconds)
                closing = self._closing
            self.flush()
            if closing:
                return


def record_read(
    service: Service,
    *,
    actor: str,
    actor_kind: str,
    via: str,
    case_id: int | None = None,
    what: str = CASE,
    subject: str | None = None,
    action: str = READ,
) -> None:
    """Log one read; the row is written within a second (``AccessLogBuffer``)."""
    service.access_log.add(
        AccessEntry(
            at=service.clock.now(),
            actor=actor,
            actor_kind=actor_kind,
            action=action,
            what=what,
            via=via,
            case_id=case_id,
            subject=subject,
        )
    )


def purge_access_log(service: Service, days: int) -> int:
    """Delete access log entries older than ``days`` days; how many went."""
    if days < 1:
        raise PrivacyInputError("--older-than: give a number of days, 1 or more")
    before = service.clock.now() - dt.timedelta(days=days)
    with service.store.transaction() as tx:
        return tx.purge_access_log(before)


# ----------------------------------------------------------------------------- display


def _forgotten_value(value: Any, digests: frozenset[str]) -> Any:
    if isinstance(value, str):
        return FORGOTTEN if value and digest(value) in digests else value
    if isinstance(value, list):
        return [_forgotten_value(v, digests) for v in value]
    if isinstance(value, dict):
        return {k: _forgotten_value(v, digests) for k, v in value.items()}
    return value


def displayed_events(events: Sequence[StoredEvent], digests: frozenset[str]) -> list[StoredEvent]:
    """The events as shown: an actor or data value that is a forgotten address or name
    reads ``FORGOTTEN`` (the stored events, and their hash chain, are unchanged)."""
    if not digests:
        return list(events)
    shown: list[StoredEvent] = []
    for event in events:
        record = event.record
        actor = _forgotten_value(record.actor, digests)
        data = _forgotten_value(dict(record.data), digests)
        if actor == record.actor and data == record.data:
            shown.append(event)
            continue
        shown.append(
            dataclasses.replace(event, record=dataclasses.replace(record, actor=actor, data=data))
        )
    return shown


def displayed_case(case: CaseSnapshot, digests: frozenset[str]) -> CaseSnapshot:
    """The case as shown: its data with forgotten addresses and names replaced."""
    if not digests:
        return case
    data = _forgotten_value(dict(case.data), digests)
    return case if data == case.data else dataclasses.replace(case, data=data)


# ----------------------------------------------------------------------------- my data


@dataclass(frozen=True, kw_only=True, slots=True)
class ContactView:
    organisation_code: str
    organisation: str
    role: str
    name: str
    email: str
    language: str


@dataclass(frozen=True, kw_only=True, slots=True)
class MyData:
    """Everything the programme keeps about one address."""

    email: str
    at: dt.datetime
    contacts: tuple[ContactView, ...]
    account: UserInfo | None
    sessions: tuple[SessionInfo, ...]
    mail: tuple[OutboxMessage, ...]
    events: tuple[StoredEvent, ...]
    access: tuple[AccessEntry, ...]
    case_ids: tuple[int, ...]


def my_data(service: Service, email: str) -> MyData:
    """The personal data kept about ``email`` (read in one transaction)."""
    service.access_log.flush()  # the log shown includes the reads just made
    address = email.strip().lower()
    now = service.clock.now()
    with service.store.read() as tx:
        contacts: list[Contact] = tx.contacts_with_email(address)
        names = {m.code: m.name for m in tx.organisations()}
        case_ids: list[int] = []
        for code in dict.fromkeys(c.organisation_code for c in contacts):
            case_ids += [c.id or 0 for c in tx.find_cases_by_ref(code, None)]
        account = tx.find_user(address)
        sessions = tx.sessions_of(account.id, now) if account is not None else []
        mail = tx.outbox_to(address)
        events = tx.events_by(address)
        access = tx.access_entries(address, case_ids)
    return MyData(
        email=address,
        at=now,
        contacts=tuple(
            ContactView(
                organisation_code=c.organisation_code,
                organisation=names.get(c.organisation_code, c.organisation_code),
                role=c.role,
                name=c.name,
                email=c.email,
                language=c.language,
            )
            for c in contacts
        ),
        account=account,
        sessions=tuple(sessions),
        mail=tuple(mail),
        events=tuple(events),
        access=tuple(access),
        case_ids=tuple(case_ids),
    )


def _when(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def export(data: MyData) -> dict[str, Any]:
    """``my_data`` as the JSON document the portal's download gives."""
    account = data.account
    return {
        "format": "dk2020flow-my-data/1",
        "email": data.email,
        "exported_at": _when(data.at),
        "contacts": [dataclasses.asdict(c) for c in data.contacts],
        "account": None
        if account is None
        else {
            "email": account.email,
            "name": account.name,
            "kind": account.kind,
            "language": account.language,
            "active": account.active,
            "created_at": _when(account.created_at),
            "disabled_at": _when(account.disabled_at),
        },
        "sessions": [
            {
                "created_at": _when(s.created_at),
                "last_seen_at": _when(s.last_seen_at),
                "expires_at": _when(s.expires_at),
                "user_agent": s.user_agent,
                "client": s.client,
                "method": s.method,
            }
            for s in data.sessions
        ],
        "mail": [
            {
                "id": m.id,
                "case_id": m.case_id,
                "template": m.template,
                "language": m.language,
                "to": [list(a) for a in m.to],
                "cc": [list(a) for a in m.cc],
                "subject": m.subject,
                "text": BODY_REMOVED_NOTE if m.template in ONE_TIME_SECRET_TEMPLATES else m.text,
                "status": m.status.value,
                "created_at": _when(m.created_at),
                "sent_at": _when(m.sent_at),
            }
            for m in data.mail
        ],
        "events": [
            {
                "case_id": e.case_id,
                "seq": e.seq,
                "at": _when(e.record.at),
                "kind": e.record.kind.value,
                "actor": e.record.actor,
                "role": e.record.role,
                "trigger": e.record.trigger,
                "from_state": e.record.from_state,
                "to_state": e.record.to_state,
                "comment": e.record.comment,
                "data": dict(e.record.data),
            }
            for e in data.events
        ],
        "access_log": [
            {
                "at": _when(a.at),
                "actor": a.actor,
                "actor_kind": a.actor_kind,
                "action": a.action,
                "what": a.what,
                "via": a.via,
                "case_id": a.case_id,
                "subject": a.subject,
            }
            for a in data.access
        ],
    }


# ----------------------------------------------------------------------------- forgetting


@dataclass(frozen=True, kw_only=True, slots=True)
class ForgetPlan:
    email: str
    names: tuple[str, ...]
    organisations: tuple[str, ...]
    counts: ForgetCounts
    applied: bool

    def lines(self) -> list[str]:
        """What is (or would be) removed, one line each (only what there is)."""
        c = self.counts
        found: list[tuple[int, str]] = [
            (c.contacts, "contact row(s) deleted"),
            (c.users, "participant account deleted"),
            (c.sessions, "session(s) deleted"),
            (c.sign_in_tokens, "sign-in link(s) deleted"),
            (c.sign_in_attempts, "sign-in attempt count(s) deleted"),
            (c.outbox, "mail redacted (address and body; the mail's fact stays)"),
            (c.outbox_unsent, "of them not sent yet: never sent (dead)"),
            (c.documents, "document(s): uploader replaced"),
            (c.webhook_deliveries, "webhook notice(s): address replaced"),
            (c.access_log, "access log entries deleted or their actor replaced"),
        ]
        lines = [f"{n} {text}" for n, text in found if n]
        if c.staff_account:
            lines.append("a staff account has this address: kept (dk2020flow users disable)")
        lines.append(f"the case history shows {FORGOTTEN!r} for the address and the name(s)")
        return lines


def _targets(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({n.strip() for n in names if n.strip()}))


def forget(service: Service, email: str, *, apply: bool) -> ForgetPlan:
    """Forget ``email`` (``apply``) or say what forgetting would remove (a dry run, which
    changes nothing). One transaction; ``UnknownPersonError`` when the programme keeps
    nothing for the address."""
    service.access_log.flush()  # reads logged in this process are forgotten too
    address = email.strip().lower()
    if "@" not in address or len(address) > 320:
        raise PrivacyInputError(f"EMAIL: {email!r} is not an e-mail address")
    now = service.clock.now()
    manager = service.store.transaction() if apply else service.store.read()
    with manager as tx:
        contacts = tx.contacts_with_email(address)
        account = tx.find_user(address)
        if not contacts and account is None:
            raise UnknownPersonError(address)
        if not contacts and account is not None and account.kind != PARTICIPANT:
            raise StaffAccountError(address)
        names = _targets(
            [c.name for c in contacts]
            + ([account.name] if account is not None and account.kind == PARTICIPANT else [])
        )
        digests = [digest(address), *(digest(n) for n in names)]
        counts = tx.forget_person(address, names, digests, FORGOTTEN, now, apply=apply)
        organisations = {m.code: m.name for m in tx.organisations()}
    return ForgetPlan(
        email=address,
        names=names,
        organisations=tuple(
            dict.fromkeys(
                organisations.get(c.organisation_code, c.organisation_code) for c in contacts
            )
        ),
        counts=counts,
        applied=apply,
    )


def forgotten_digests(service: Service) -> frozenset[str]:
    with service.store.read() as tx:
        return tx.forgotten_digests()


def counts_summary(counts: ForgetCounts) -> Mapping[str, Any]:
    return dataclasses.asdict(counts)


def displayed(
    tx: PrivacyTx, case: CaseSnapshot, events: Sequence[StoredEvent]
) -> tuple[CaseSnapshot, list[StoredEvent]]:
    """A case and its history as every page and command shows them (one small query)."""
    digests = tx.forgotten_digests()
    return displayed_case(case, digests), displayed_events(events, digests)
