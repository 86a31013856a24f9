"""The alembic environment of dk2020flow.

The database URL comes from the config's attributes (``dk2020flow.store.db``
sets them; tests may pass an open ``connection``), else from
``DK2020FLOW_DATABASE_URL``, else the default SQLite file. Developers create
a revision with::

    alembic -c migrations/alembic.ini revision --autogenerate -m "what changed"
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import dk2020flow.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from dk2020flow.store.db import default_database_url, make_engine

config = context.config
target_metadata = SQLModel.metadata


def _pragma(connection: Connection, statement: str) -> None:
    """Run a pragma outside any transaction (SQLAlchemy would begin one first)."""
    if connection.in_transaction():
        connection.commit()
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode recreates tables; with foreign keys on, dropping the old
        # copy would cascade. The pragma is a no-op inside a transaction, so
        # it is set before alembic begins one, and checked afterwards.
        _pragma(connection, "PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise RuntimeError(f"the migration broke foreign keys: {problems[:5]}")
    if connection.in_transaction():
        connection.commit()
    if sqlite:
        _pragma(connection, "PRAGMA foreign_keys=ON")


def run_migrations_offline() -> None:
    url = config.attributes.get("url") or default_database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.attributes.get("url") or default_database_url())
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
