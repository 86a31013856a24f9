"""SQLite on a full disk and on a read-only file system.

The full disk is a real one: a 1 MiB tmpfs mounted for the test (we run as root in CI; the
mount is undone in a finalizer), filled up to the last byte and to 64 KiB short of it. The
read-only file is a read-only bind mount of the database's directory (``chmod 444`` does not
stop root) and a ``mode=ro`` SQLite URI. Each time the command gives one clear error line, a
non-zero exit and no traceback; the file passes ``PRAGMA integrity_check``, the case is
unchanged, and the same command succeeds once the fault is gone."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.service import Service
from dk2020flow.settings import Settings
from dk2020flow.store.repository import SqlStore

from .conftest import DK2020, Cli

OPENED = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)
DECIDE = (
    "case",
    "fire",
    "Aarhus",
    "decide_participate",
    "--role",
    "council",
    "--data",
    "cohort=round1",
    "--data",
    "decision_date=2020-08-20",
    "--data",
    "contact_person_name=Anna Jensen",
    "--data",
    "contact_person_email=anna@aarhus.example.dk",
    "--now",
    "2020-08-20T15:00+02:00",
)


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip()}): the disk faults need root")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _prepare(database: Path, template_url: str) -> None:
    """A migrated database at ``database`` with the DK2020 workflow and Aarhus invited."""
    shutil.copyfile(template_url.removeprefix("sqlite:///"), database)
    store = SqlStore(f"sqlite:///{database}")
    try:
        service = Service(store, clock=ManualClock(OPENED), settings=Settings())
        service.load_workflow(DK2020)
        service.open_case("dk2020", "Aarhus", actor="test", role="secretariat")
    finally:
        store.close()


def _snapshot(database: Path) -> tuple[str, int, int]:
    """(state, events, outbox rows) of Aarhus; the file must pass the integrity check."""
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        state = conn.execute("SELECT state FROM cases WHERE organisation_code = '751'").fetchone()
        events = conn.execute("SELECT count(*) FROM events").fetchone()
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()
    conn.close()
    return str(state[0]), int(events[0]), int(outbox[0])


def _one_error_line(stderr: str, *, log: bool = False) -> str:
    """The one error line (a daemon's log lines may come before it)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    if not log:
        assert lines == errors, stderr
    return errors[0]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk))
    try:
        yield disk
    finally:
        _umount(disk)


def _fill(disk: Path, leave: int) -> Path:
    filler = disk / "filler"
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    with filler.open("ab") as handle:
        try:
            handle.write(b"\0" * max(0, free - leave))
            handle.flush()
        except OSError:
            pass  # full: that is the point
    return filler


@pytest.mark.parametrize("leave", [0, 64 * 1024], ids=["no-byte-left", "64KiB-left"])
def test_a_full_disk_is_one_clear_error_and_recovers(
    tiny_disk: Path, sqlite_url: str, tmp_path: Path, leave: int
) -> None:
    database = tiny_disk / "dk2020flow.db"
    _prepare(database, sqlite_url)
    before = _snapshot(database)
    assert before[0] == "invited"
    cli = Cli(
        tmp_path,
        DK2020FLOW_DATABASE_URL=f"sqlite:///{database}",
        DK2020FLOW_MAIL_FOLDER=str(tmp_path / "mail"),
    )
    filler = _fill(tiny_disk, leave)
    failed = cli(*DECIDE, code=None)
    assert failed.returncode != 0
    line = _one_error_line(failed.stderr)
    assert "full" in line, line
    daemon = cli("scheduler", "run", "--once", "--now", "2020-08-21T12:00+02:00", code=None)
    assert daemon.returncode != 0
    assert "full" in _one_error_line(daemon.stderr, log=True)
    # Space again: nothing was half-written, and the same command now works.
    filler.unlink()
    assert _snapshot(database) == before
    cli(*DECIDE)
    after = _snapshot(database)
    assert after[0] != before[0]
    assert after[1] > before[1]


def test_a_read_only_database_is_one_clear_error_and_recovers(
    sqlite_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "rw"
    home.mkdir()
    database = home / "dk2020flow.db"
    _prepare(database, sqlite_url)
    before = _snapshot(database)
    read_only = tmp_path / "ro"
    read_only.mkdir()
    _mount("--bind", str(home), str(read_only))
    try:
        _mount("-o", "remount,bind,ro", str(read_only))
        cli = Cli(tmp_path, DK2020FLOW_MAIL_FOLDER=str(tmp_path / "mail"))
        urls = [
            f"sqlite:///{read_only / 'dk2020flow.db'}",  # a read-only file system
            f"sqlite:///file:{database}?mode=ro&uri=true",  # a read-only open
        ]
        for url in urls:
            failed = cli(*DECIDE, "--db", url, code=None)
            assert failed.returncode != 0
            line = _one_error_line(failed.stderr)
            assert "read-only" in line or "writable" in line, line
            assert _snapshot(database) == before
    finally:
        _umount(read_only)
    # Writable again: the same command works.
    cli(*DECIDE, "--db", f"sqlite:///{database}")
    assert _snapshot(database)[0] != before[0]
