"""Column types that behave the same on SQLite and PostgreSQL.

``DateTime(timezone=True)`` on SQLite silently drops the offset and hands back
naive datetimes (LIBRARIES.md). ``UtcDateTime`` refuses naive values, stores
UTC and always returns aware UTC datetimes, on both backends. On SQLite the
stored text is SQLAlchemy's fixed-width ``YYYY-MM-DD HH:MM:SS.ffffff`` in
UTC, so comparisons and ``ORDER BY`` on it are chronological.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from dk2020flow.store.errors import NaiveDatetimeError

UTC = dt.UTC
_BIND_MEMO_SIZE = 256


def as_utc(value: dt.datetime) -> dt.datetime:
    """Return ``value`` in UTC; refuse a naive datetime with a clear error."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise NaiveDatetimeError(
            f"refusing to store the naive datetime {value.isoformat()}: "
            "stored times must be timezone-aware (pass tzinfo, e.g. datetime.UTC)"
        )
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware instant, stored in UTC, returned as aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        utc = as_utc(value)
        if dialect.name == "postgresql":
            return utc
        return utc.replace(tzinfo=None)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """The public ``TypeDecorator`` processor, remembering its last few hundred results.

        A dispatch batch binds the same instant (its ``now``) into most of its rows;
        converting it to UTC and then to the dialect's form costs more per row than the
        rest of the row. The key holds ``fold``: equal datetimes of one zone may differ
        in it (the repeated hour of a DST change) and be different instants.
        """
        process = super().bind_processor(dialect)
        if process is None:  # pragma: no cover - TypeDecorator always processes
            return None
        memo: dict[tuple[dt.datetime, int], Any] = {}

        def remembered(value: Any) -> Any:
            if type(value) is not dt.datetime:
                return process(value)
            key = (value, value.fold)
            done = memo.get(key, memo)
            if done is memo:
                if len(memo) >= _BIND_MEMO_SIZE:
                    memo.clear()
                done = memo[key] = process(value)
            return done

        return remembered

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):  # pragma: no cover - driver contract
            raise TypeError(f"the database returned {value!r} for a datetime column")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JsonType: TypeEngine[Any] = JSON().with_variant(postgresql.JSONB(), "postgresql")
"""JSON on SQLite (text), JSONB on PostgreSQL."""
