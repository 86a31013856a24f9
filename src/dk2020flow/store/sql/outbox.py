"""``OutboxTx``: the outbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Integer,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection

from dk2020flow.engine.records import TimerStatus
from dk2020flow.errors import ConflictError, NotFoundError
from dk2020flow.store import tables as t
from dk2020flow.store.driver import BulkStatement
from dk2020flow.store.port import (
    BODY_REMOVED_NOTE,
    ONE_TIME_SECRET_TEMPLATES,
    NewMail,
    OutboxMessage,
    OutboxStatus,
)
from dk2020flow.store.rows import outbox_values, to_message
from dk2020flow.store.sql.base import SqlBase

PENDING = TimerStatus.PENDING.value
_o = t.outbox.c
_SENDING = OutboxStatus.SENDING.value
_is_sending = _o.status == _SENDING

CLAIMABLE_OUTBOX = (
    select(_o.id)
    .where(
        or_(
            and_(_is_sending, _o.lease_until <= bindparam("now", type_=_o.lease_until.type)),
            and_(
                _o.status == OutboxStatus.PENDING.value,
                _o.next_attempt_at <= bindparam("now", type_=_o.next_attempt_at.type),
                _o.not_before <= bindparam("now", type_=_o.not_before.type),
            ),
        )
    )
    .order_by(
        # Expired leases first (their daemon died), by lease_until and id; then the
        # pending messages, urgent ones first, by next_attempt_at and id. The two
        # CASE keys are NULL for every pending row, so they leave its order alone.
        case((_is_sending, 0), else_=1),
        case((_is_sending, _o.lease_until)),
        case((_is_sending, _o.id)),
        _o.urgent.desc(),
        _o.next_attempt_at,
        _o.id,
    )
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
"""The ids of up to ``limit`` messages to send at ``now``: ``sending`` ones whose lease has
expired (a crashed daemon's), then ``pending`` ones that are due; one statement,
through the ``(status, next_attempt_at)`` index for both kinds."""

LEASE_OUTBOX = (
    update(t.outbox)
    .where(_o.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=OutboxStatus.SENDING.value,
        lease_until=bindparam("lease_until", type_=_o.lease_until.type),
        attempts=_o.attempts + 1,
    )
    .returning(*t.outbox.columns)
)
"""Claim the messages ``ids`` until ``lease_until`` (one attempt more each); returns
their rows as they are now (in no particular order)."""

MARK_SENT = (
    update(t.outbox)
    .where(_o.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=OutboxStatus.SENT.value,
        sent_at=bindparam("at", type_=_o.sent_at.type),
        lease_until=None,
    )
)
"""Mark the messages ``ids`` sent ``at``."""

MARK_SENT_NOTED = (
    update(t.outbox)
    .where(_o.id == bindparam("b_id"))
    .values(
        status=OutboxStatus.SENT.value,
        sent_at=bindparam("at", type_=_o.sent_at.type),
        lease_until=None,
        last_error=bindparam("b_note", type_=_o.last_error.type),
    )
)
"""Mark the message ``b_id`` sent ``at``, with ``b_note`` (refused recipients) as its
``last_error`` (executemany)."""

FORGET_SENT_SECRETS = (
    update(t.outbox)
    .where(
        _o.id.in_(bindparam("ids", expanding=True)),
        _o.template.in_(sorted(ONE_TIME_SECRET_TEMPLATES)),
    )
    .values(text=BODY_REMOVED_NOTE, html=BODY_REMOVED_NOTE)
)
"""Blank the bodies of the sent messages ``ids`` that carry a one-time secret."""

OUTBOX_IDS_IN = select(_o.id).where(_o.id.in_(bindparam("ids", expanding=True)))


OUTBOX_COLUMNS = tuple(column.key for column in t.outbox.columns)
INSERT_OUTBOX = BulkStatement(insert(t.outbox), OUTBOX_COLUMNS)
"""A new message, every column given (``rows.outbox_values``)."""

SQLITE_LAST_OUTBOX_ID = select(func.coalesce(func.max(_o.id), 0))
PG_NEXT_OUTBOX_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('outbox', 'id')) FROM generate_series(1, :n)"
)
# The counts migration 0004's triggers keep (a row per status, or per status and writing
# transaction on PostgreSQL until it commits): a few rows, not a scan of the outbox.
OUTBOX_COUNTS = select(t.outbox_counts.c.status, func.sum(t.outbox_counts.c.n)).group_by(
    t.outbox_counts.c.status
)


def insert_outbox(conn: Connection, mails: Sequence[NewMail]) -> list[int]:
    """Insert rendered messages with their stable Message-IDs; return their ids.

    The ids are reserved before the insert — from the table's sequence on
    PostgreSQL; on SQLite as the next ones after ``max(id)``, which is what SQLite
    would pick itself, safe because a write transaction holds the database's
    write lock — so each row carries its Message-ID from the start.
    """
    ids = reserve_outbox_ids(conn, len(mails))
    INSERT_OUTBOX.execute(
        conn, [outbox_values(mail, row_id) for mail, row_id in zip(mails, ids, strict=True)]
    )
    return ids


def reserve_outbox_ids(conn: Connection, count: int) -> list[int]:
    if count <= 0:
        return []
    if conn.dialect.name == "postgresql":
        return sorted(
            int(row_id) for row_id in conn.execute(PG_NEXT_OUTBOX_IDS, {"n": count}).scalars()
        )
    last = int(conn.execute(SQLITE_LAST_OUTBOX_ID).scalar_one())
    return list(range(last + 1, last + 1 + count))


def outbox_counts(conn: Connection) -> dict[OutboxStatus, int]:
    """How many messages are in each status (every status present, zero or more)."""
    counts = dict.fromkeys(OutboxStatus, 0)
    for status, count in conn.execute(OUTBOX_COUNTS):
        counts[OutboxStatus(status)] = int(count)
    return counts


class SqlOutboxTx(SqlBase):
    """``port.OutboxTx`` over the transaction's connection."""

    def queue_mail(self, mails: Sequence[NewMail]) -> list[int]:
        """Store rendered messages; each gets its stable Message-ID. Returns their ids.

        One ``INSERT`` for all of them, each row with its Message-ID already set
        (the ids are reserved first: see ``insert_outbox``).
        """
        if not mails:
            return []
        return insert_outbox(self._conn, mails)

    def claim_outbox(
        self, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[OutboxMessage]:
        """Take up to ``limit`` messages to send: expired leases first (their daemon died),
        then pending ones that are due. Each becomes ``sending`` until ``lease_until``."""
        ids = list(self._conn.execute(CLAIMABLE_OUTBOX, {"now": now, "limit": limit}).scalars())
        if not ids:
            return []
        order = {row_id: n for n, row_id in enumerate(ids)}
        rows = self._conn.execute(LEASE_OUTBOX, {"ids": ids, "lease_until": lease_until})
        return sorted((to_message(row) for row in rows), key=lambda m: order[m.id])

    def claim_message(
        self, message_id: int, now: dt.datetime, lease_until: dt.datetime
    ) -> OutboxMessage | None:
        """Claim one given message (a sign-in mail sent at once) if it is pending and due;
        None if not (another delivery has it, or it is sent): the daemon sends it then."""
        due = self._conn.execute(
            CLAIMABLE_OUTBOX.where(_o.id == message_id), {"now": now, "limit": 1}
        ).scalar_one_or_none()
        if due is None:
            return None
        rows = self._conn.execute(LEASE_OUTBOX, {"ids": [due], "lease_until": lease_until})
        return to_message(rows.one())

    def mark_sent(self, message_id: int, at: dt.datetime, note: str = "") -> None:
        """Sent; ``note`` (e.g. the recipients the server refused) goes to ``last_error``."""
        values: dict[str, Any] = {"sent_at": at, "lease_until": None}
        if note:
            values["last_error"] = note
        self._set_outbox(message_id, status=OutboxStatus.SENT.value, **values)
        self._conn.execute(FORGET_SENT_SECRETS, {"ids": [message_id]})

    def mark_sent_many(self, sent: Sequence[tuple[int, str]], at: dt.datetime) -> None:
        """``mark_sent`` for a batch: the messages without a note in one ``UPDATE … IN``,
        those with one (their refusals go to ``last_error``) in one ``executemany``.
        ``NotFoundError`` (and nothing marked, with the transaction) if one is missing."""
        plain = [message_id for message_id, note in sent if not note]
        noted = [(message_id, note) for message_id, note in sent if note]
        marked = 0
        if plain:
            marked += self._conn.execute(MARK_SENT, {"ids": plain, "at": at}).rowcount
        if noted:
            marked += self._conn.execute(
                MARK_SENT_NOTED,
                [{"b_id": message_id, "b_note": note, "at": at} for message_id, note in noted],
            ).rowcount
        self._conn.execute(FORGET_SENT_SECRETS, {"ids": [m for m, _ in sent]})
        if marked != len(plain) + len(noted):
            ids = [message_id for message_id, _ in sent]
            present = set(self._conn.execute(OUTBOX_IDS_IN, {"ids": ids}).scalars())
            missing = [message_id for message_id in ids if message_id not in present]
            raise NotFoundError(
                f"there is no message {missing[0] if missing else ids[0]} in the outbox"
            )

    def mark_retry(self, message_id: int, next_attempt_at: dt.datetime, error: str) -> None:
        self._set_outbox(
            message_id,
            status=OutboxStatus.PENDING.value,
            next_attempt_at=next_attempt_at,
            last_error=error,
            lease_until=None,
        )

    def mark_dead(self, message_id: int, error: str, at: dt.datetime) -> None:
        self._set_outbox(
            message_id,
            status=OutboxStatus.DEAD.value,
            last_error=error,
            dead_at=at,
            lease_until=None,
        )

    def _set_outbox(self, message_id: int, **values: Any) -> None:
        result = self._conn.execute(
            update(t.outbox).where(t.outbox.c.id == message_id).values(**values)
        )
        if result.rowcount != 1:
            raise NotFoundError(f"there is no message {message_id} in the outbox")

    def outbox(
        self, *, status: OutboxStatus | None = None, case_id: int | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        """Messages, newest first."""
        o = t.outbox.c
        query = select(t.outbox)
        if status is not None:
            query = query.where(o.status == status.value)
        if case_id is not None:
            query = query.where(o.case_id == case_id)
        rows = self._conn.execute(query.order_by(o.id.desc()).limit(limit))
        return [to_message(row) for row in rows]

    def outbox_message(self, message_id: int) -> OutboxMessage | None:
        row = self._conn.execute(select(t.outbox).where(t.outbox.c.id == message_id)).first()
        return None if row is None else to_message(row)

    def outbox_counts(self) -> dict[OutboxStatus, int]:
        """How many messages are in each status (every status present, zero or more)."""
        return outbox_counts(self._conn)

    def requeue(self, message_id: int, now: dt.datetime) -> bool:
        """Send a dead or parked message again (attempts start over). False if it is neither."""
        o = t.outbox.c
        row = self._conn.execute(
            select(o.status, o.not_before).where(o.id == message_id).with_for_update()
        ).first()
        if row is None:
            raise NotFoundError(f"there is no message {message_id} in the outbox")
        if row.status not in (OutboxStatus.DEAD.value, OutboxStatus.PARKED.value):
            return False
        self._set_outbox(
            message_id,
            status=OutboxStatus.PENDING.value,
            attempts=0,
            next_attempt_at=max(now, row.not_before),
            lease_until=None,
            dead_at=None,
        )
        return True

    def rewrite_parked(self, message_id: int, mail: NewMail) -> None:
        """Replace a parked message's content with a new rendering (same row, same Message-ID)."""
        o = t.outbox.c
        status = self._conn.execute(
            select(o.status).where(o.id == message_id).with_for_update()
        ).scalar_one_or_none()
        if status is None:
            raise NotFoundError(f"there is no message {message_id} in the outbox")
        if status != OutboxStatus.PARKED.value:
            raise ConflictError(f"message {message_id} is {status}, not parked")
        self._set_outbox(
            message_id,
            language=mail.language,
            to_addresses=[list(pair) for pair in mail.to],
            cc_addresses=[list(pair) for pair in mail.cc],
            subject=mail.subject,
            text=mail.text,
            html=mail.html,
            ics=mail.ics,
            status=mail.status.value,
            attempts=0,
            not_before=mail.not_before,
            next_attempt_at=mail.not_before,
            lease_until=None,
            dead_at=None,
            reason=mail.reason,
        )

    def purge_sent(self, before: dt.datetime) -> int:
        """Delete messages sent before ``before``; return how many."""
        o = t.outbox.c
        result = self._conn.execute(
            delete(t.outbox).where(o.status == OutboxStatus.SENT.value, o.sent_at < before)
        )
        return int(result.rowcount)
