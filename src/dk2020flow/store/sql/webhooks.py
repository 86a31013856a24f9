"""``WebhooksTx``: webhook subscriptions and the webhooks' outbox (``webhook_deliveries``).

A change's notices are queued in the change's own transaction (DESIGN.md invariant 1,
as its mail is): ``cases.SqlCasesTx._write_decision`` and ``bulk.write_bulk`` call
``queue_webhooks`` after inserting the events, with one row per event and matching
active subscription. A rolled-back change therefore leaves no delivery, and a delivery
always tells of a change that was committed.

Cost when nobody subscribes: the active subscriptions are read once per transaction
(one indexed-less read of a table of a handful of rows, remembered for the rest of the
transaction: a dispatch batch of 200 firings reads them once); with none, nothing else
happens. With subscriptions, each change that has notices to send costs one more query
(its events' ids and numbers) and one ``INSERT`` (all its rows).

Each row's ``body`` is the JSON sent, made once here, so every attempt sends (and signs)
the same bytes; ``delivery_id`` (``msg_`` and 32 hex digits) is the ``webhook-id`` a
receiver de-duplicates on.

The lease: a claim keeps the row ``pending`` and moves its ``next_attempt_at`` to the
lease's end (``lease_until``), counting one attempt. Nobody else claims it before then; a
daemon that dies holding it leaves it due again at that instant, through the same
``(status, next_attempt_at)`` index as every due row. Outcomes are written only for the
claim they belong to (same ``attempts``, still ``pending``), so a daemon that lost its
lease cannot overwrite a newer claim's outcome.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, bindparam, func, insert, select, tuple_, update
from sqlalchemy.engine import Connection, Row

from dk2020flow.engine.records import CaseSnapshot, EventKind, EventRecord
from dk2020flow.errors import ConflictError, NotFoundError
from dk2020flow.store import tables as t
from dk2020flow.store.driver import BulkStatement
from dk2020flow.store.port import (
    ClaimedWebhook,
    WebhookDelivery,
    WebhookOutcome,
    WebhookStatus,
    WebhookSubscription,
)
from dk2020flow.store.sql.base import SqlBase
from dk2020flow.store.types import as_utc

_s = t.webhook_subscriptions.c
_d = t.webhook_deliveries.c
_e = t.events.c
PENDING = WebhookStatus.PENDING.value
SENT = WebhookStatus.SENT.value
DEAD = WebhookStatus.DEAD.value
REMOVED_ERROR = "its subscription was removed"

# --------------------------------------------------------------------------- statements

ACTIVE_SUBSCRIPTIONS = select(_s.id, _s.events).where(_s.active.is_(True)).order_by(_s.id)
"""What queueing needs of the active subscriptions (read once per transaction)."""

LAST_EVENTS = (
    select(_e.id, _e.seq)
    .where(_e.case_id == bindparam("b_case"))
    .order_by(_e.seq.desc())
    .limit(bindparam("b_n", type_=Integer))
)
"""The ids and numbers of a case's last ``b_n`` events (those a change just appended)."""

EVENTS_AT = select(_e.id, _e.case_id, _e.seq).where(
    tuple_(_e.case_id, _e.seq).in_(bindparam("b_pairs", expanding=True))
)
"""The ids of events by ``(case_id, seq)`` (a dispatch batch numbers its events itself)."""

DELIVERY_COLUMNS = (
    "subscription_id",
    "delivery_id",
    "event_type",
    "case_id",
    "event_id",
    "body",
    "status",
    "attempts",
    "next_attempt_at",
    "lease_until",
    "last_error",
    "last_status",
    "created_at",
    "sent_at",
    "dead_at",
)
INSERT_DELIVERIES = BulkStatement(insert(t.webhook_deliveries), DELIVERY_COLUMNS)

CLAIMABLE = (
    select(_d.id)
    .where(
        _d.status == PENDING,
        _d.next_attempt_at <= bindparam("now", type_=_d.next_attempt_at.type),
    )
    .order_by(_d.next_attempt_at, _d.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
"""Up to ``limit`` due deliveries, oldest due first, locked (SKIP LOCKED on PostgreSQL:
another daemon's claim in flight is passed over, never waited for nor taken twice)."""

LEASE = (
    update(t.webhook_deliveries)
    .where(_d.id.in_(bindparam("ids", expanding=True)))
    .values(
        attempts=_d.attempts + 1,
        lease_until=bindparam("lease_until", type_=_d.lease_until.type),
        next_attempt_at=bindparam("lease_until", type_=_d.next_attempt_at.type),
    )
    .returning(*t.webhook_deliveries.columns)
)

TARGETS = select(_s.id, _s.url, _s.secret).where(_s.id.in_(bindparam("ids", expanding=True)))

_CURRENT = (
    _d.id == bindparam("b_id"),
    _d.attempts == bindparam("b_attempts"),
    _d.status == PENDING,
)
"""An outcome is written only for the claim it belongs to."""

MARK_SENT = BulkStatement(
    update(t.webhook_deliveries)
    .where(*_CURRENT)
    .values(
        status=SENT,
        sent_at=bindparam("b_at", type_=_d.sent_at.type),
        next_attempt_at=bindparam("b_at", type_=_d.next_attempt_at.type),
        lease_until=None,
        last_status=bindparam("b_status", type_=_d.last_status.type),
    ),
    ("b_id", "b_attempts", "b_at", "b_status"),
)
MARK_RETRY = BulkStatement(
    update(t.webhook_deliveries)
    .where(*_CURRENT)
    .values(
        next_attempt_at=bindparam("b_next", type_=_d.next_attempt_at.type),
        lease_until=None,
        last_status=bindparam("b_status", type_=_d.last_status.type),
        last_error=bindparam("b_error", type_=_d.last_error.type),
    ),
    ("b_id", "b_attempts", "b_next", "b_status", "b_error"),
)
MARK_RELEASED = BulkStatement(
    update(t.webhook_deliveries)
    .where(*_CURRENT)
    .values(
        next_attempt_at=bindparam("b_at", type_=_d.next_attempt_at.type),
        lease_until=None,
        attempts=_d.attempts - 1,
    ),
    ("b_id", "b_attempts", "b_at"),
)
"""A claimed delivery not attempted (the daemon stopped, or ran out of lease): as before."""
MARK_DEAD = BulkStatement(
    update(t.webhook_deliveries)
    .where(*_CURRENT)
    .values(
        status=DEAD,
        dead_at=bindparam("b_at", type_=_d.dead_at.type),
        next_attempt_at=bindparam("b_at", type_=_d.next_attempt_at.type),
        lease_until=None,
        last_status=bindparam("b_status", type_=_d.last_status.type),
        last_error=bindparam("b_error", type_=_d.last_error.type),
    ),
    ("b_id", "b_attempts", "b_at", "b_status", "b_error"),
)

COUNTS = select(_d.status, func.count()).group_by(_d.status)
NEXT_DUE = select(func.min(_d.next_attempt_at)).where(_d.status == PENDING)


# --------------------------------------------------------------------------- queueing

_active: weakref.WeakKeyDictionary[
    Connection, tuple[object, tuple[tuple[int, frozenset[str]], ...]]
]
_active = weakref.WeakKeyDictionary()
"""The active subscriptions, per connection, as read in its current transaction (the
transaction object is kept beside them: a later transaction on the connection reads again)."""
_active_lock = threading.Lock()  # the web server's and the daemon's threads share the map


def active_subscriptions(conn: Connection) -> tuple[tuple[int, frozenset[str]], ...]:
    """``(id, event types)`` of the active subscriptions, read once per transaction."""
    transaction = conn.get_transaction()
    with _active_lock:
        known = _active.get(conn)
    if known is not None and known[0] is transaction:
        return known[1]
    found = tuple(
        (int(row.id), frozenset(str(kind) for kind in row.events))
        for row in conn.execute(ACTIVE_SUBSCRIPTIONS)
    )
    with _active_lock:
        _active[conn] = (transaction, found)
    return found


def forget_subscriptions(conn: Connection) -> None:
    """The subscriptions changed in this transaction: read them again when next needed."""
    with _active_lock:
        _active.pop(conn, None)


def notice_types(records: Sequence[EventRecord], case: CaseSnapshot) -> list[tuple[int, str]]:
    """``(position in records, event type)`` of the notices a change's events give.

    A transition that changes the state is ``case.state_changed``; the last one, when it
    leaves the case in its (terminal) state, is also ``case.closed``. A transition that
    stays in its state, a timer's own event, a refusal, a skipped firing, a migration and
    a document give none (docs/webhooks.md).
    """
    found: list[tuple[int, str]] = []
    closing = -1
    if case.closed:
        for n in range(len(records) - 1, -1, -1):
            if records[n].kind is EventKind.TRANSITION:
                if records[n].to_state == case.state and records[n].from_state != case.state:
                    closing = n
                break
    for n, record in enumerate(records):
        kind = record.kind
        if kind is EventKind.OPENED:
            found.append((n, "case.opened"))
        elif kind is EventKind.TRANSITION:
            if record.from_state != record.to_state:
                found.append((n, "case.state_changed"))
            if n == closing:
                found.append((n, "case.closed"))
        elif kind is EventKind.DATA_SET:
            found.append((n, "case.data_changed"))
        elif kind in (EventKind.CHECKLIST, EventKind.CHECKLIST_ANSWER):
            found.append((n, "case.checklist_updated"))
        elif kind is EventKind.DEADLINE_EXTENDED:
            found.append((n, "case.deadline_extended"))
    return found


@dataclass(frozen=True, slots=True)
class Told:
    """One change's events, to tell the subscriptions of: the case as the change left it,
    its events in order, and their numbers (``seqs``) when the caller knows them (None:
    they are the case's last ``len(records)`` events)."""

    case_id: int
    case: CaseSnapshot
    records: Sequence[EventRecord]
    seqs: Sequence[int] | None = None


def _instant(at: dt.datetime) -> str:
    return as_utc(at).isoformat().replace("+00:00", "Z")


def notice_body(
    delivery_id: str,
    event_type: str,
    case_id: int,
    case: CaseSnapshot,
    record: EventRecord,
    seq: int,
) -> str:
    """The JSON a delivery sends (docs/webhooks.md, "Payload"), made once."""
    payload = {
        "id": delivery_id,
        "type": event_type,
        "occurred_at": _instant(record.at),
        "case": {
            "id": case_id,
            "workflow": case.workflow,
            "organisation": {"code": case.organisation_code, "name": case.organisation_name},
            "state": case.state,
            # A new case is stored at version 1 whatever its decision says (insert_case).
            "version": case.version if case.id is not None else 1,
        },
        "event": {
            "seq": seq,
            "kind": record.kind.value,
            "trigger": record.trigger,
            "from_state": record.from_state,
            "to_state": record.to_state,
            "actor": record.actor,
            "role": record.role,
            "comment": record.comment,
        },
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def new_delivery_id() -> str:
    return f"msg_{secrets.token_hex(16)}"


def queue_webhooks(conn: Connection, changes: Sequence[Told]) -> int:
    """Queue the notices of ``changes`` (just written, in this transaction) for every
    active subscription that asks for their types; how many rows were queued."""
    subscriptions = active_subscriptions(conn)
    if not subscriptions or not changes:
        return 0
    wanted: list[tuple[Told, int, str, list[int]]] = []
    for change in changes:
        for position, event_type in notice_types(change.records, change.case):
            subscribers = [sid for sid, kinds in subscriptions if event_type in kinds]
            if subscribers:
                wanted.append((change, position, event_type, subscribers))
    if not wanted:
        return 0
    located = _locate(conn, {id(change): change for change, _, _, _ in wanted}.values())
    rows: list[dict[str, Any]] = []
    for change, position, event_type, subscribers in wanted:
        event_id, seq = located[(id(change), position)]
        record = change.records[position]
        for subscription_id in subscribers:
            delivery_id = new_delivery_id()
            rows.append(
                {
                    "subscription_id": subscription_id,
                    "delivery_id": delivery_id,
                    "event_type": event_type,
                    "case_id": change.case_id,
                    "event_id": event_id,
                    "body": notice_body(
                        delivery_id, event_type, change.case_id, change.case, record, seq
                    ),
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": record.at,
                    "lease_until": None,
                    "last_error": "",
                    "last_status": None,
                    "created_at": record.at,
                    "sent_at": None,
                    "dead_at": None,
                }
            )
    return INSERT_DELIVERIES.execute(conn, rows)


def _locate(conn: Connection, changes: Any) -> dict[tuple[int, int], tuple[int, int]]:
    """``(id(change), position) -> (event id, seq)`` for the changes' events."""
    found: dict[tuple[int, int], tuple[int, int]] = {}
    numbered: list[tuple[Told, Sequence[int]]] = []
    for change in changes:
        if change.seqs is None:
            rows = conn.execute(LAST_EVENTS, {"b_case": change.case_id, "b_n": len(change.records)})
            last = sorted((int(row.seq), int(row.id)) for row in rows)
            for position, (seq, event_id) in enumerate(last):
                found[(id(change), position)] = (event_id, seq)
        else:
            numbered.append((change, change.seqs))
    if numbered:
        pairs = [(change.case_id, seq) for change, seqs in numbered for seq in seqs]
        ids: dict[tuple[int, int], int] = {}
        for start in range(0, len(pairs), 2000):
            chunk = pairs[start : start + 2000]
            for row in conn.execute(EVENTS_AT, {"b_pairs": chunk}):
                ids[(int(row.case_id), int(row.seq))] = int(row.id)
        for change, seqs in numbered:
            for position, seq in enumerate(seqs):
                found[(id(change), position)] = (ids[(change.case_id, seq)], seq)
    return found


# --------------------------------------------------------------------------- records


def to_subscription(row: Row[Any]) -> WebhookSubscription:
    return WebhookSubscription(
        id=row.id,
        url=row.url,
        events=tuple(row.events),
        secret=row.secret,
        description=row.description,
        active=bool(row.active),
        created_by=row.created_by,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def to_delivery(row: Row[Any] | Mapping[str, Any]) -> WebhookDelivery:
    values = row if isinstance(row, Mapping) else row._mapping
    return WebhookDelivery(
        id=values["id"],
        delivery_id=values["delivery_id"],
        subscription_id=values["subscription_id"],
        event_type=values["event_type"],
        case_id=values["case_id"],
        event_id=values["event_id"],
        body=values["body"],
        status=WebhookStatus(values["status"]),
        attempts=values["attempts"],
        next_attempt_at=values["next_attempt_at"],
        lease_until=values["lease_until"],
        last_error=values["last_error"],
        last_status=values["last_status"],
        created_at=values["created_at"],
        sent_at=values["sent_at"],
        dead_at=values["dead_at"],
    )


def _by_ref(delivery: str | int) -> Any:
    if isinstance(delivery, int):
        return _d.id == delivery
    text = delivery.strip()
    if text.isdigit():
        return _d.id == int(text)
    return _d.delivery_id == text


class SqlWebhooksTx(SqlBase):
    """``port.WebhooksTx`` over the transaction's connection."""

    # ------------------------------------------------------------------ subscriptions

    def add_webhook(
        self,
        *,
        url: str,
        events: Sequence[str],
        secret: str,
        description: str,
        created_by: str,
        now: dt.datetime,
    ) -> WebhookSubscription:
        row = self._conn.execute(
            insert(t.webhook_subscriptions)
            .values(
                url=url,
                events=list(events),
                secret=secret,
                description=description,
                active=True,
                created_by=created_by,
                created_at=now,
                disabled_at=None,
            )
            .returning(*t.webhook_subscriptions.columns)
        ).one()
        forget_subscriptions(self._conn)
        return to_subscription(row)

    def webhooks(self, *, include_removed: bool = False) -> list[WebhookSubscription]:
        query = select(t.webhook_subscriptions).order_by(_s.id)
        if not include_removed:
            query = query.where(_s.active.is_(True))
        return [to_subscription(row) for row in self._conn.execute(query)]

    def webhook(self, subscription_id: int) -> WebhookSubscription | None:
        row = self._conn.execute(
            select(t.webhook_subscriptions).where(_s.id == subscription_id)
        ).first()
        return None if row is None else to_subscription(row)

    def remove_webhook(self, subscription_id: int, now: dt.datetime) -> tuple[bool, int]:
        active = self._conn.execute(
            select(_s.active).where(_s.id == subscription_id).with_for_update()
        ).scalar_one_or_none()
        if active is None:
            raise NotFoundError(
                f"there is no webhook subscription {subscription_id} "
                "(`dk2020flow webhooks list` shows them)"
            )
        if not active:
            return False, 0
        self._conn.execute(
            update(t.webhook_subscriptions)
            .where(_s.id == subscription_id)
            .values(active=False, disabled_at=now)
        )
        given_up = self._conn.execute(
            update(t.webhook_deliveries)
            .where(_d.subscription_id == subscription_id, _d.status == PENDING)
            .values(status=DEAD, dead_at=now, lease_until=None, last_error=REMOVED_ERROR)
        ).rowcount
        forget_subscriptions(self._conn)
        return True, int(given_up)

    # ------------------------------------------------------------------ delivery

    def claim_webhooks(
        self, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[ClaimedWebhook]:
        ids = list(self._conn.execute(CLAIMABLE, {"now": now, "limit": limit}).scalars())
        if not ids:
            return []
        order = {row_id: n for n, row_id in enumerate(ids)}
        leased = [
            to_delivery(row)
            for row in self._conn.execute(LEASE, {"ids": ids, "lease_until": lease_until})
        ]
        leased.sort(key=lambda d: order[d.id])
        targets = {
            int(row.id): (str(row.url), str(row.secret))
            for row in self._conn.execute(
                TARGETS, {"ids": sorted({d.subscription_id for d in leased})}
            )
        }
        return [
            ClaimedWebhook(
                delivery=d,
                url=targets[d.subscription_id][0],
                secret=targets[d.subscription_id][1],
            )
            for d in leased
        ]

    def finish_webhooks(self, outcomes: Sequence[WebhookOutcome]) -> int:
        sent: list[dict[str, Any]] = []
        retry: list[dict[str, Any]] = []
        released: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        for o in outcomes:
            key = {"b_id": o.id, "b_attempts": o.attempts}
            if o.status is WebhookStatus.SENT:
                sent.append({**key, "b_at": o.at, "b_status": o.http_status})
            elif o.status is WebhookStatus.DEAD:
                dead.append({**key, "b_at": o.at, "b_status": o.http_status, "b_error": o.error})
            elif o.released:
                released.append({**key, "b_at": o.next_attempt_at or o.at})
            else:
                retry.append(
                    {
                        **key,
                        "b_next": o.next_attempt_at or o.at,
                        "b_status": o.http_status,
                        "b_error": o.error,
                    }
                )
        written = 0
        for statement, rows in (
            (MARK_SENT, sent),
            (MARK_RETRY, retry),
            (MARK_RELEASED, released),
            (MARK_DEAD, dead),
        ):
            written += statement.execute(self._conn, rows)
        return written

    def retry_webhook(self, delivery: str | int, now: dt.datetime) -> WebhookDelivery:
        row = self._conn.execute(
            select(t.webhook_deliveries, _s.active)
            .join(t.webhook_subscriptions, _s.id == _d.subscription_id)
            .where(_by_ref(delivery))
            .with_for_update()
        ).first()
        if row is None:
            raise NotFoundError(
                f"there is no webhook delivery {delivery} "
                "(`dk2020flow webhooks deliveries` shows them)"
            )
        found = to_delivery(row)
        if found.status is not WebhookStatus.DEAD:
            raise ConflictError(
                f"webhook delivery {found.delivery_id} is {found.status.value}, not dead: "
                "only a dead delivery is retried"
            )
        if not row.active:
            raise ConflictError(
                f"webhook delivery {found.delivery_id} belongs to subscription "
                f"{found.subscription_id}, which was removed: add the URL again to get new "
                "notices (this one is not sent)"
            )
        back = self._conn.execute(
            update(t.webhook_deliveries)
            .where(_d.id == found.id)
            .values(status=PENDING, attempts=0, next_attempt_at=now, lease_until=None, dead_at=None)
            .returning(*t.webhook_deliveries.columns)
        ).one()
        return to_delivery(back)

    # ------------------------------------------------------------------ reads

    def webhook_deliveries(
        self,
        *,
        status: WebhookStatus | None = None,
        subscription_id: int | None = None,
        limit: int = 100,
    ) -> list[WebhookDelivery]:
        query = select(t.webhook_deliveries)
        if status is not None:
            query = query.where(_d.status == status.value)
        if subscription_id is not None:
            query = query.where(_d.subscription_id == subscription_id)
        rows = self._conn.execute(query.order_by(_d.id.desc()).limit(limit))
        return [to_delivery(row) for row in rows]

    def webhook_delivery(self, delivery: str | int) -> WebhookDelivery | None:
        row = self._conn.execute(select(t.webhook_deliveries).where(_by_ref(delivery))).first()
        return None if row is None else to_delivery(row)

    def webhook_counts(self) -> dict[WebhookStatus, int]:
        counts = dict.fromkeys(WebhookStatus, 0)
        for status, count in self._conn.execute(COUNTS):
            counts[WebhookStatus(status)] = int(count)
        return counts

    def next_webhook_at(self) -> dt.datetime | None:
        value: dt.datetime | None = self._conn.execute(NEXT_DUE).scalar()
        return value
