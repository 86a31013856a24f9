"""``SqlStore``: the ``Store`` port on SQLite and PostgreSQL.

A ``SqlTx`` wraps one SQLAlchemy ``Connection`` inside one database
transaction. It is the seven concerns of ``port.Tx`` put together, each a mixin
beside its SQL in ``store/sql/`` (``SqlCasesTx`` …); every method converts
between rows and the port's frozen records (``store/rows.py``), so no row ever
leaves this package. Writes of one ``Decision`` — case row, events, timers armed
and discarded, mail — happen in the caller's transaction (DESIGN.md invariant 1).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from dk2020flow.store import bulk
from dk2020flow.store.db import (
    READ_ONLY_OPTION,
    make_engine,
    normalize_url,
    require_current_schema,
    translated_errors,
)
from dk2020flow.store.port import BatchItem, BatchOutcome
from dk2020flow.store.rows import ENV_MAIL_DOMAIN, message_id_for
from dk2020flow.store.sql.accounts import SqlAccountsTx
from dk2020flow.store.sql.api import SqlApiTx
from dk2020flow.store.sql.api_reads import SqlApiReadsTx
from dk2020flow.store.sql.cases import SqlCasesTx
from dk2020flow.store.sql.console import SqlConsoleTx
from dk2020flow.store.sql.daemons import SqlDaemonsTx
from dk2020flow.store.sql.definitions import SqlDefinitionsTx
from dk2020flow.store.sql.documents import SqlDocumentsTx
from dk2020flow.store.sql.links import SqlLinksTx
from dk2020flow.store.sql.outbox import SqlOutboxTx
from dk2020flow.store.sql.overview import SqlOverviewTx
from dk2020flow.store.sql.participants import SqlParticipantsTx
from dk2020flow.store.sql.privacy import SqlPrivacyTx
from dk2020flow.store.sql.reports import SqlReportsTx
from dk2020flow.store.sql.timers import SqlTimersTx
from dk2020flow.store.sql.webhooks import SqlWebhooksTx

__all__ = ["ENV_MAIL_DOMAIN", "SqlStore", "SqlTx", "message_id_for"]


class SqlStore:
    """The ``Store`` port on a database URL (SQLite file or PostgreSQL).

    ``check_schema`` (default on): the first transaction checks once that the
    database is at this release's schema and raises ``SchemaBehindError``
    (run ``dk2020flow db upgrade``) when it is not.
    """

    def __init__(
        self,
        url: str,
        *,
        engine: Engine | None = None,
        check_schema: bool = True,
        pool_size: int | None = None,
    ):
        self.url = normalize_url(url)
        self.engine = engine if engine is not None else make_engine(self.url, pool_size=pool_size)
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


class SqlTx(
    SqlDefinitionsTx,
    SqlParticipantsTx,
    SqlCasesTx,
    SqlTimersTx,
    SqlOutboxTx,
    SqlDaemonsTx,
    SqlReportsTx,
    SqlAccountsTx,
    SqlConsoleTx,
    SqlOverviewTx,
    SqlDocumentsTx,
    SqlApiReadsTx,
    SqlApiTx,
    SqlWebhooksTx,
    SqlLinksTx,
    SqlPrivacyTx,
):
    """One transaction; implements ``port.Tx`` by composing one mixin per concern
    (``store/sql/``), each beside its statements."""

    @property
    def connection(self) -> Connection:
        """The underlying connection (for the store's own tests and tools)."""
        return self._conn

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested unit: an exception inside undoes it alone, then propagates."""
        with self._conn.begin_nested():
            yield

    def apply_batch(self, items: Sequence[BatchItem]) -> BatchOutcome:
        """Write a dispatch batch in bulk, each item all or nothing (see ``store/bulk.py``).

        ``port.TimersTx`` names it; it is defined here, on the whole transaction, because
        its one-by-one path goes through ``finish_timer`` and ``apply`` of two concerns.
        """
        return bulk.apply_batch(self, self._conn, items)
