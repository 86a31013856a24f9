"""A pytest plugin: a database connection left open fails the test that leaked it.

pyproject.toml makes every ``ResourceWarning`` an error, and so a
``PytestUnraisableExceptionWarning`` (a ``ResourceWarning`` raised in a ``__del__`` cannot
propagate: Python reports it as "unraisable" and pytest turns it into that warning). psycopg
warns by itself when a connection is garbage-collected while open; ``sqlite3`` does only from
Python 3.13 on. This plugin gives Python 3.11 and 3.12 the same check:

- ``sqlite3.connect`` (the function SQLAlchemy's pysqlite dialect calls too) makes connections
  of a subclass that warns ``ResourceWarning: unclosed database`` when collected while open,
  as Python 3.13 does (it only passes ``factory=``, a public parameter, when none is given);
- after each test's fixtures are torn down, when any connection is still open, a full garbage collection runs (a sqlite3 connection is in a reference cycle with its
  statement cache: only the collector frees it), so that an engine dropped without ``dispose()`` (or a store without
  ``close()``) warns within its own test, not in a later one that happens to collect it.

Loaded by tests/conftest.py; ``-p leakcheck`` loads it elsewhere (tests/unit/test_leakcheck.py).
"""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import sys
import traceback
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

_ROOT = Path(__file__).resolve().parents[1]
_NATIVE = sys.version_info >= (3, 13)
"""Python 3.13's sqlite3 warns about unclosed connections by itself."""

_open: weakref.WeakSet[Any] = weakref.WeakSet()
"""Every connection opened and not closed yet (psycopg's stay until collected: ``closed``)."""


class WarningConnection(sqlite3.Connection):
    """A ``sqlite3.Connection`` that warns when it is collected while open (Python 3.13)."""

    _closed = True
    """Until ``__init__`` opened the database (a file that cannot be opened leaves nothing open)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closed = False
        self._opened_at = _where()

    def close(self) -> None:
        self._closed = True
        _open.discard(self)
        super().close()

    def __del__(self) -> None:
        if not self._closed:
            warnings.warn(
                f"unclosed database in {self!r}, opened at {self._opened_at}",
                ResourceWarning,
                stacklevel=1,
            )


def _where() -> str:
    """The project's frames (src/ and tests/) that opened a connection, innermost first."""
    frames = [
        f"{Path(frame.filename).relative_to(_ROOT)}:{frame.lineno} ({frame.name})"
        for frame in traceback.extract_stack()[:-2]
        if Path(frame.filename).is_relative_to(_ROOT) and "leakcheck" not in frame.filename
    ]
    return " <- ".join(reversed(frames[-8:])) or "(outside the project)"


_saved: dict[str, Callable[..., sqlite3.Connection]] = {}
"""The real ``sqlite3.connect`` while the plugin replaces it."""


def _connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    if "factory" not in kwargs and len(args) < 6:  # (database, timeout, …, factory, …)
        kwargs["factory"] = WarningConnection
    connection = _saved["connect"](*args, **kwargs)
    _open.add(connection)
    return connection


def _on_pool_connect(dbapi_connection: Any, _record: Any) -> None:
    """Every pooled connection (psycopg's too) is tracked until it is closed."""
    with contextlib.suppress(TypeError):  # a plain sqlite3.Connection (3.13): no weakref
        _open.add(dbapi_connection)


def _still_open(connection: Any) -> bool:
    closed = getattr(connection, "closed", None)  # psycopg
    if closed is None:
        closed = getattr(connection, "_closed", False)
    return not closed


def pytest_configure(config: pytest.Config) -> None:
    if not _NATIVE and "connect" not in _saved:
        _saved["connect"] = sqlite3.connect
        sqlite3.connect = sqlite3.dbapi2.connect = _connect  # type: ignore[assignment]
    event.listen(Pool, "connect", _on_pool_connect)


def pytest_unconfigure(config: pytest.Config) -> None:
    event.remove(Pool, "connect", _on_pool_connect)
    if "connect" in _saved:
        sqlite3.connect = sqlite3.dbapi2.connect = _saved.pop("connect")  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _collect_leaked_connections() -> Iterator[None]:
    """Torn down after the test's other function-scoped fixtures (an autouse fixture is set up
    first): if any connection is still open, collect the garbage now, so that the
    ``ResourceWarning`` of a leaked one fails this test's teardown (a connection held by a
    module- or session-scoped fixture is open, not leaked: the collection finds it alive)."""
    yield
    if any(_still_open(c) for c in list(_open)):
        gc.collect()
