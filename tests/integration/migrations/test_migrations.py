"""The migrations give exactly the models' schema, and go down and up again, on both backends."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from dk2020flow.store.db import (
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    require_current_schema,
    upgrade,
)
from dk2020flow.store.repository import SqlStore
from dk2020flow.store.tables import metadata

TABLES = {
    "alembic_version",
    "cases",
    "contacts",
    "daemons",
    "definitions",
    "events",
    "organisations",
    "outbox",
    "programme_timers",
    "timers",
    "users",
    "sign_in_tokens",
    "web_sessions",
    "sign_in_attempts",
    "saved_views",
    "bulk_runs",
    "bulk_items",
    "api_tokens",
    "idempotency_keys",
    "webhook_subscriptions",
    "webhook_deliveries",
    "documents",
    "document_contents",
    "case_counts",
    "deadline_counts",
    "outbox_counts",
    "count_folds",
    "access_log",  # privacy (0005)
    "forgotten_people",  # privacy (0005)
    "link_keys",  # mail links (0005)
}


def _diff(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_gives_the_models_schema(empty_db_url: str) -> None:
    assert upgrade(empty_db_url) == head_revision()
    assert _tables(empty_db_url) == TABLES
    assert _diff(empty_db_url) == []
    engine = make_engine(empty_db_url)
    try:
        require_current_schema(engine)
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    downgrade(empty_db_url, "base")
    assert _tables(empty_db_url) <= {"alembic_version"}
    engine = make_engine(empty_db_url)
    try:
        assert current_revision(engine) is None
    finally:
        engine.dispose()
    upgrade(empty_db_url)
    assert _diff(empty_db_url) == []
    store = SqlStore(empty_db_url)
    try:
        with store.read() as tx:
            assert tx.organisations() == []  # a new database: no programme's data set yet
    finally:
        store.close()


def test_upgrade_is_idempotent(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    assert upgrade(empty_db_url) == head_revision()
    store = SqlStore(empty_db_url)
    try:
        with store.read() as tx:
            assert tx.organisations() == []
    finally:
        store.close()
