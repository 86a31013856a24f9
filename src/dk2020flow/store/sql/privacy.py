"""``PrivacyTx``: the access log, a person's data, and forgetting a person.

The access log is append-only in use (one INSERT per read that is logged) and purged by
age (``purge_access_log``, index ``ix_access_log_at``). Forgetting (``forget_person``)
deletes the person's contact rows, participant account, its sessions and sign-in
tokens, and redacts the rest in place: the mail to the address (its body and the
address), and the address or name wherever another row names it. The case history
(``events``, append-only and hash-chained) and the case rows (``cases.data``, which
``case verify`` replays) are not touched: their display replaces what the digests in
``forgotten_people`` name (``service/privacy.py``; docs/portal.md "Your data (GDPR)").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, Text, cast, delete, func, insert, or_, select, update

from dk2020flow.store import tables as t
from dk2020flow.store.port import (
    AccessEntry,
    ForgetCounts,
    OutboxMessage,
    OutboxStatus,
    StoredEvent,
    person_digest,
)
from dk2020flow.store.rows import to_event, to_message
from dk2020flow.store.sql.base import SqlBase

_l = t.access_log.c
_o = t.outbox.c

UNSENT = (OutboxStatus.PENDING.value, OutboxStatus.SENDING.value, OutboxStatus.PARKED.value)
FORGOTTEN_NOTE = "(Removed: the recipient was forgotten, dk2020flow participants forget.)"


def _entry(row: Any) -> AccessEntry:
    return AccessEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        actor_kind=row.actor_kind,
        action=row.action,
        what=row.what,
        via=row.via,
        case_id=row.case_id,
        subject=row.subject,
    )


def _addressed_to(email: str) -> Any:
    """Rows whose to or cc mention ``email`` (a superset: checked again in Python)."""
    pattern = f"%{email.lower()}%"
    return or_(
        func.lower(cast(_o.to_addresses, Text)).like(pattern),
        func.lower(cast(_o.cc_addresses, Text)).like(pattern),
    )


def _is_to(message: OutboxMessage, email: str) -> bool:
    return any(address.lower() == email for _name, address in (*message.to, *message.cc))


class _Scrub:
    """Replaces the address and the names in text and JSON values."""

    def __init__(self, email: str, names: Sequence[str], placeholder: str) -> None:
        self.email = email.lower()
        self.names = tuple(n for n in names if n.strip())
        self.placeholder = placeholder

    def text(self, value: str) -> str:
        out = value
        lowered = out.lower()
        while self.email in lowered:
            at = lowered.index(self.email)
            out = out[:at] + self.placeholder + out[at + len(self.email) :]
            lowered = out.lower()
        for name in self.names:
            out = out.replace(name, self.placeholder)
        return out

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {k: self.json(v) for k, v in value.items()}
        return value

    def mentions(self, value: Any) -> bool:
        return bool(self.json(value) != value)


class SqlPrivacyTx(SqlBase):
    """``port.PrivacyTx`` over the transaction's connection."""

    # ------------------------------------------------------------------ the access log

    def record_access(self, entries: Sequence[AccessEntry]) -> None:
        """One INSERT. On PostgreSQL the transaction commits without waiting for its WAL
        to reach the disk (``SET LOCAL synchronous_commit TO OFF``: a crash may lose the
        last few hundred milliseconds of such log lines, never corrupts anything): it is
        meant for a transaction of its own (``service.privacy.record_read``)."""
        if not entries:
            return
        if self._conn.dialect.name == "postgresql":
            self._conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        self._conn.execute(
            insert(t.access_log),
            [
                {
                    "at": e.at,
                    "actor": e.actor[:200],
                    "actor_kind": e.actor_kind,
                    "action": e.action,
                    "what": e.what,
                    "via": e.via,
                    "case_id": e.case_id,
                    "subject": e.subject,
                }
                for e in entries
            ],
        )

    def access_entries(self, subject: str, case_ids: Sequence[int]) -> list[AccessEntry]:
        about = func.lower(_l.subject) == subject.lower()
        if case_ids:
            about = or_(about, _l.case_id.in_(list(case_ids)))
        rows = self._conn.execute(select(t.access_log).where(about).order_by(_l.at, _l.id))
        return [_entry(row) for row in rows]

    def purge_access_log(self, before: dt.datetime) -> int:
        return int(self._conn.execute(delete(t.access_log).where(_l.at < before)).rowcount or 0)

    # ------------------------------------------------------------------ a person's data

    def outbox_to(self, email: str) -> list[OutboxMessage]:
        address = email.lower()
        rows = self._conn.execute(select(t.outbox).where(_addressed_to(address)).order_by(_o.id))
        return [m for m in (to_message(row) for row in rows) if _is_to(m, address)]

    def events_by(self, actor: str) -> list[StoredEvent]:
        e = t.events.c
        rows = self._conn.execute(
            select(t.events).where(func.lower(e.actor) == actor.lower()).order_by(e.case_id, e.seq)
        )
        return [to_event(row) for row in rows]

    def forgotten_digests(self) -> frozenset[str]:
        found: set[str] = set()
        for (digests,) in self._conn.execute(select(t.forgotten_people.c.digests)):
            found.update(str(d) for d in digests)
        return frozenset(found)

    def is_forgotten(self, value: str) -> bool:
        memo: frozenset[str] | None = getattr(self, "_forgotten_memo", None)
        if memo is None:
            memo = self._forgotten_memo = self.forgotten_digests()
        return bool(memo) and person_digest(value) in memo

    # ------------------------------------------------------------------ forgetting

    def forget_person(
        self,
        email: str,
        names: Sequence[str],
        digests: Sequence[str],
        placeholder: str,
        now: dt.datetime,
        *,
        apply: bool,
    ) -> ForgetCounts:
        address = email.lower()
        scrub = _Scrub(address, names, placeholder)
        conn = self._conn
        c, u = t.contacts.c, t.users.c
        contact_ids = [
            row.id for row in conn.execute(select(c.id).where(func.lower(c.email) == address))
        ]
        user = conn.execute(select(u.id, u.kind).where(func.lower(u.email) == address)).first()
        staff = user is not None and user.kind != "participant"
        user_ids = [] if user is None or staff else [user.id]
        sessions = self._count(t.web_sessions, t.web_sessions.c.user_id.in_(user_ids))
        tokens = self._count(t.sign_in_tokens, t.sign_in_tokens.c.user_id.in_(user_ids))
        attempt_key = "email:" + hashlib.sha256(address.encode("utf-8")).hexdigest()
        attempts = self._count(t.sign_in_attempts, t.sign_in_attempts.c.key == attempt_key)
        mail = self.outbox_to(address)
        unsent = [m for m in mail if m.status.value in UNSENT]
        documents = self._mentioning(t.documents, ("uploaded_by",), scrub)
        deliveries = self._mentioning(t.webhook_deliveries, ("body", "last_error"), scrub)
        log_about = self._count(t.access_log, func.lower(_l.subject) == address)
        log_by = self._mentioning(t.access_log, ("actor",), scrub)
        counts = ForgetCounts(
            contacts=len(contact_ids),
            users=len(user_ids),
            sessions=sessions,
            sign_in_tokens=tokens,
            sign_in_attempts=attempts,
            outbox=len(mail),
            outbox_unsent=len(unsent),
            documents=len(documents),
            access_log=log_about + len(log_by),
            webhook_deliveries=len(deliveries),
            staff_account=staff,
        )
        if not apply:
            return counts
        if contact_ids:
            conn.execute(delete(t.contacts).where(c.id.in_(contact_ids)))
        if user_ids:
            conn.execute(delete(t.web_sessions).where(t.web_sessions.c.user_id.in_(user_ids)))
            conn.execute(delete(t.sign_in_tokens).where(t.sign_in_tokens.c.user_id.in_(user_ids)))
            conn.execute(delete(t.users).where(u.id.in_(user_ids)))
        conn.execute(delete(t.sign_in_attempts).where(t.sign_in_attempts.c.key == attempt_key))
        for message in mail:
            values: dict[str, Any] = {
                "to_addresses": self._redacted(message.to, address, placeholder),
                "cc_addresses": self._redacted(message.cc, address, placeholder),
                "subject": scrub.text(message.subject),
                "text": FORGOTTEN_NOTE,
                "html": "",
                "ics": None,
                "last_error": scrub.text(message.last_error),
                "reason": scrub.text(message.reason),
                "intent": scrub.json(dict(message.intent)) if message.intent else None,
            }
            if message.status.value in UNSENT:
                values |= {
                    "status": OutboxStatus.DEAD.value,
                    "dead_at": now,
                    "lease_until": None,
                    "last_error": "not sent: the recipient was forgotten",
                }
            conn.execute(update(t.outbox).where(_o.id == message.id).values(**values))
        self._scrub_rows(t.documents, ("uploaded_by",), documents, scrub)
        self._scrub_rows(t.webhook_deliveries, ("body", "last_error"), deliveries, scrub)
        conn.execute(delete(t.access_log).where(func.lower(_l.subject) == address))
        self._scrub_rows(t.access_log, ("actor",), log_by, scrub)
        conn.execute(
            insert(t.forgotten_people).values(
                forgotten_at=now,
                digests=sorted(set(digests)),
                summary={k: v for k, v in _as_dict(counts).items() if v},
            )
        )
        return counts

    def _count(self, table: Any, where: Any) -> int:
        return int(
            self._conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
        )

    def _mentioning(
        self, table: Any, columns: Sequence[str], scrub: _Scrub
    ) -> list[tuple[int, dict[str, Any]]]:
        """(id, {column: value}) of the rows whose ``columns`` name the address or a name."""
        terms = [scrub.email, *scrub.names]
        cols = [table.c[name] for name in columns]
        where = or_(
            *(
                func.lower(cast(col, String)).like(f"%{term.lower()}%")
                for col in cols
                for term in terms
            )
        )
        found: list[tuple[int, dict[str, Any]]] = []
        for row in self._conn.execute(select(table.c.id, *cols).where(where)):
            values = {name: getattr(row, name) for name in columns}
            if scrub.mentions(values):
                found.append((row.id, values))
        return found

    def _scrub_rows(
        self,
        table: Any,
        columns: Sequence[str],
        rows: Sequence[tuple[int, dict[str, Any]]],
        scrub: _Scrub,
    ) -> None:
        for row_id, values in rows:
            self._conn.execute(
                update(table).where(table.c.id == row_id).values(**scrub.json(values))
            )

    @staticmethod
    def _redacted(
        addresses: Sequence[tuple[str, str]], email: str, placeholder: str
    ) -> list[list[str]]:
        return [
            [placeholder, ""] if address.lower() == email else [name, address]
            for name, address in addresses
        ]


def _as_dict(counts: ForgetCounts) -> dict[str, Any]:
    return dataclasses.asdict(counts)
