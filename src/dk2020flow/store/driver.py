"""``BulkStatement``: one Core statement run for many rows (the store's INSERTs and case UPDATE).

Two paths, the same rows written either way (a test runs both):

- the public one, ``Connection.execute(stmt, rows)``: one row is an ordinary execute,
  several an ``executemany`` (SQLite: the driver's; PostgreSQL: ``insertmanyvalues``
  pages for an INSERT, the driver's for an UPDATE);
- the fast one (the default), which sends the rows to the driver directly
  (``exec_driver_sql``), skipping SQLAlchemy's per-row parameter handling and its
  per-call cache-key lookup: the SQL text and each parameter's bind processor (the
  very ones SQLAlchemy applies: ``UtcDateTime``, JSON …) are taken once per dialect
  from the compiled statement. On the bench dispatch it spends about a third less
  CPU in these statements than the public path (some 8 % of a firing's CPU).

The fast path reads ``SQLCompiler.positiontup`` / ``.binds`` and
``BindParameter.effective_value``, which SQLAlchemy documents only among its "Core
Internals": a release may change them. If a statement cannot be planned (the
attributes moved, a construct the plan does not know), a warning is logged once per
statement and dialect and that statement takes the public path. Setting
``DK2020FLOW_STORE_FAST_PATH=0`` puts every statement on the public path.
docs/architecture.md ("The store's bulk statements") has what it costs to keep.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

FAST_PATH_ENV = "DK2020FLOW_STORE_FAST_PATH"
FAST_PATH = os.environ.get(FAST_PATH_ENV, "").strip() != "0"
"""Whether ``BulkStatement`` tries the driver fast path (read at import; tests set it)."""


class BulkStatement:
    """A Core statement run once per row; every row has exactly ``keys``.

    ``execute`` returns the summed row count. Errors come as SQLAlchemy raises them
    on either path (a driver error wrapped as ``DBAPIError``; a bind processor's own
    error, such as ``NaiveDatetimeError``, as the ``orig`` of a ``StatementError``
    on the public path and as it is on the fast path: ``db.translated_errors``
    unwraps both alike).
    """

    def __init__(self, stmt: Any, keys: Sequence[str]) -> None:
        self.stmt = stmt
        self.keys = tuple(keys)
        self._plans: dict[tuple[str, str], _Plan | None] = {}

    def execute(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        """Run the statement once per row; return the summed row count."""
        if not rows:
            return 0
        if FAST_PATH:
            plan = self._plan(conn)
            if plan is not None:
                return plan.execute(conn, rows)
        return execute_public(conn, self.stmt, rows)

    def _plan(self, conn: Connection) -> _Plan | None:
        dialect = conn.dialect
        key = (dialect.name, dialect.driver)
        if key in self._plans:
            return self._plans[key]
        plan: _Plan | None
        try:
            plan = _Plan(self, dialect)
        except Exception as error:  # any change of the internals it reads
            log.warning(
                "store fast path unavailable for %s on %s (%s: %s); using SQLAlchemy's "
                "public executemany for it",
                _describe(self.stmt),
                dialect.name,
                type(error).__name__,
                error,
                extra={"action": "store_fast_path_off"},
            )
            plan = None
        self._plans[key] = plan
        return plan


def execute_public(conn: Connection, stmt: Any, rows: Sequence[dict[str, Any]]) -> int:
    """``Connection.execute``: one row as an execute, several as an ``executemany``.

    On PostgreSQL an INSERT of several rows goes as ``insertmanyvalues`` (multi-row
    ``VALUES`` pages), which reports no row count (-1): such an INSERT (none of the
    store's has ``ON CONFLICT``) writes every row or raises, so the count is the rows'.
    """
    params: dict[str, Any] | list[dict[str, Any]] = rows[0] if len(rows) == 1 else list(rows)
    count = int(conn.execute(stmt, params).rowcount)
    if count < 0 and stmt.is_insert:
        return len(rows)
    return count


def _describe(stmt: Any) -> str:
    table = getattr(stmt, "table", None)
    return f"{type(stmt).__name__.upper()} {getattr(table, 'name', '?')}"


class _Plan:
    """The fast path of one statement on one dialect: its SQL and how to bind each row."""

    def __init__(self, statement: BulkStatement, dialect: Any) -> None:
        compiled = statement.stmt.compile(dialect=dialect, column_keys=list(statement.keys))
        self.sql: str = compiled.string
        self.positional: bool = bool(compiled.positional)
        names: list[str] = (
            list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        )
        keys = set(statement.keys)
        missing = keys - set(names)
        if missing:
            raise ValueError(f"parameters not in the statement: {sorted(missing)}")
        # (name, key in the row or None for a literal, the literal, the processor)
        self.binds: list[tuple[str, str | None, Any, Any]] = []
        for name in names:
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if name in keys:
                self.binds.append((name, name, None, processor))
            else:
                value = bind.effective_value
                self.binds.append((name, None, processor(value) if processor else value, None))

    def execute(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        columns: list[list[Any]] = []
        for _, key, literal, processor in self.binds:
            if key is None:
                columns.append([literal] * len(rows))
            elif processor is None:
                columns.append([row[key] for row in rows])
            else:
                memo: dict[Any, Any] = {}
                values: list[Any] = []
                for row in rows:
                    value = row[key]
                    if type(value) is dt.datetime:  # most are the batch's ``now``: once each
                        memo_key = (value, value.fold)
                        done = memo.get(memo_key, memo)
                        if done is memo:
                            done = memo[memo_key] = processor(value)
                        values.append(done)
                    else:
                        values.append(processor(value))
                columns.append(values)
        if self.positional:
            params: list[Any] = list(zip(*columns, strict=True))
        else:
            names = [name for name, _, _, _ in self.binds]
            params = [
                dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)
            ]
        return int(conn.exec_driver_sql(self.sql, params).rowcount)
