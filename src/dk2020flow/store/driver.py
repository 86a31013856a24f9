"""``BulkStatement``: one Core statement run for many rows (the store's INSERTs and case UPDATE).

It goes through SQLAlchemy's public ``Connection.execute(stmt, rows)``: one row is an
ordinary execute, several an ``executemany`` (SQLite: the driver's; PostgreSQL:
``insertmanyvalues`` pages for an INSERT, the driver's for an UPDATE). An earlier fast
path that bound the rows itself from SQLAlchemy's compiler internals saved about 8 % of a
firing's CPU; it was removed because it re-derived private code that any SQLAlchemy
release may change (docs/architecture.md, "The bulk statements").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection


class BulkStatement:
    """A Core statement run once per row; every row has exactly ``keys``.

    ``execute`` returns the summed row count. Errors come as SQLAlchemy raises them (a
    driver error wrapped as ``DBAPIError``; a bind processor's own error, such as
    ``NaiveDatetimeError``, as the ``orig`` of a ``StatementError``): ``db.translated_errors``
    unwraps both.
    """

    def __init__(self, stmt: Any, keys: Sequence[str]) -> None:
        self.stmt = stmt
        self.keys = tuple(keys)

    def execute(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
        """Run the statement once per row; return the summed row count."""
        if not rows:
            return 0
        return execute_rows(conn, self.stmt, rows)


def execute_rows(conn: Connection, stmt: Any, rows: Sequence[dict[str, Any]]) -> int:
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
