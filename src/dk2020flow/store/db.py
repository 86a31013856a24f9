"""Engines, connection settings, schema migrations and driver-error translation.

SQLite is the embedded default: WAL, a 5 s busy timeout, foreign keys on and
write transactions begun with ``BEGIN IMMEDIATE`` (so two writers queue for
the lock up front instead of failing half-way with "database is locked").
PostgreSQL is the scale-out path, through psycopg 3.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, exc, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from dk2020flow.errors import ConflictError, Dk2020flowError, SchemaBehindError
from dk2020flow.store.errors import (
    DatabaseBusyError,
    DatabaseReadOnlyError,
    DatabaseUnavailableError,
    DiskFullError,
    StoreError,
)

ENV_DATABASE_URL = "DK2020FLOW_DATABASE_URL"
DEFAULT_SQLITE_FILE = "dk2020flow.db"
BUSY_TIMEOUT_S = 5
READ_ONLY_OPTION = "dk2020flow_read_only"
"""Execution option: begin with a plain (deferred) BEGIN on SQLite instead of BEGIN IMMEDIATE."""

MIGRATIONS_PACKAGE = "dk2020flow._migrations"
HEAD_REVISION = "0008"
"""The newest revision in ``_migrations/versions`` (a test checks it against alembic's scan):
opening a database compares with it, so no command pays for importing alembic and scanning
the migration scripts unless the schema is not current (``require_current_schema``)."""

if TYPE_CHECKING:
    from alembic.config import Config


class SchemaAheadError(StoreError):
    """The database was migrated by a newer release of dk2020flow."""


# --------------------------------------------------------------------------- URLs


def default_database_url() -> str:
    """``DK2020FLOW_DATABASE_URL``, or a SQLite file in the working directory."""
    url = os.environ.get(ENV_DATABASE_URL, "").strip()
    if url:
        return url
    return f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"


def normalize_url(url: str) -> str:
    """Pick psycopg 3 for PostgreSQL URLs that name no driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def safe_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


# ------------------------------------------------------------------------ engines


def make_engine(url: str, *, pool_size: int | None = None) -> Engine:
    """An engine for ``url`` with the project's connection settings.

    ``pool_size``: connections kept open (default SQLAlchemy's 5); the web application
    sizes it to its thread pool, so that no request waits for a connection.
    Raises ``StoreError`` for a URL that names an unknown or missing driver.
    """
    url = normalize_url(url)
    pool: dict[str, Any] = {} if pool_size is None else {"pool_size": pool_size, "max_overflow": 0}
    try:
        if _is_sqlite(url):
            engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S}, **pool)
            _configure_sqlite(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True, **pool)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise StoreError(
            f"cannot use the database URL {safe_url(url)}: {error}. Use sqlite:///PATH "
            "or postgresql+psycopg://USER@HOST/DB"
        ) from error
    return engine


def _configure_sqlite(engine: Engine) -> None:
    in_memory = engine.url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let us emit BEGIN ourselves (pysqlite's own transaction handling
        # would defeat BEGIN IMMEDIATE and break SAVEPOINT).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        statement = "BEGIN" if options.get(READ_ONLY_OPTION) else "BEGIN IMMEDIATE"
        # Straight to the driver: SQLAlchemy's statement machinery costs more than
        # SQLite takes for a BEGIN, and every transaction begins with one. A failure
        # ("database is locked" after the busy timeout, disk I/O …) is wrapped as
        # SQLAlchemy wraps the driver's errors, for ``translated_errors``.
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        try:
            dbapi_connection.execute(statement)
        except sqlite3.Error as error:
            raise exc.DBAPIError.instance(
                statement, (), error, sqlite3.Error, dialect=connection.dialect
            ) from error


# ---------------------------------------------------------------- driver errors


def translate_error(error: Exception, url: str) -> Exception:
    """The project error for a driver error, with a message that says what to do.

    Errors that are already the project's (also when SQLAlchemy wrapped them,
    e.g. a naive datetime refused while binding) come back unwrapped.
    """
    if isinstance(error, Dk2020flowError):
        return error
    orig = getattr(error, "orig", None)
    if isinstance(orig, Dk2020flowError):
        return orig
    where = safe_url(url)
    text = str(orig if orig is not None else error)
    low = text.lower()
    sqlstate = str(getattr(orig, "sqlstate", "") or "")

    if "database is locked" in low or "database table is locked" in low or "is busy" in low:
        return DatabaseBusyError(
            f"the database at {where} stayed locked by another process for "
            f"{BUSY_TIMEOUT_S} s: another dk2020flow command or daemon is writing; "
            "run the command again (nothing was changed)"
        )
    if "disk is full" in low or "no space left" in low or sqlstate == "53100":
        return DiskFullError(
            f"the disk under the database at {where} is full: free some space and "
            "run the command again (nothing was changed)"
        )
    if "disk i/o error" in low:
        code = str(getattr(orig, "sqlite_errorname", "") or "SQLITE_IOERR")
        return StoreError(
            f"the database file {where} could not be read or written ({code}): is the disk "
            "under it full, read-only or failing? Free some space or fix the file system, "
            "then run the command again (the change was not made)"
        )
    if "read-only transaction" in low or sqlstate == "25006":
        return DatabaseReadOnlyError(
            f"the database at {where} refused a write in a read-only transaction: is it a "
            "replica, or is default_transaction_read_only on? (Or a write inside Store.read().)"
        )
    if "readonly database" in low or "read-only" in low:
        return DatabaseReadOnlyError(
            f"the database at {where} is read-only: check the permissions of the file and "
            "its directory (SQLite writes -wal and -shm files beside it)"
        )
    if "unable to open database file" in low:
        return DatabaseUnavailableError(
            f"cannot open the database file {where}: check that its directory exists and "
            "is writable, or set DK2020FLOW_DATABASE_URL / --db"
        )
    if "file is not a database" in low:
        return DatabaseUnavailableError(
            f"{where} is not a SQLite database file: point DK2020FLOW_DATABASE_URL / --db "
            "at the right file"
        )
    if "no such table" in low or sqlstate == "42P01":
        return SchemaBehindError(
            f"the database at {where} has no dk2020flow schema (or an old one): "
            "run `dk2020flow db upgrade`"
        )
    if sqlstate in ("40001", "40P01"):
        return ConflictError(
            f"a concurrent change to the database at {where} won: run the command again"
        )
    if isinstance(error, exc.OperationalError | exc.InterfaceError) and (
        "connect" in low or "connection" in low or sqlstate.startswith("08")
    ):
        # The driver's first line says what happened ("server closed the connection
        # unexpectedly"); libpq's continuation lines are tab-indented hints.
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        reason = lines[0] if lines else "no answer"
        return DatabaseUnavailableError(
            f"cannot connect to the database at {where} ({reason}): is the server running "
            "and the URL right? Set DK2020FLOW_DATABASE_URL or --db"
        )
    if "does not exist" in low and sqlstate.startswith("3D"):
        return DatabaseUnavailableError(
            f"the database at {where} does not exist: create it (createdb) or fix the URL"
        )
    return StoreError(f"database error at {where}: {text.strip()}")


@contextmanager
def translated_errors(url: str) -> Iterator[None]:
    """Turn SQLAlchemy/driver errors raised inside the block into project errors."""
    try:
        yield
    except (exc.DBAPIError, exc.StatementError) as error:
        raise translate_error(error, url) from error
    except exc.PendingRollbackError as error:
        # The connection died inside the transaction and code went on using it (e.g. a
        # savepoint after the failed statement): the transaction is gone as a whole.
        raise DatabaseUnavailableError(
            f"the connection to the database at {safe_url(url)} was lost in the middle of a "
            "transaction (none of it was written): is the server running? Run the command "
            "again"
        ) from error


# --------------------------------------------------------------------- migrations


def migrations_dir() -> Path:
    """Where the alembic environment lives (shipped in the package as ``_migrations``)."""
    return Path(str(resources.files(MIGRATIONS_PACKAGE)))


def alembic_config(url: str, connection: Connection | None = None) -> Config:
    """An alembic ``Config`` for ``url``, built in code (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["url"] = normalize_url(url)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this release knows (alembic's scan of the scripts)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "the migrations directory has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision, or None for an empty database."""
    url = engine.url.render_as_string(hide_password=False)
    with translated_errors(url), engine.connect() as raw:
        connection = raw.execution_options(**{READ_ONLY_OPTION: True})
        # alembic's own table, read directly: importing alembic costs a read command more
        # than the rest of its start-up (#15.18).
        if not inspect(connection).has_table("alembic_version"):
            return None
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        return next(iter(rows), None)


def require_current_schema(engine: Engine) -> None:
    """Raise ``SchemaBehindError`` unless the database is at this release's schema."""
    url = engine.url.render_as_string(hide_password=False)
    current = current_revision(engine)
    if current == HEAD_REVISION:
        return
    from alembic.script import ScriptDirectory

    head = head_revision()
    if current == head:
        return
    where = safe_url(url)
    if current is None:
        raise SchemaBehindError(
            f"the database at {where} is empty (no schema), the code needs revision {head}: "
            "run `dk2020flow db upgrade`"
        )
    known = {
        script.revision
        for script in ScriptDirectory.from_config(alembic_config(url)).walk_revisions()
    }
    if current not in known:
        raise SchemaAheadError(
            f"the database at {where} is at revision {current}, which this release of "
            f"dk2020flow does not know (it needs {head}): a newer dk2020flow migrated it; "
            "upgrade dk2020flow"
        )
    raise SchemaBehindError(
        f"the database at {where} is at revision {current}, the code needs {head}: "
        "run `dk2020flow db upgrade`"
    )


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the database at ``url`` to ``revision``; return the revision it is at after.

    A new database knows no organisations: ``workflow load`` adds a workflow's data set,
    ``orgs import`` any file (docs/data-model.md#organisations).
    """
    engine = make_engine(url)
    try:
        from alembic import command

        with translated_errors(url), engine.connect() as connection:
            command.upgrade(alembic_config(url, connection), revision)
            connection.commit()
        return current_revision(engine) or "base"
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"`` drops everything)."""
    engine = make_engine(url)
    try:
        from alembic import command

        with translated_errors(url), engine.connect() as connection:
            command.downgrade(alembic_config(url, connection), revision)
            connection.commit()
    finally:
        engine.dispose()
