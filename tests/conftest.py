"""Fixtures shared by every test suite: fresh databases on SQLite and PostgreSQL.

- ``sqlite_url``: a migrated SQLite file of its own for the test, holding DK2020's
  98 municipalities (``with_dk2020_municipalities``: a new database holds none).
- ``pg_url``: a migrated PostgreSQL database of its own (the same), cloned
  from a template database built once per session (``CREATE DATABASE …
  TEMPLATE …`` is cheap), dropped afterwards.
- ``db_url``: both of the above, one after the other (parametrised).
- ``store``: a ``SqlStore`` on ``db_url``: write a store test once, run it on both.
- ``empty_sqlite_url`` / ``empty_pg_url``: databases with no schema at all.

PostgreSQL is the server at ``DK2020FLOW_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``, trust auth). When
none answers the PostgreSQL tests skip with a one-line reason — unless
``DK2020FLOW_REQUIRE_POSTGRES=1`` (CI sets it): then they fail.

- ``chromium``: headless Chromium for the browser test; skips without it, fails when
  ``CI=true`` or ``DK2020FLOW_REQUIRE_BROWSER=1`` (.ci/run sets it).

Every test also runs under tests/leakcheck.py: a connection left open fails it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings
from psycopg import sql
from sqlalchemy.engine import make_url

from dk2020_data import (  # noqa: F401 - re-exported for the fixtures' users
    DK2020_MUNICIPALITIES,
    dk2020_municipalities,
    with_dk2020_municipalities,
)
from dk2020flow.store.repository import SqlStore

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # A database connection left open fails the test that leaked it (tests/leakcheck.py).
    if not config.pluginmanager.has_plugin("leakcheck"):
        config.pluginmanager.import_plugin("leakcheck")
    # The parsed-definition cache (definition/cache.py) of the session's own, in a private
    # temporary folder, never the user's ~/.cache: commands run by the tests inherit it.
    if "DK2020FLOW_CACHE_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="dk2020flow-test-cache-")
        os.environ["DK2020FLOW_CACHE_DIR"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


# CI runs the property tests on a fixed set of examples (reproducible, never a red run
# from a new random draw); on a developer's machine they draw new examples every run.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("DK2020FLOW_HYPOTHESIS_PROFILE"):
    hypothesis_settings.load_profile(os.environ["DK2020FLOW_HYPOTHESIS_PROFILE"])

PG_ADMIN_URL = os.environ.get(
    "DK2020FLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("DK2020FLOW_REQUIRE_POSTGRES") == "1"
REQUIRE_BROWSER = (
    os.environ.get("DK2020FLOW_REQUIRE_BROWSER") == "1" or os.environ.get("CI") == "true"
)
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


# ------------------------------------------------------------------------- SQLite


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    with_dk2020_municipalities(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> str:
    """A fresh, migrated SQLite database file with DK2020's municipalities for this test."""
    path = tmp_path / "dk2020flow.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    """A SQLite file with no schema."""
    return f"sqlite:///{tmp_path / 'empty.db'}"


# --------------------------------------------------------------------- PostgreSQL


def _libpq(url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL (psycopg wants no driver part)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True, connect_timeout=3)


def _database_url(name: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _create_database(name: str, template: str | None = None) -> None:
    with _admin() as conn:
        if template is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )


def _drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def _pg_server() -> str:
    """The admin URL of a PostgreSQL server that answers, or skip (fail in CI)."""
    try:
        with _admin() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        message = f"no PostgreSQL server at {make_url(PG_ADMIN_URL)!r}: {reason}"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{message} (DK2020FLOW_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(message)
    return PG_ADMIN_URL


@pytest.fixture(scope="session")
def _pg_template(_pg_server: str) -> Iterator[str]:
    name = f"dk2020flow_template_{uuid.uuid4().hex[:12]}"
    _create_database(name)
    try:
        with_dk2020_municipalities(_database_url(name))
        yield name
    finally:
        _drop_database(name)


@pytest.fixture
def pg_url(_pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database with DK2020's municipalities for this test."""
    name = f"dk2020flow_test_{uuid.uuid4().hex[:12]}"
    _create_database(name, template=_pg_template)
    try:
        yield _database_url(name)
    finally:
        _drop_database(name)


@pytest.fixture
def empty_pg_url(_pg_server: str) -> Iterator[str]:
    """A PostgreSQL database with no schema."""
    name = f"dk2020flow_empty_{uuid.uuid4().hex[:12]}"
    _create_database(name)
    try:
        yield _database_url(name)
    finally:
        _drop_database(name)


# ------------------------------------------------------------------------ browser


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of headless Chromium, or skip — fail in CI (``CI=true`` or
    ``DK2020FLOW_REQUIRE_BROWSER=1``: .ci/run installs it, a missing browser is a red run)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (apt-get install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(f"{message} (CI=true or DK2020FLOW_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(message)
    return found


# ---------------------------------------------------------------- both backends


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` or ``"postgres"``."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A fresh migrated database on each backend."""
    return str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url"))


@pytest.fixture
def empty_db_url(backend: str, request: pytest.FixtureRequest) -> str:
    """An empty database (no schema) on each backend."""
    fixture = "empty_sqlite_url" if backend == "sqlite" else "empty_pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    """A ``SqlStore`` on a fresh database, on SQLite and on PostgreSQL."""
    sql_store = SqlStore(db_url)
    try:
        yield sql_store
    finally:
        sql_store.close()
