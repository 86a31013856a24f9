"""``SqlStore``: the ``Store`` port on SQLite and PostgreSQL.

A ``SqlTx`` wraps one SQLAlchemy ``Connection`` inside one database
transaction; every method converts between rows and the port's frozen
records, so no row ever leaves this package. Writes of one ``Decision`` —
case row, events, timers armed and discarded, mail — happen in the caller's
transaction (DESIGN.md invariant 1).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from dk2020flow.engine.records import (
    CaseSnapshot,
    ChecklistItem,
    Decision,
    DueTimer,
    EventKind,
    EventRecord,
    TimerKind,
    TimerStatus,
)
from dk2020flow.errors import ConflictError, NotFoundError
from dk2020flow.store import queries
from dk2020flow.store import tables as t
from dk2020flow.store.chain import GENESIS, chain
from dk2020flow.store.db import (
    READ_ONLY_OPTION,
    make_engine,
    normalize_url,
    require_current_schema,
    translated_errors,
)
from dk2020flow.store.port import (
    BatchItem,
    BatchOutcome,
    CaseFilter,
    Contact,
    DaemonInfo,
    DeadlineArm,
    Municipality,
    NewMail,
    OutboxMessage,
    OutboxStatus,
    ProgrammeTimer,
    StoredDefinition,
    StoredEvent,
    StoredTimer,
)
from dk2020flow.store.types import as_utc

ENV_MAIL_DOMAIN = "DK2020FLOW_MAIL_DOMAIN"
DEFAULT_MAIL_DOMAIN = "dk2020flow.local"
PENDING = TimerStatus.PENDING.value


def message_id_for(row_id: int, created_at: dt.datetime, domain: str | None = None) -> str:
    """The stable Message-ID of outbox row ``row_id`` (a resend carries the same one)."""
    domain = domain or os.environ.get(ENV_MAIL_DOMAIN, "").strip() or DEFAULT_MAIL_DOMAIN
    return f"<dk2020flow.{row_id}.{as_utc(created_at):%Y%m%d}@{domain}>"


class SqlStore:
    """The ``Store`` port on a database URL (SQLite file or PostgreSQL).

    ``check_schema`` (default on): the first transaction checks once that the
    database is at this release's schema and raises ``SchemaBehindError``
    (run ``dk2020flow db upgrade``) when it is not.
    """

    def __init__(self, url: str, *, engine: Engine | None = None, check_schema: bool = True):
        self.url = normalize_url(url)
        self.engine = engine if engine is not None else make_engine(self.url)
        self._schema_checked = not check_schema
        self._lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        """Close the pooled connections (the store may be used again afterwards)."""
        self.engine.dispose()

    def _check_schema(self) -> None:
        if self._schema_checked:
            return
        with self._lock:
            if not self._schema_checked:
                require_current_schema(self.engine)
                self._schema_checked = True

    @contextmanager
    def transaction(self) -> Iterator[SqlTx]:
        """A write transaction: commits when the block ends, rolls back on any exception.

        On SQLite it begins with ``BEGIN IMMEDIATE``: it waits (up to the busy
        timeout) for the write lock up front, so it cannot fail later for lack of it.
        """
        self._check_schema()
        with translated_errors(self.url), self.engine.connect() as conn, conn.begin():
            yield SqlTx(conn)

    @contextmanager
    def read(self) -> Iterator[SqlTx]:
        """A read-only transaction (never takes SQLite's write lock; always rolled back)."""
        self._check_schema()
        with translated_errors(self.url), self.engine.connect() as raw:
            conn = raw.execution_options(
                **{READ_ONLY_OPTION: True},
                **({"postgresql_readonly": True} if self.dialect == "postgresql" else {}),
            )
            with conn.begin() as trans:
                try:
                    yield SqlTx(conn)
                finally:
                    if trans.is_active:
                        trans.rollback()


class SqlTx:
    """One transaction; implements ``port.Tx``."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def connection(self) -> Connection:
        """The underlying connection (for the store's own tests and tools)."""
        return self._conn

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested unit: an exception inside undoes it alone, then propagates."""
        with self._conn.begin_nested():
            yield

    # ------------------------------------------------------------------ definitions

    def save_definition(
        self,
        *,
        name: str,
        version_label: str,
        content_hash: str,
        source_text: str,
        templates: Mapping[str, str],
        source_path: str,
        now: dt.datetime,
    ) -> tuple[StoredDefinition, bool]:
        """Store a definition unless the same content is stored; return it and whether it is new."""
        d = t.definitions.c
        row = self._conn.execute(
            select(t.definitions).where(d.name == name, d.content_hash == content_hash)
        ).first()
        if row is not None:
            return _definition(row), False
        new_id = self._conn.execute(
            insert(t.definitions)
            .values(
                name=name,
                version_label=version_label,
                content_hash=content_hash,
                source_text=source_text,
                templates=dict(templates),
                source_path=source_path,
                loaded_at=now,
            )
            .returning(d.id)
        ).scalar_one()
        return self.definition(new_id), True

    def definition(self, definition_id: int) -> StoredDefinition:
        row = self._conn.execute(
            select(t.definitions).where(t.definitions.c.id == definition_id)
        ).first()
        if row is None:
            raise NotFoundError(f"there is no workflow definition with id {definition_id}")
        return _definition(row)

    def latest_definition(self, name: str) -> StoredDefinition | None:
        d = t.definitions.c
        row = self._conn.execute(
            select(t.definitions).where(d.name == name).order_by(d.id.desc()).limit(1)
        ).first()
        return None if row is None else _definition(row)

    def definitions(self) -> list[StoredDefinition]:
        d = t.definitions.c
        rows = self._conn.execute(select(t.definitions).order_by(d.name, d.id))
        return [_definition(row) for row in rows]

    # ----------------------------------------------------------------- participants

    def municipalities(self) -> list[Municipality]:
        rows = self._conn.execute(select(t.municipalities).order_by(t.municipalities.c.code))
        return [_municipality(row) for row in rows]

    def find_municipality(self, code_or_name: str) -> Municipality | None:
        """By code (``751``, ``"0751"`` is not a code) or name, case-insensitively."""
        ref = code_or_name.strip()
        row = self._conn.execute(queries.MUNICIPALITY_BY_CODE, {"code": ref}).first()
        if row is not None:
            return _municipality(row)
        # 98 rows: fold case in Python (SQLite's lower() knows no Æ, Ø, Å).
        wanted = ref.casefold()
        for municipality in self.municipalities():
            if municipality.name.casefold() == wanted:
                return municipality
        return None

    def contacts(self, municipality_code: str) -> list[Contact]:
        rows = self._conn.execute(queries.CONTACTS_OF_ONE, {"code": municipality_code})
        return [_contact(row) for row in rows]

    def contacts_for(self, municipality_codes: Sequence[str]) -> dict[str, list[Contact]]:
        """The contacts of these municipalities in one query, by code (as ``contacts``)."""
        found: dict[str, list[Contact]] = {code: [] for code in municipality_codes}
        if found:
            for row in self._conn.execute(queries.CONTACTS_OF, {"codes": list(found)}):
                found[row.municipality_code].append(_contact(row))
        return found

    def all_contacts(self) -> list[Contact]:
        c = t.contacts.c
        rows = self._conn.execute(select(t.contacts).order_by(c.municipality_code, c.role, c.id))
        return [_contact(row) for row in rows]

    def replace_participants(
        self, municipalities: Sequence[Municipality], contacts: Sequence[Contact]
    ) -> None:
        """Upsert ``municipalities`` by code; replace the contacts of every municipality
        that ``contacts`` names. Municipalities are never deleted (cases refer to them)."""
        m = t.municipalities.c
        existing = {row.code for row in self._conn.execute(select(m.code))}
        for mun in municipalities:
            values = {"name": mun.name, "region": mun.region, "dk2020_group": mun.group}
            if mun.code in existing:
                self._conn.execute(
                    update(t.municipalities).where(m.code == mun.code).values(**values)
                )
            else:
                self._conn.execute(insert(t.municipalities).values(code=mun.code, **values))
        codes = sorted({contact.municipality_code for contact in contacts})
        if codes:
            self._conn.execute(delete(t.contacts).where(t.contacts.c.municipality_code.in_(codes)))
            self._conn.execute(
                insert(t.contacts),
                [
                    {
                        "municipality_code": c.municipality_code,
                        "role": c.role,
                        "name": c.name,
                        "email": c.email,
                        "language": c.language,
                    }
                    for c in contacts
                ],
            )

    # ------------------------------------------------------------------------ cases

    def insert_case(self, decision: Decision, mails: Sequence[NewMail]) -> int:
        """Store a new case with its first events, timers and mail; return its id.

        The stored version is 1, whatever ``decision.case.version`` says.
        """
        case = decision.case
        c = t.cases.c
        clash = self._conn.execute(
            queries.CASE_OF_MUNICIPALITY,
            {"workflow": case.workflow, "code": case.municipality_code},
        ).scalar()
        if clash is not None:
            raise ConflictError(
                f"municipality {case.municipality_code} ({case.municipality_name}) already has a "
                f"case in workflow {case.workflow}: case {clash}"
            )
        known = self._conn.execute(
            queries.MUNICIPALITY_BY_CODE, {"code": case.municipality_code}
        ).first()
        if known is None:
            raise NotFoundError(f"there is no municipality with code {case.municipality_code}")
        case_id = self._conn.execute(
            insert(t.cases)
            .values(
                workflow=case.workflow,
                municipality_code=case.municipality_code,
                opened_at=case.opened_at,
                version=1,
                **_case_values(case),
            )
            .returning(c.id)
        ).scalar_one()
        self._write_decision(case_id, decision, mails)
        return int(case_id)

    def apply(self, decision: Decision, mails: Sequence[NewMail], *, expected_version: int) -> None:
        """Write a change of a stored case if nobody changed it since ``expected_version``.

        Raises ``ConflictError`` (and writes nothing) when the version moved on.
        The stored version becomes ``expected_version + 1``.
        """
        case = decision.case
        if case.id is None:
            raise ValueError("apply() needs a stored case (its id is None): use insert_case()")
        written = queries.UPDATE_CASE.execute(
            self._conn,
            [
                {
                    "b_id": case.id,
                    "b_expected": expected_version,
                    "version": expected_version + 1,
                    **_case_values(case),
                }
            ],
        )
        if written != 1:
            if self._conn.execute(queries.CASE_EXISTS, {"id": case.id}).first() is None:
                raise NotFoundError(f"there is no case {case.id}")
            raise ConflictError(
                f"case {case.id} was changed by someone else since it was read; "
                "run the command again"
            )
        self._write_decision(case.id, decision, mails)

    def _write_decision(self, case_id: int, decision: Decision, mails: Sequence[NewMail]) -> None:
        case = decision.case
        if decision.cancel_pending:
            self._conn.execute(
                queries.DISCARD_LEFT_STATE, {"b_case": case_id, "b_epoch": case.epoch}
            )
        if decision.cancel_timers:
            self._conn.execute(
                queries.DISCARD_REPLACED,
                {
                    "b_case": case_id,
                    "b_epoch": case.epoch,
                    "b_timers": list(decision.cancel_timers),
                },
            )
        self._insert_events(case_id, decision.events, epoch=case.epoch)
        if decision.arm:
            queries.INSERT_TIMER_ROWS.execute(
                self._conn, [queries.timer_values(case_id, arm) for arm in decision.arm]
            )
        if mails:
            self.queue_mail([_with_case(mail, case_id) for mail in mails])

    def _insert_events(self, case_id: int, records: Sequence[EventRecord], *, epoch: int) -> None:
        """Append ``records`` to the case's log, numbered on from its last event (by the
        database, in the INSERT itself: ``queries.APPEND_EVENT_ROWS``), each chained to
        the one before it by its hash (``store/chain.py``; the last hash read once). The
        caller holds the case row's lock (its UPDATE, or ``append_event``'s)."""
        if not records:
            return
        prev = self._conn.execute(queries.LAST_EVENT_HASH, {"b_case": case_id}).scalar()
        rows = [{**event_values(case_id, rec, epoch), "b_case": case_id} for rec in records]
        chain(rows, prev or GENESIS)
        queries.APPEND_EVENT_ROWS.execute(self._conn, rows)

    def load_cases(self, case_ids: Sequence[int]) -> dict[int, CaseSnapshot]:
        """The cases with these ids, by id, in one query (an unknown id is left out)."""
        if not case_ids:
            return {}
        rows = self._conn.execute(queries.CASES_BY_ID, {"ids": list(case_ids)})
        return {int(row.id): _case(row) for row in rows}

    def load_case(self, case_id: int) -> CaseSnapshot:
        row = self._conn.execute(queries.CASE_BY_ID, {"id": case_id}).first()
        if row is None:
            raise NotFoundError(f"there is no case {case_id}")
        return _case(row)

    def case_ids(self, flt: CaseFilter) -> list[int]:
        query = queries.filter_cases(
            select(t.cases.c.id).join(
                t.municipalities, t.municipalities.c.code == t.cases.c.municipality_code
            ),
            flt,
        )
        return [int(row[0]) for row in self._conn.execute(query)]

    def cases(self, flt: CaseFilter) -> list[CaseSnapshot]:
        rows = self._conn.execute(queries.filter_cases(queries.case_rows(), flt))
        return [_case(row) for row in rows]

    def find_cases_by_ref(self, ref: str, workflow: str | None) -> list[CaseSnapshot]:
        """Cases that ``ref`` names: ``#12`` (the case number 12), else a municipality's
        three-digit code or name (case-insensitive), never a case number (a code such as
        København's 101 must not find case 101); within ``workflow`` if given."""
        ref = ref.strip()
        c = t.cases.c
        if ref.startswith("#") and ref[1:].isdigit():
            # The common case (the CLI's and the simulation's ``#12``): a prepared statement.
            if workflow is None:
                rows = self._conn.execute(queries.CASE_BY_ID, {"id": int(ref[1:])})
            else:
                rows = self._conn.execute(
                    queries.CASE_BY_ID_IN, {"id": int(ref[1:]), "workflow": workflow}
                )
            return [_case(row) for row in rows]
        municipality = self.find_municipality(ref)
        if municipality is None:
            return []
        query = queries.case_rows().where(c.municipality_code == municipality.code)
        if workflow is not None:
            query = query.where(c.workflow == workflow)
        return [_case(row) for row in self._conn.execute(query.order_by(c.id))]

    def history(self, case_id: int) -> list[StoredEvent]:
        e = t.events.c
        rows = list(
            self._conn.execute(select(t.events).where(e.case_id == case_id).order_by(e.seq))
        )
        if not rows:
            self.load_case(case_id)  # NotFoundError for an unknown case
        return [_event(row) for row in rows]

    def timers_of(self, case_id: int, *, pending_only: bool = True) -> list[StoredTimer]:
        tm = t.timers.c
        query = select(t.timers).where(tm.case_id == case_id)
        if pending_only:
            query = query.where(tm.status == PENDING)
        return [_timer(row) for row in self._conn.execute(query.order_by(tm.due_at, tm.id))]

    def deadline_arms(self, workflow: str | None = None) -> list[DeadlineArm]:
        rows = self._conn.execute(queries.latest_deadline_arms(workflow))
        return [
            DeadlineArm(
                case_id=row.case_id,
                timer=row.timer,
                epoch=row.epoch,
                deadline_at=row.deadline_at,
                status=TimerStatus(row.status),
            )
            for row in rows
        ]

    def append_event(self, case_id: int, record: EventRecord) -> None:
        """Log an event that changes nothing else (a skipped firing, parked mail …)."""
        # Lock the case row so concurrent appends number their events one after another.
        epoch = self._conn.execute(queries.CASE_EPOCH_FOR_UPDATE, {"id": case_id}).scalar()
        if epoch is None:
            raise NotFoundError(f"there is no case {case_id}")
        self._insert_events(case_id, [record], epoch=epoch)

    # ----------------------------------------------------------------------- timers

    def claim_due_timers(self, now: dt.datetime, limit: int) -> list[DueTimer]:
        """Due pending timers, earliest first, locked until this transaction ends.

        The claim changes nothing: fire each and ``finish_timer`` it in this same
        transaction. If the process dies first, the rollback releases the rows.
        """
        rows = self._conn.execute(queries.DUE_TIMERS, {"now": now, "limit": limit})
        return [
            DueTimer(
                id=row.id,
                case_id=row.case_id,
                timer=row.timer,
                kind=TimerKind(row.kind),
                index=row.idx,
                due_at=row.due_at,
                deadline_at=row.deadline_at,
                epoch=row.epoch,
            )
            for row in rows
        ]

    def finish_timer(
        self, timer_id: int, status: TimerStatus, at: dt.datetime, note: str = ""
    ) -> None:
        """Close a pending timer; ``ConflictError`` if it was closed already (no double firing)."""
        if status is TimerStatus.PENDING:
            raise ValueError("finish_timer needs a final status, not pending")
        result = self._conn.execute(
            queries.FINISH_TIMER,
            {"b_id": timer_id, "b_status": status.value, "b_at": at, "b_note": note},
        )
        if result.rowcount != 1:
            raise ConflictError(f"timer {timer_id} is not pending any more (fired elsewhere?)")

    def apply_batch(self, items: Sequence[BatchItem]) -> BatchOutcome:
        """Write a dispatch batch in bulk, each item all or nothing (see ``store/bulk.py``)."""
        from dk2020flow.store import bulk

        return bulk.apply_batch(self, self._conn, items)

    def next_due_at(self) -> dt.datetime | None:
        """The earliest instant at which a timer, a programme timer or a message is due
        (counting the lease expiry of messages being sent: a crashed daemon's mail)."""
        candidates = self._conn.execute(queries.NEXT_DUE).one()
        present = [when for when in candidates if when is not None]
        return min(present) if present else None

    def arm_programme_timers(self, definition_id: int, rows: Sequence[ProgrammeTimer]) -> None:
        """Insert programme timers; rows already armed (same key) are left as they are."""
        if not rows:
            return
        insert_fn = postgresql.insert if self._conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert_fn(t.programme_timers).on_conflict_do_nothing(
            index_elements=["definition_id", "cohort", "event", "kind", "idx"]
        )
        self._conn.execute(
            stmt,
            [
                {
                    "definition_id": definition_id,
                    "cohort": row.cohort,
                    "event": row.event,
                    "kind": row.kind,
                    "idx": row.index,
                    "due_at": row.due_at,
                    "status": PENDING,
                    "fired_at": None,
                    "note": "",
                }
                for row in rows
            ],
        )

    def claim_programme_timers(self, now: dt.datetime, limit: int) -> list[ProgrammeTimer]:
        rows = self._conn.execute(queries.DUE_PROGRAMME_TIMERS, {"now": now, "limit": limit})
        return [_programme_timer(row) for row in rows]

    def finish_programme_timer(
        self,
        timer_id: int,
        at: dt.datetime,
        note: str = "",
        status: TimerStatus = TimerStatus.FIRED,
    ) -> None:
        pt = t.programme_timers.c
        result = self._conn.execute(
            update(t.programme_timers)
            .where(pt.id == timer_id, pt.status == PENDING)
            .values(status=status.value, fired_at=at, note=note)
        )
        if result.rowcount != 1:
            raise ConflictError(f"programme timer {timer_id} is not pending any more")

    def discard_programme_timers(self, definition_id: int, at: dt.datetime, note: str) -> int:
        """Retire the pending programme timers of a definition version; how many."""
        pt = t.programme_timers.c
        result = self._conn.execute(
            update(t.programme_timers)
            .where(pt.definition_id == definition_id, pt.status == PENDING)
            .values(status=TimerStatus.DISCARDED.value, fired_at=at, note=note)
        )
        return int(result.rowcount)

    def programme_timers(self, definition_id: int | None = None) -> list[ProgrammeTimer]:
        """Pending programme timers (of one definition), earliest first."""
        pt = t.programme_timers.c
        query = select(t.programme_timers).where(pt.status == PENDING)
        if definition_id is not None:
            query = query.where(pt.definition_id == definition_id)
        return [_programme_timer(row) for row in self._conn.execute(query.order_by(pt.due_at))]

    # ----------------------------------------------------------------------- outbox

    def queue_mail(self, mails: Sequence[NewMail]) -> list[int]:
        """Store rendered messages; each gets its stable Message-ID. Returns their ids.

        One ``INSERT`` for all of them, each row with its Message-ID already set
        (the ids are reserved first: see ``bulk.insert_outbox``).
        """
        from dk2020flow.store import bulk

        if not mails:
            return []
        return bulk.insert_outbox(self._conn, mails)

    def claim_outbox(
        self, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[OutboxMessage]:
        """Take up to ``limit`` messages to send: expired leases first (their daemon died),
        then pending ones that are due. Each becomes ``sending`` until ``lease_until``."""
        ids = list(
            self._conn.execute(queries.CLAIMABLE_OUTBOX, {"now": now, "limit": limit}).scalars()
        )
        if not ids:
            return []
        order = {row_id: n for n, row_id in enumerate(ids)}
        rows = self._conn.execute(queries.LEASE_OUTBOX, {"ids": ids, "lease_until": lease_until})
        return sorted((_message(row) for row in rows), key=lambda m: order[m.id])

    def mark_sent(self, message_id: int, at: dt.datetime, note: str = "") -> None:
        """Sent; ``note`` (e.g. the recipients the server refused) goes to ``last_error``."""
        values: dict[str, Any] = {"sent_at": at, "lease_until": None}
        if note:
            values["last_error"] = note
        self._set_outbox(message_id, status=OutboxStatus.SENT.value, **values)

    def mark_sent_many(self, sent: Sequence[tuple[int, str]], at: dt.datetime) -> None:
        """``mark_sent`` for a batch: the messages without a note in one ``UPDATE … IN``,
        those with one (their refusals go to ``last_error``) in one ``executemany``.
        ``NotFoundError`` (and nothing marked, with the transaction) if one is missing."""
        plain = [message_id for message_id, note in sent if not note]
        noted = [(message_id, note) for message_id, note in sent if note]
        marked = 0
        if plain:
            marked += self._conn.execute(queries.MARK_SENT, {"ids": plain, "at": at}).rowcount
        if noted:
            marked += self._conn.execute(
                queries.MARK_SENT_NOTED,
                [{"b_id": message_id, "b_note": note, "at": at} for message_id, note in noted],
            ).rowcount
        if marked != len(plain) + len(noted):
            ids = [message_id for message_id, _ in sent]
            present = set(self._conn.execute(queries.OUTBOX_IDS_IN, {"ids": ids}).scalars())
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
        return [_message(row) for row in rows]

    def outbox_message(self, message_id: int) -> OutboxMessage | None:
        row = self._conn.execute(select(t.outbox).where(t.outbox.c.id == message_id)).first()
        return None if row is None else _message(row)

    def outbox_counts(self) -> dict[OutboxStatus, int]:
        """How many messages are in each status."""
        o = t.outbox.c
        rows = self._conn.execute(select(o.status, func.count()).group_by(o.status))
        counts = dict.fromkeys(OutboxStatus, 0)
        for status, count in rows:
            counts[OutboxStatus(status)] = int(count)
        return counts

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

    # ---------------------------------------------------------------------- daemons

    def heartbeat(self, info: DaemonInfo) -> None:
        """Insert or update the daemon's row."""
        values = {
            "id": info.id,
            "host": info.host,
            "pid": info.pid,
            "started_at": info.started_at,
            "last_tick_at": info.last_tick_at,
            "last_seen_at": info.last_seen_at,
            "stopped_at": info.stopped_at,
            "stats": dict(info.stats),
        }
        insert_fn = postgresql.insert if self._conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert_fn(t.daemons).values(**values)
        self._conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["id"], set_={k: v for k, v in values.items() if k != "id"}
            )
        )

    def daemons(self) -> list[DaemonInfo]:
        """Every daemon that ever beat, most recently seen first."""
        d = t.daemons.c
        rows = self._conn.execute(select(t.daemons).order_by(d.last_seen_at.desc(), d.id))
        return [
            DaemonInfo(
                id=row.id,
                host=row.host,
                pid=row.pid,
                started_at=row.started_at,
                last_tick_at=row.last_tick_at,
                last_seen_at=row.last_seen_at,
                stopped_at=row.stopped_at,
                stats=dict(row.stats),
            )
            for row in rows
        ]


# --------------------------------------------------------------- rows <-> records


def _case_values(case: CaseSnapshot) -> dict[str, Any]:
    """The columns a change may write (not the identity: workflow, municipality, opened_at)."""
    return {
        "definition_id": case.definition_id,
        "state": case.state,
        "epoch": case.epoch,
        "cohort": case.cohort,
        "data": dict(case.data),
        "checklists": {
            name: {
                item: {"status": entry.status, "comment": entry.comment}
                for item, entry in items.items()
            }
            for name, items in case.checklists.items()
        },
        "entered_at": case.entered_at,
        "closed": case.closed,
    }


def _case(row: Row[Any]) -> CaseSnapshot:
    return CaseSnapshot(
        id=row.id,
        workflow=row.workflow,
        definition_id=row.definition_id,
        municipality_code=row.municipality_code,
        municipality_name=row.municipality_name,
        region=row.region,
        state=row.state,
        epoch=row.epoch,
        cohort=row.cohort,
        data=dict(row.data),
        checklists={
            name: {
                item: ChecklistItem(status=entry["status"], comment=entry.get("comment", ""))
                for item, entry in items.items()
            }
            for name, items in row.checklists.items()
        },
        entered_at=row.entered_at,
        opened_at=row.opened_at,
        version=row.version,
        closed=bool(row.closed),
    )


def _definition(row: Row[Any]) -> StoredDefinition:
    return StoredDefinition(
        id=row.id,
        name=row.name,
        version_label=row.version_label,
        content_hash=row.content_hash,
        source_text=row.source_text,
        templates=dict(row.templates),
        source_path=row.source_path,
        loaded_at=row.loaded_at,
    )


def _municipality(row: Row[Any]) -> Municipality:
    return Municipality(code=row.code, name=row.name, region=row.region, group=row.dk2020_group)


def _contact(row: Row[Any]) -> Contact:
    return Contact(
        municipality_code=row.municipality_code,
        role=row.role,
        name=row.name,
        email=row.email,
        language=row.language,
    )


def event_values(case_id: int, rec: EventRecord, epoch: int) -> dict[str, Any]:
    """An event row's insert parameters, without ``seq`` and ``hash``."""
    return {
        "case_id": case_id,
        "at": rec.at,
        "kind": rec.kind.value,
        "actor": rec.actor,
        "role": rec.role,
        "trigger": rec.trigger,
        "from_state": rec.from_state,
        "to_state": rec.to_state,
        "comment": rec.comment,
        "data": dict(rec.data),
        "epoch": epoch,
        "transition": rec.transition,
    }


def _event(row: Row[Any]) -> StoredEvent:
    return StoredEvent(
        id=row.id,
        case_id=row.case_id,
        seq=row.seq,
        record=EventRecord(
            kind=EventKind(row.kind),
            at=row.at,
            actor=row.actor,
            role=row.role,
            trigger=row.trigger,
            from_state=row.from_state,
            to_state=row.to_state,
            comment=row.comment,
            data=dict(row.data),
            transition=row.transition,
        ),
        epoch=row.epoch,
        hash=row.hash,
    )


def _timer(row: Row[Any]) -> StoredTimer:
    return StoredTimer(
        id=row.id,
        case_id=row.case_id,
        timer=row.timer,
        kind=row.kind,
        index=row.idx,
        due_at=row.due_at,
        deadline_at=row.deadline_at,
        epoch=row.epoch,
        status=TimerStatus(row.status),
        fired_at=row.fired_at,
        note=row.note,
    )


def _programme_timer(row: Row[Any]) -> ProgrammeTimer:
    return ProgrammeTimer(
        id=row.id,
        definition_id=row.definition_id,
        cohort=row.cohort,
        event=row.event,
        kind=row.kind,
        index=row.idx,
        due_at=row.due_at,
    )


def _addresses(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(name), str(address)) for name, address in value)


def _message(row: Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        case_id=row.case_id,
        template=row.template,
        language=row.language,
        to=_addresses(row.to_addresses),
        cc=_addresses(row.cc_addresses),
        subject=row.subject,
        text=row.text,
        html=row.html,
        ics=row.ics,
        status=OutboxStatus(row.status),
        attempts=row.attempts,
        not_before=row.not_before,
        next_attempt_at=row.next_attempt_at,
        lease_until=row.lease_until,
        last_error=row.last_error,
        created_at=row.created_at,
        sent_at=row.sent_at,
        message_id=row.message_id,
        reason=row.reason,
        intent=row.intent,
    )


def _with_case(mail: NewMail, case_id: int) -> NewMail:
    return mail if mail.case_id == case_id else replace(mail, case_id=case_id)
