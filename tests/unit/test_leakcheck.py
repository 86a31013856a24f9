"""A leaked connection fails its test (pyproject.toml's filterwarnings and tests/leakcheck.py).

pytest runs in a subprocess on a small test file, with the project's own pytest settings:
each test that leaves a connection open must end in an error naming the ResourceWarning, and
the tests that close theirs must pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).parents[1]
PYPROJECT = TESTS.parent / "pyproject.toml"

LEAKY = textwrap.dedent(
    """
    import contextlib
    import sqlite3

    from sqlalchemy import create_engine, text

    from dk2020flow.store.repository import SqlStore


    def test_raw_connection_left_open(tmp_path):
        conn = sqlite3.connect(tmp_path / "raw.db")
        conn.execute("SELECT 1")


    def test_with_block_does_not_close(tmp_path):
        # `with sqlite3.connect(...)` commits; it does not close.
        with sqlite3.connect(tmp_path / "with.db") as conn:
            conn.execute("SELECT 1")


    def test_engine_never_disposed(tmp_path):
        engine = create_engine(f"sqlite:///{tmp_path / 'engine.db'}")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))


    def test_store_never_closed(sqlite_url_here):
        store = SqlStore(sqlite_url_here)
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


    def test_closed_raw_connection_passes(tmp_path):
        with contextlib.closing(sqlite3.connect(tmp_path / "closed.db")) as conn:
            conn.execute("SELECT 1")


    def test_disposed_engine_passes(tmp_path):
        engine = create_engine(f"sqlite:///{tmp_path / 'disposed.db'}")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    """
)

CONFTEST = textwrap.dedent(
    """
    import pytest


    @pytest.fixture
    def sqlite_url_here(tmp_path):
        return f"sqlite:///{tmp_path / 'store.db'}"
    """
)


def test_a_leaked_sqlite_connection_fails_the_test_that_leaked_it(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(LEAKY, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(PYPROJECT),
            "--rootdir",
            str(tmp_path),
            "-p",
            "leakcheck",
            "-p",
            "no:cacheprovider",
            "-rA",
            "-q",
            str(tmp_path / "test_leaky.py"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    outcomes = {
        name: outcome
        for outcome, name in re.findall(r"^(PASSED|FAILED|ERROR) \S+::(\w+)", out, re.MULTILINE)
    }
    assert outcomes == {
        "test_raw_connection_left_open": "ERROR",
        "test_with_block_does_not_close": "ERROR",
        "test_engine_never_disposed": "ERROR",
        "test_store_never_closed": "ERROR",
        "test_closed_raw_connection_passes": "PASSED",
        "test_disposed_engine_passes": "PASSED",
    }, out
    assert "ResourceWarning: unclosed database" in out, out
