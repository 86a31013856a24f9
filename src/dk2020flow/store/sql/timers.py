"""``TimersTx``: case timers and programme timers."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    bindparam,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import TableClause

from dk2020flow.engine.records import DueTimer, TimerArm, TimerKind, TimerStatus
from dk2020flow.errors import ConflictError
from dk2020flow.store import tables as t
from dk2020flow.store.driver import BulkStatement
from dk2020flow.store.port import OutboxStatus, ProgrammeTimer, StoredTimer
from dk2020flow.store.rows import to_programme_timer, to_timer
from dk2020flow.store.sql.base import SqlBase

PENDING = TimerStatus.PENDING.value

_o = t.outbox.c
_c = t.cases.c
_tm = t.timers.c
_pt = t.programme_timers.c
_SENDING = OutboxStatus.SENDING.value
_is_sending = _o.status == _SENDING


def timer_values(case_id: int, arm: TimerArm) -> dict[str, Any]:
    """The row of a newly armed timer (bound to ``INSERT_TIMER_ROWS``)."""
    return {
        "case_id": case_id,
        "timer": arm.timer,
        "kind": arm.kind.value,
        "idx": arm.index,
        "due_at": arm.due_at,
        "deadline_at": arm.deadline_at,
        "epoch": arm.epoch,
        "status": arm.status.value,
        "fired_at": arm.fired_at,
        "note": arm.note,
        "claimed_by": None,
    }


def latest_deadline_arms(workflow: str | None = None) -> Select[Any]:
    """The deadline each case currently waits on, per (case, timer, epoch).

    One row per deadline timer and state entry: its most recently armed deadline row
    (a deadline moved with ``case extend`` is armed anew, so the moved deadline wins),
    whatever its status — pending, or fired with its escalation — unless it was
    discarded. Columns: ``case_id``, ``timer``, ``epoch``, ``deadline_at``, ``status``.
    Whether the case is late on it is :func:`dk2020flow.engine.timers.is_late`.
    """
    tm, c = t.timers.c, t.cases.c
    latest = select(func.max(tm.id)).where(tm.kind == TimerKind.DEADLINE.value)
    if workflow is not None:
        latest = latest.join(t.cases, c.id == tm.case_id).where(c.workflow == workflow)
    latest = latest.group_by(tm.case_id, tm.timer, tm.epoch)
    return select(tm.case_id, tm.timer, tm.epoch, tm.deadline_at, tm.status).where(
        tm.id.in_(latest), tm.status != TimerStatus.DISCARDED.value
    )


# ------------------------------------------------------------------ a case's deadline columns

_COUNTING_BY_HASH: dict[str, frozenset[tuple[str, str]] | None] = {}
_COUNTING_LOCK = threading.Lock()
_JUST_PASSED = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _counting_in(source_text: str, source_path: str) -> frozenset[tuple[str, str]] | None:
    """``(state, timer)`` of a definition's timers a case can be late on
    (``engine.timers.is_late``, asked for a deadline just passed: whether a state's timer
    counts does not depend on the instant), as ``service.console.deadline_timers``;
    None for a text that does not load (never stored by the service, which stores what
    loaded: a hand-made row in a test)."""
    # Imported here: parsing a definition needs the YAML loader and the engine, which the
    # light read commands (`case list` …) never load otherwise; this runs once per version.
    from dk2020flow.definition.diagnostics import DefinitionError
    from dk2020flow.definition.loader import load_workflow_text
    from dk2020flow.engine import timers as timing

    try:
        workflow = load_workflow_text(source_text, source_path).workflow
    except DefinitionError:
        return None
    before = _JUST_PASSED - dt.timedelta(seconds=1)
    return frozenset(
        (name, timer)
        for name, state in workflow.states.items()
        for timer in state.timers
        if timing.is_late(state, timer, before, _JUST_PASSED)
    )


def counting_timer_condition(
    conn: Connection,
    definition_id: ColumnElement[int],
    state: ColumnElement[str],
    timer: ColumnElement[str],
    definitions: TableClause = t.definitions,
) -> ColumnElement[bool]:
    """Whether ``timer`` in ``state`` of ``definition_id`` is one a case can be late on,
    over the definitions stored in ``conn``'s database (``definitions``: that table, as
    a migration spells it). Every timer of a definition that does not load counts.
    Stored versions never change, so each is parsed once per process (by content hash)."""
    d = definitions.c
    triples: list[tuple[int, str, str]] = []
    unread: list[int] = []
    for found_id, content_hash in conn.execute(select(d.id, d.content_hash)):
        if content_hash in _COUNTING_BY_HASH:
            counting = _COUNTING_BY_HASH[content_hash]
        else:
            row = conn.execute(select(d.source_text, d.source_path).where(d.id == found_id)).one()
            counting = _counting_in(row.source_text, row.source_path)
            with _COUNTING_LOCK:
                _COUNTING_BY_HASH[content_hash] = counting
        if counting is None:
            unread.append(int(found_id))
        else:
            triples.extend((int(found_id), name, spec) for name, spec in sorted(counting))
    conditions: list[ColumnElement[bool]] = []
    if triples:
        conditions.append(tuple_(definition_id, state, timer).in_(triples))
    if unread:
        conditions.append(definition_id.in_(unread))
    return or_(*conditions) if conditions else false()


def _first_counting_arm(conn: Connection) -> Select[Any]:
    """The case's earliest current deadline arm that it can be late on (correlated with
    the ``cases`` row being updated): of its deadline timers at its current epoch, the
    most recently armed ``deadline`` row unless discarded (``latest_deadline_arms``),
    of a timer it can be late on (``counting_timer_condition``); earliest
    ``deadline_at`` first, ties by timer name.

    Only the timers a case can be late on: a state may hold a plain timer that is due
    before its deadline (DK2020's ``guidance``: ``status_meeting`` before
    ``evidence_due``), and the earliest of all arms would hide that the deadline passed."""
    arm = t.timers.alias("arm")
    later = t.timers.alias("later")
    newer = exists(
        select(literal(1)).where(
            later.c.case_id == arm.c.case_id,
            later.c.epoch == arm.c.epoch,
            later.c.kind == TimerKind.DEADLINE.value,
            later.c.timer == arm.c.timer,
            later.c.id > arm.c.id,
        )
    )
    return (
        select(arm.c.deadline_at, arm.c.timer)
        .where(
            arm.c.case_id == _c.id,
            arm.c.epoch == _c.epoch,
            arm.c.kind == TimerKind.DEADLINE.value,
            arm.c.status != TimerStatus.DISCARDED.value,
            arm.c.deadline_at.is_not(None),
            counting_timer_condition(conn, _c.definition_id, _c.state, arm.c.timer),
            ~newer,
        )
        .order_by(arm.c.deadline_at, arm.c.timer)
        .limit(1)
    )


def refresh_deadline_columns(conn: Connection, case_ids: Iterable[int]) -> None:
    """Recompute ``cases.deadline_at`` and ``cases.deadline_timer`` of these cases from
    their timers (``_first_counting_arm``), in the caller's transaction: one UPDATE per
    slice of ids. Every write that arms or discards a case's timers, or moves the case
    (its state or epoch), calls it, so the columns are what the timers say."""
    ids = sorted(set(case_ids))
    if not ids:
        return
    first = _first_counting_arm(conn)
    statement = (
        update(t.cases)
        .where(_c.id.in_(bindparam("ids", expanding=True)))
        .values(
            deadline_at=first.with_only_columns(
                first.selected_columns.deadline_at
            ).scalar_subquery(),
            deadline_timer=first.with_only_columns(first.selected_columns.timer).scalar_subquery(),
        )
    )
    for start in range(0, len(ids), _IDS_PER_UPDATE):
        conn.execute(statement, {"ids": ids[start : start + _IDS_PER_UPDATE]})


_IDS_PER_UPDATE = 5000


DUE_TIMERS = (
    select(t.timers)
    .join(t.cases, _c.id == _tm.case_id)
    .where(_tm.status == PENDING, _tm.due_at <= bindparam("now", type_=_tm.due_at.type))
    .order_by(_tm.due_at, _tm.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True, of=[t.timers, t.cases])
)
"""Pending case timers due at ``now`` (at most ``limit``), earliest first, locked for the
caller, whole rows in the one statement.

The case row is locked with its timers: two daemons never work on one case at
once (on PostgreSQL the second skips it), so neither loses a version check or
deadlocks on the other's case."""

DUE_PROGRAMME_TIMERS = (
    select(t.programme_timers)
    .where(_pt.status == PENDING, _pt.due_at <= bindparam("now", type_=_pt.due_at.type))
    .order_by(_pt.due_at, _pt.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
"""Pending programme timers due at ``now`` (at most ``limit``), earliest first, locked."""

NEXT_DUE = select(
    select(func.min(_tm.due_at)).where(_tm.status == PENDING).scalar_subquery(),
    select(func.min(_pt.due_at)).where(_pt.status == PENDING).scalar_subquery(),
    select(func.min(_o.next_attempt_at))
    .where(_o.status == OutboxStatus.PENDING.value)
    .scalar_subquery(),
    select(func.min(_o.lease_until)).where(_is_sending).scalar_subquery(),
)
"""In one row: the earliest pending case timer, programme timer, pending message and
lease of a message being sent (each None when there is none); every one a
``min`` through a ``(status, …)`` index. The daemon sleeps until the earliest."""

FINISH_TIMER = (
    update(t.timers)
    .where(_tm.id == bindparam("b_id"), _tm.status == PENDING)
    .values(
        status=bindparam("b_status", type_=_tm.status.type),
        fired_at=bindparam("b_at", type_=_tm.fired_at.type),
        note=bindparam("b_note", type_=_tm.note.type),
    )
)
"""Close one pending timer; no row when it was closed already."""

TIMER_COLUMNS = (
    "case_id",
    "timer",
    "kind",
    "idx",
    "due_at",
    "deadline_at",
    "epoch",
    "status",
    "fired_at",
    "note",
    "claimed_by",
)

INSERT_TIMER_ROWS = BulkStatement(insert(t.timers), TIMER_COLUMNS)
"""New timer rows (``timer_values``)."""

DISCARD_LEFT_STATE = (
    update(t.timers)
    .where(
        _tm.case_id == bindparam("b_case"),
        _tm.status == PENDING,
        _tm.epoch < bindparam("b_epoch"),
    )
    .values(status=TimerStatus.DISCARDED.value, note="the case left the state")
)
"""Discard a case's pending timers of earlier epochs."""

DISCARD_REPLACED = (
    update(t.timers)
    .where(
        _tm.case_id == bindparam("b_case"),
        _tm.status == PENDING,
        _tm.epoch == bindparam("b_epoch"),
        _tm.timer.in_(bindparam("b_timers", expanding=True)),
    )
    .values(status=TimerStatus.DISCARDED.value, note="replaced (deadline moved)")
)
"""Discard a case's pending firings of the named timers at its epoch (deadline moved)."""


EPOCH_TIMERS = (
    select(t.timers)
    .join(t.cases, (_c.id == _tm.case_id) & (_c.epoch == _tm.epoch))
    .where(_tm.case_id.in_(bindparam("ids", expanding=True)))
    .order_by(_tm.case_id, _tm.due_at, _tm.id)
)
"""The timers of the cases ``ids`` armed at each one's current epoch, whatever their
status (``epoch_timers_of``)."""

_IDS_PER_SELECT = 5000


class SqlTimersTx(SqlBase):
    """``port.TimersTx`` over the transaction's connection."""

    def timers_of(self, case_id: int, *, pending_only: bool = True) -> list[StoredTimer]:
        tm = t.timers.c
        query = select(t.timers).where(tm.case_id == case_id)
        if pending_only:
            query = query.where(tm.status == PENDING)
        return [to_timer(row) for row in self._conn.execute(query.order_by(tm.due_at, tm.id))]

    def epoch_timers_of(self, case_ids: Sequence[int]) -> dict[int, list[StoredTimer]]:
        """The timers of these cases at each one's current epoch, by case id, each case's
        by due time (``EPOCH_TIMERS``: one query per slice of ids)."""
        ids = sorted(set(case_ids))
        found: dict[int, list[StoredTimer]] = {}
        for start in range(0, len(ids), _IDS_PER_SELECT):
            rows = self._conn.execute(EPOCH_TIMERS, {"ids": ids[start : start + _IDS_PER_SELECT]})
            for row in rows:
                found.setdefault(int(row.case_id), []).append(to_timer(row))
        return found

    def claim_due_timers(self, now: dt.datetime, limit: int) -> list[DueTimer]:
        """Due pending timers, earliest first, locked until this transaction ends.

        The claim changes nothing: fire each and ``finish_timer`` it in this same
        transaction. If the process dies first, the rollback releases the rows.
        """
        rows = self._conn.execute(DUE_TIMERS, {"now": now, "limit": limit})
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
            FINISH_TIMER,
            {"b_id": timer_id, "b_status": status.value, "b_at": at, "b_note": note},
        )
        if result.rowcount != 1:
            raise ConflictError(f"timer {timer_id} is not pending any more (fired elsewhere?)")
        if status is TimerStatus.DISCARDED:
            # A discarded arm no longer counts (a firing does: a fired deadline is still missed).
            case_id = self._conn.execute(select(_tm.case_id).where(_tm.id == timer_id)).scalar_one()
            refresh_deadline_columns(self._conn, [int(case_id)])

    def next_due_at(self) -> dt.datetime | None:
        """The earliest instant at which a timer, a programme timer or a message is due
        (counting the lease expiry of messages being sent: a crashed daemon's mail)."""
        candidates = self._conn.execute(NEXT_DUE).one()
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
        rows = self._conn.execute(DUE_PROGRAMME_TIMERS, {"now": now, "limit": limit})
        return [to_programme_timer(row) for row in rows]

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
        return [to_programme_timer(row) for row in self._conn.execute(query.order_by(pt.due_at))]
