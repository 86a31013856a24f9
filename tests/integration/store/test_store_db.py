"""Engines, schema checks and driver errors turned into clear messages."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import exc, text

from dk2020flow.errors import SchemaBehindError
from dk2020flow.store import db
from dk2020flow.store.db import (
    current_revision,
    default_database_url,
    head_revision,
    make_engine,
    require_current_schema,
    safe_url,
    translate_error,
)
from dk2020flow.store.errors import (
    DatabaseBusyError,
    DatabaseUnavailableError,
    DiskFullError,
    StoreError,
)
from dk2020flow.store.repository import SqlStore

from .conftest import Build

T0 = dt.datetime(2020, 6, 1, tzinfo=dt.UTC)


def test_default_url_is_a_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DK2020FLOW_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_database_url() == f"sqlite:///{tmp_path / 'dk2020flow.db'}"
    monkeypatch.setenv("DK2020FLOW_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert default_database_url() == "postgresql+psycopg://u@h/db"


def test_safe_url_hides_passwords() -> None:
    assert safe_url("postgresql+psycopg://anne:s3cret@db.example.dk:5432/dk2020") == (
        "postgresql+psycopg://anne:***@db.example.dk:5432/dk2020"
    )
    assert "s3cret" not in safe_url("not a url://anne:s3cret@host/x")


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_writes_begin_immediate_and_reads_do_not_take_the_write_lock(
    db_url: str, build: Build, store: SqlStore
) -> None:
    case_id = build.open(store)
    with store.read() as reader:
        before = reader.load_case(case_id)
        # A write can commit while a read transaction is open (WAL) …
        with store.transaction() as writer:
            writer.append_event(case_id, build.event(comment="during a read"))
        assert reader.load_case(case_id) == before
    # … and an open write transaction holds the lock from its first statement.
    raw = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0)
    try:
        with store.transaction() as writer:
            writer.load_case(case_id)  # a read only, yet the lock is taken by BEGIN IMMEDIATE
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                raw.execute("BEGIN IMMEDIATE")
    finally:
        raw.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_writer_kept_waiting_past_the_busy_timeout_gets_a_clear_error(
    db_url: str, build: Build, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = build.open(store)
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 1)
    impatient = SqlStore(db_url)
    raw = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        raw.execute("BEGIN IMMEDIATE")
        # BEGIN IMMEDIATE waits for the lock, then gives up with the project's error.
        with (
            pytest.raises(DatabaseBusyError, match="stayed locked by another process"),
            impatient.transaction() as tx,
        ):
            tx.load_case(case_id)
        with impatient.read() as tx:  # a read does not wait for the writer
            assert tx.load_case(case_id).id == case_id
        raw.execute("ROLLBACK")
        with impatient.transaction() as tx:  # the connection is fine afterwards
            tx.append_event(case_id, build.event(comment="after the wait"))
    finally:
        raw.close()
        impatient.close()
    with store.read() as tx:
        assert [e.seq for e in tx.history(case_id)] == [1, 2]


def test_an_empty_database_is_reported_as_behind(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        assert current_revision(engine) is None
        with pytest.raises(SchemaBehindError, match=r"is empty .* run `dk2020flow db upgrade`"):
            require_current_schema(engine)
    finally:
        engine.dispose()
    store = SqlStore(empty_db_url)
    try:
        with (
            pytest.raises(SchemaBehindError, match=f"needs revision {head_revision()}"),
            store.read(),
        ):
            pass
    finally:
        store.close()


def test_an_old_revision_is_reported_as_behind(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        require_current_schema(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
        with pytest.raises(StoreError, match=r"revision 0000, which this release .* does not know"):
            require_current_schema(engine)
    finally:
        engine.dispose()


def test_a_missing_directory_gives_a_clear_error(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path}/no/such/dir/x.db", check_schema=False)
    try:
        with (
            pytest.raises(DatabaseUnavailableError, match="check that its directory exists"),
            store.read(),
        ):
            pass
    finally:
        store.close()


def test_an_unreachable_server_gives_a_clear_error_without_the_password() -> None:
    url = "postgresql+psycopg://anne:s3cret@127.0.0.1:1/dk2020?connect_timeout=2"
    store = SqlStore(url)
    try:
        with pytest.raises(DatabaseUnavailableError) as error, store.read():
            pass
    finally:
        store.close()
    message = str(error.value)
    assert message.startswith("cannot connect to the database at postgresql+psycopg://anne:***@")
    assert "s3cret" not in message
    assert "DK2020FLOW_DATABASE_URL" in message


def test_a_bad_url_gives_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot use the database URL"):
        make_engine("mysql+nosuchdriver://x/y")


@pytest.mark.parametrize(
    ("message", "kind", "advice"),
    [
        ("database is locked", DatabaseBusyError, "run the command again"),
        ("database or disk is full", DiskFullError, "free some space"),
        ("attempt to write a readonly database", StoreError, "permissions"),
        ("no such table: cases", SchemaBehindError, "dk2020flow db upgrade"),
    ],
)
def test_sqlite_driver_errors_are_translated(message: str, kind: type, advice: str) -> None:
    error = exc.OperationalError("INSERT …", {}, sqlite3.OperationalError(message))
    translated = translate_error(error, "sqlite:////srv/dk2020flow.db")
    assert isinstance(translated, kind)
    assert advice in str(translated)
    assert "/srv/dk2020flow.db" in str(translated)
