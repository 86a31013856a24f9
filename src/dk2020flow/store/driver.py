"""``DriverStatement``: a Core statement run through the driver, compiled once per dialect.

The store's writes of one change (``SqlTx.apply``) and of a dispatch batch
(``store/bulk.py``) use it for their INSERTs and the case UPDATE.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection


class DriverStatement:
    """A statement run with the driver's ``executemany``, compiled once per dialect.

    ``Connection.execute(stmt, rows)`` sends every parameter set through
    SQLAlchemy's generic per-row machinery, which costs more than the database
    does for a batch's rows (or the one row of a change). Here the SQL text and
    each parameter's bind processor — the very ones SQLAlchemy applies
    (``UtcDateTime``, JSON …) — are taken once per dialect, and the rows go to
    ``exec_driver_sql`` as the driver wants them (driver errors still come wrapped
    as SQLAlchemy's, for ``db.translated_errors``; a bind processor's own error,
    such as ``NaiveDatetimeError``, comes as it is). Every row must have exactly
    ``keys``; literal values in the statement (such as ``status = 'pending'``)
    are filled in from the statement itself; a key may appear more than once.
    """

    def __init__(self, stmt: Any, keys: Sequence[str]) -> None:
        self.stmt = stmt
        self.keys = tuple(keys)
        self._plans: dict[tuple[str, str], _Plan] = {}

    def execute(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        """Run the statement once per row; return the summed row count."""
        if not rows:
            return 0
        dialect = conn.dialect
        plan = self._plans.get((dialect.name, dialect.driver))
        if plan is None:
            plan = self._plans[(dialect.name, dialect.driver)] = _Plan(self, dialect)
        return plan.execute(conn, rows)


class _Plan:
    def __init__(self, statement: DriverStatement, dialect: Any) -> None:
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
                        done = memo.get(value, memo)
                        if done is memo:
                            done = memo[value] = processor(value)
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
