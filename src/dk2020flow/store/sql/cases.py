"""``CasesTx``: cases and their event logs.

A change to a case (``insert_case``, ``apply``) writes, in the caller's transaction,
the case row (``apply`` only if its version is the one read: the optimistic lock),
its events (numbered by the database and hash-chained, ``store/chain.py``), the
timers it arms and discards (``sql/timers.py``'s statements) and its mail
(``sql/outbox.insert_outbox``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, Select, bindparam, func, insert, select, update

from dk2020flow.engine.records import CaseSnapshot, Decision, EventRecord, TimerStatus
from dk2020flow.errors import ConflictError, NotFoundError
from dk2020flow.store import tables as t
from dk2020flow.store.chain import GENESIS, chain
from dk2020flow.store.driver import BulkStatement
from dk2020flow.store.port import CaseFilter, NewMail, StoredEvent
from dk2020flow.store.rows import (
    case_values,
    event_values,
    snapshot_columns,
    to_case,
    to_event,
    with_case,
)
from dk2020flow.store.sql.base import SqlBase
from dk2020flow.store.sql.outbox import insert_outbox
from dk2020flow.store.sql.participants import ORGANISATION_BY_CODE, find_organisation
from dk2020flow.store.sql.timers import (
    DISCARD_LEFT_STATE,
    DISCARD_REPLACED,
    INSERT_TIMER_ROWS,
    refresh_deadline_columns,
    timer_values,
)
from dk2020flow.store.sql.webhooks import Told, queue_webhooks

PENDING = TimerStatus.PENDING.value

_c = t.cases.c


def case_rows() -> Select[Any]:
    """Cases joined with their organisation's name, region, country and subdivision
    (``rows.to_case``)."""
    return select(t.cases, *snapshot_columns()).join(
        t.organisations, t.organisations.c.code == t.cases.c.organisation_code
    )


def filter_cases(query: Select[Any], flt: CaseFilter) -> Select[Any]:
    c = t.cases.c
    if flt.workflow is not None:
        query = query.where(c.workflow == flt.workflow)
    if flt.state is not None:
        query = query.where(c.state == flt.state)
    if flt.cohort is not None:
        query = query.where(c.cohort == flt.cohort)
    if flt.region is not None:
        query = query.where(t.organisations.c.region == flt.region)
    if flt.open_only:
        query = query.where(c.closed.is_(False))
    if flt.overdue_at is not None:
        # The cases whose earliest deadline they can be late on passed (the kept
        # ``deadline_at``, an index range): every late case is among them; the service
        # keeps those late on a deadline (engine.timers.is_late on their arms).
        query = query.where(c.closed.is_(False), c.deadline_at < flt.overdue_at)
    return query.order_by(c.id)


CASES_BY_ID = case_rows().where(t.cases.c.id.in_(bindparam("ids", expanding=True)))
"""Cases (as ``case_rows``) by a list of ids: one query for a dispatch batch."""

CASE_BY_ID = case_rows().where(_c.id == bindparam("id"))
"""A case by id (as ``case_rows``)."""

CASE_BY_ID_IN = case_rows().where(_c.id == bindparam("id"), _c.workflow == bindparam("workflow"))
"""A case by id within a workflow (as ``case_rows``)."""

CASE_OF_ORGANISATION = select(_c.id).where(
    _c.workflow == bindparam("workflow"), _c.organisation_code == bindparam("code")
)
"""The id of an organisation's case in a workflow (none or one: they are unique together)."""

CASE_EXISTS = select(_c.id).where(_c.id == bindparam("id"))

CASE_EPOCH_FOR_UPDATE = select(_c.epoch).where(_c.id == bindparam("id")).with_for_update()
"""A case's epoch, its row locked: events appended to it are numbered one after another."""

CASE_COLUMNS = (
    "definition_id",
    "state",
    "epoch",
    "cohort",
    "data",
    "checklists",
    "entered_at",
    "closed",
)
"""What a change writes of a case row (``rows.case_values``), besides its version."""

UPDATE_CASE_IF_VERSION = update(t.cases).where(
    _c.id == bindparam("b_id"), _c.version == bindparam("b_expected")
)
"""Write a case's new values (the SET columns are the other parameters' keys) if its
version is still ``b_expected``."""

UPDATE_CASE = BulkStatement(
    UPDATE_CASE_IF_VERSION, ("b_id", "b_expected", "version", *CASE_COLUMNS)
)
"""``UPDATE_CASE_IF_VERSION`` for rows of ``b_id``, ``b_expected``, ``version`` and
``CASE_COLUMNS``; returns how many cases it wrote (1 each unless the version moved on)."""

EVENT_COLUMNS = (
    "case_id",
    "seq",
    "at",
    "kind",
    "actor",
    "role",
    "trigger",
    "from_state",
    "to_state",
    "comment",
    "data",
    "epoch",
    "transition",
    "hash",
)

INSERT_EVENT_ROWS = BulkStatement(insert(t.events), EVENT_COLUMNS)
"""Events with their ``seq`` numbered already (a dispatch batch numbers its own)."""

_prior = t.events.alias("prior")

APPEND_EVENT_ROWS = BulkStatement(
    insert(t.events).values(
        seq=select(func.coalesce(func.max(_prior.c.seq), 0) + 1)
        .where(_prior.c.case_id == bindparam("b_case", type_=Integer))
        .scalar_subquery()
    ),
    (*(key for key in EVENT_COLUMNS if key != "seq"), "b_case"),
)
"""Events numbered by the database: each row's ``seq`` is one above the case's last
(``b_case`` is its ``case_id`` again), read through the ``(case_id, seq)`` index as the
row is inserted. The rows go one statement each (``executemany``), so each sees the
one before it, on both backends; no separate ``max(seq)`` query."""

LAST_EVENT_HASH = (
    select(t.events.c.hash)
    .where(t.events.c.case_id == bindparam("b_case"))
    .order_by(t.events.c.seq.desc())
    .limit(1)
)
"""The hash of a case's last event (the chain goes on from it), read through the
``(case_id, seq)`` index; none for a case without events."""


class SqlCasesTx(SqlBase):
    """``port.CasesTx`` over the transaction's connection."""

    def insert_case(self, decision: Decision, mails: Sequence[NewMail]) -> int:
        """Store a new case with its first events, timers and mail; return its id.

        The stored version is 1, whatever ``decision.case.version`` says.
        """
        case = decision.case
        c = t.cases.c
        clash = self._conn.execute(
            CASE_OF_ORGANISATION,
            {"workflow": case.workflow, "code": case.organisation_code},
        ).scalar()
        if clash is not None:
            raise ConflictError(
                f"organisation {case.organisation_code} ({case.organisation_name}) already has a "
                f"case in workflow {case.workflow}: case {clash}"
            )
        known = self._conn.execute(ORGANISATION_BY_CODE, {"code": case.organisation_code}).first()
        if known is None:
            raise NotFoundError(f"there is no organisation with code {case.organisation_code}")
        case_id = self._conn.execute(
            insert(t.cases)
            .values(
                workflow=case.workflow,
                organisation_code=case.organisation_code,
                opened_at=case.opened_at,
                version=1,
                **case_values(case),
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
        written = UPDATE_CASE.execute(
            self._conn,
            [
                {
                    "b_id": case.id,
                    "b_expected": expected_version,
                    "version": expected_version + 1,
                    **case_values(case),
                }
            ],
        )
        if written != 1:
            if self._conn.execute(CASE_EXISTS, {"id": case.id}).first() is None:
                raise NotFoundError(f"there is no case {case.id}")
            raise ConflictError(
                f"case {case.id} was changed by someone else since it was read; "
                "run the command again"
            )
        self._write_decision(case.id, decision, mails)

    def _write_decision(self, case_id: int, decision: Decision, mails: Sequence[NewMail]) -> None:
        case = decision.case
        if decision.cancel_pending:
            self._conn.execute(DISCARD_LEFT_STATE, {"b_case": case_id, "b_epoch": case.epoch})
        if decision.cancel_timers:
            self._conn.execute(
                DISCARD_REPLACED,
                {
                    "b_case": case_id,
                    "b_epoch": case.epoch,
                    "b_timers": list(decision.cancel_timers),
                },
            )
        self._insert_events(case_id, decision.events, epoch=case.epoch)
        # Its webhook notices, in this transaction (one cached read when nobody subscribes).
        queue_webhooks(self._conn, [Told(case_id, case, decision.events)])
        if decision.arm:
            INSERT_TIMER_ROWS.execute(
                self._conn, [timer_values(case_id, arm) for arm in decision.arm]
            )
        if mails:
            insert_outbox(self._conn, [with_case(mail, case_id) for mail in mails])
        # The case's deadline columns follow its timers, state and epoch (sql/timers.py).
        refresh_deadline_columns(self._conn, [case_id])

    def _insert_events(self, case_id: int, records: Sequence[EventRecord], *, epoch: int) -> None:
        """Append ``records`` to the case's log, numbered on from its last event (by the
        database, in the INSERT itself: ``APPEND_EVENT_ROWS``), each chained to
        the one before it by its hash (``store/chain.py``; the last hash read once). The
        caller holds the case row's lock (its UPDATE, or ``append_event``'s)."""
        if not records:
            return
        prev = self._conn.execute(LAST_EVENT_HASH, {"b_case": case_id}).scalar()
        rows = [{**event_values(case_id, rec, epoch), "b_case": case_id} for rec in records]
        chain(rows, prev or GENESIS)
        APPEND_EVENT_ROWS.execute(self._conn, rows)

    def load_cases(self, case_ids: Sequence[int]) -> dict[int, CaseSnapshot]:
        """The cases with these ids, by id, in one query (an unknown id is left out)."""
        if not case_ids:
            return {}
        rows = self._conn.execute(CASES_BY_ID, {"ids": list(case_ids)})
        return {int(row.id): to_case(row) for row in rows}

    def load_case(self, case_id: int) -> CaseSnapshot:
        row = self._conn.execute(CASE_BY_ID, {"id": case_id}).first()
        if row is None:
            raise NotFoundError(f"there is no case {case_id}")
        return to_case(row)

    def case_ids(self, flt: CaseFilter) -> list[int]:
        query = filter_cases(
            select(t.cases.c.id).join(
                t.organisations, t.organisations.c.code == t.cases.c.organisation_code
            ),
            flt,
        )
        return [int(row[0]) for row in self._conn.execute(query)]

    def cases(self, flt: CaseFilter) -> list[CaseSnapshot]:
        rows = self._conn.execute(filter_cases(case_rows(), flt))
        return [to_case(row) for row in rows]

    def find_cases_by_ref(self, ref: str, workflow: str | None) -> list[CaseSnapshot]:
        """Cases that ``ref`` names: ``#12`` (the case number 12), else an organisation's
        code or name (case-insensitive), never a case number (a code such as
        København's 101 must not find case 101); within ``workflow`` if given."""
        ref = ref.strip()
        c = t.cases.c
        if ref.startswith("#") and ref[1:].isdigit():
            # The common case (the CLI's and the simulation's ``#12``): a prepared statement.
            if workflow is None:
                rows = self._conn.execute(CASE_BY_ID, {"id": int(ref[1:])})
            else:
                rows = self._conn.execute(CASE_BY_ID_IN, {"id": int(ref[1:]), "workflow": workflow})
            return [to_case(row) for row in rows]
        organisation = find_organisation(self._conn, ref)
        if organisation is None:
            return []
        query = case_rows().where(c.organisation_code == organisation.code)
        if workflow is not None:
            query = query.where(c.workflow == workflow)
        return [to_case(row) for row in self._conn.execute(query.order_by(c.id))]

    def history(self, case_id: int) -> list[StoredEvent]:
        e = t.events.c
        rows = list(
            self._conn.execute(select(t.events).where(e.case_id == case_id).order_by(e.seq))
        )
        if not rows:
            self.load_case(case_id)  # NotFoundError for an unknown case
        return [to_event(row) for row in rows]

    def append_event(self, case_id: int, record: EventRecord) -> None:
        """Log an event that changes nothing else (a skipped firing, parked mail …)."""
        # Lock the case row so concurrent appends number their events one after another.
        epoch = self._conn.execute(CASE_EPOCH_FOR_UPDATE, {"id": case_id}).scalar()
        if epoch is None:
            raise NotFoundError(f"there is no case {case_id}")
        self._insert_events(case_id, [record], epoch=epoch)
