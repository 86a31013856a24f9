"""The service's queries that need neither the engine nor mail: the light read path.

``Reader`` answers what users read about cases, the outbox, the participants and
the scheduler straight from the store's read transaction; ``core.Service``
extends it with the commands and the queries that replay or compile a workflow.
A command that only reads (``case list``) opens a ``Reader`` with
``open_reader`` and starts without importing the engine, the templates or
alembic (bench/startup.py measures it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from types import TracebackType
from typing import Self

from dk2020flow.engine.records import CaseSnapshot
from dk2020flow.errors import Dk2020flowError, NotFoundError
from dk2020flow.service.health import SchedulerHealth, scheduler_health
from dk2020flow.store.db import require_current_schema, safe_url
from dk2020flow.store.port import (
    CaseFilter,
    DaemonInfo,
    Organisation,
    OutboxMessage,
    OutboxStatus,
    Store,
    StoredDefinition,
    StoredEvent,
    Tx,
)
from dk2020flow.store.repository import SqlStore


class AmbiguousError(Dk2020flowError):
    """A reference matches more than one case: name the workflow or use the case id."""


class Reader:
    """The read-only queries over one store. Usable as a context manager (closes it)."""

    def __init__(self, store: Store, *, on_close: Callable[[], None] | None = None) -> None:
        self.store = store
        self._on_close = on_close

    @property
    def database(self) -> str:
        """The store's URL with any password hidden, for messages and logs."""
        return safe_url(self.store.url)

    def close(self) -> None:
        """Release the store's connections (when the service opened the store)."""
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ cases

    def resolve(self, tx: Tx, ref: str, workflow: str | None = None) -> CaseSnapshot:
        """A case by number (``#12``), or by organisation code or name within a workflow."""
        found = tx.find_cases_by_ref(ref, workflow)
        if not found:
            where = f" in {workflow}" if workflow else ""
            hint, number = "", ref.strip()
            if number.isdigit() and tx.find_organisation(number) is None:
                hint = f" (no organisation has code {number}; case number {number} is #{number})"
            raise NotFoundError(
                f"no case {ref!r}{where}{hint}; `dk2020flow case list` shows the cases"
            )
        if len(found) > 1:
            names = ", ".join(sorted({c.workflow for c in found}))
            raise AmbiguousError(
                f"{ref!r} has a case in several workflows ({names}): add --workflow NAME"
            )
        return found[0]

    def cases(self, flt: CaseFilter) -> list[CaseSnapshot]:
        """Cases by ``flt``. Who is late (``flt.overdue_at``) needs the workflows:
        ``Service.cases`` answers that."""
        if flt.overdue_at is not None:
            raise ValueError("Reader.cases cannot judge who is late: use Service.cases")
        with self.store.read() as tx:
            return tx.cases(flt)

    def case(self, ref: str, workflow: str | None = None) -> CaseSnapshot:
        with self.store.read() as tx:
            return self.resolve(tx, ref, workflow)

    def history(
        self, ref: str, *, workflow: str | None = None
    ) -> tuple[CaseSnapshot, list[StoredEvent]]:
        with self.store.read() as tx:
            case = self.resolve(tx, ref, workflow)
            from dk2020flow.service.privacy import displayed  # forgotten people's names

            return displayed(tx, case, tx.history(case.id or 0))

    def definitions(self) -> list[StoredDefinition]:
        with self.store.read() as tx:
            return tx.definitions()

    def organisations(self, region: str | None = None) -> list[Organisation]:
        """The organisations the database knows (in ``region``)."""
        with self.store.read() as tx:
            return [m for m in tx.organisations() if region is None or m.region == region]

    # ------------------------------------------------------------------ outbox

    def outbox(
        self,
        status: OutboxStatus | None = None,
        case_ref: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
    ) -> list[OutboxMessage]:
        """Messages, newest first (of one case: ``case_ref`` within ``workflow``)."""
        with self.store.read() as tx:
            case_id = self.resolve(tx, case_ref, workflow).id if case_ref else None
            return tx.outbox(status=status, case_id=case_id, limit=limit)

    def outbox_message(self, message_id: int) -> OutboxMessage:
        """One message; ``NotFoundError`` when there is none with that id."""
        with self.store.read() as tx:
            msg = tx.outbox_message(message_id)
        if msg is None:
            raise NotFoundError(
                f"there is no message {message_id} in the outbox "
                "(`dk2020flow outbox list` shows them)"
            )
        return msg

    # ------------------------------------------------------------------ scheduler

    def daemons(self) -> list[DaemonInfo]:
        with self.store.read() as tx:
            return tx.daemons()

    def next_due_at(self) -> dt.datetime | None:
        with self.store.read() as tx:
            return tx.next_due_at()

    def scheduler_health(
        self,
        *,
        now: dt.datetime,
        wall_now: dt.datetime,
        stale_seconds: float,
        overdue_minutes: float,
        timezone: str = "UTC",
    ) -> SchedulerHealth:
        """Is the scheduler healthy as of ``now`` (``service/health.py``)? Its advice shows
        instants in ``timezone``."""
        with self.store.read() as tx:
            return scheduler_health(
                tx,
                now=now,
                wall_now=wall_now,
                stale_seconds=stale_seconds,
                overdue_minutes=overdue_minutes,
                timezone=timezone,
            )


def open_reader(database_url: str) -> Reader:
    """The read-only queries over the database at ``database_url`` (schema checked)."""
    store = SqlStore(database_url)
    try:
        require_current_schema(store.engine)
    except BaseException:
        store.close()
        raise
    return Reader(store, on_close=store.close)
