"""The commands show times, and read a local ``--now``, in one display zone: the setting
``timezone``, else the database's one programme's, else UTC (docs/time.md, "Shown
times"). A programme in New York (UTC-5 in winter, where Copenhagen is UTC+1) is shown
at New York's offset, never Copenhagen's."""

from __future__ import annotations

from pathlib import Path

import pytest

from .installed import InstalledCli

OPENED = "2026-01-05T09:00"  # local: 14:00 UTC in New York, 08:00 UTC in Copenhagen


@pytest.fixture
def new_york(tmp_path: Path) -> InstalledCli:
    """A programme started with `workflow init --timezone America/New_York`, loaded, and
    one case opened at 09:00 New York time (its reply deadline armed)."""
    cli = InstalledCli(tmp_path, db=f"sqlite:///{tmp_path / 'programme.db'}")
    init = InstalledCli(tmp_path)
    init("workflow", "init", "covenant", "programme", "--timezone", "America/New_York")
    cli("db", "upgrade")
    cli("workflow", "load", "programme/workflows/covenant.yaml")
    cli("case", "open", "covenant", "Northtown", "--role", "secretariat", "--now", OPENED)
    return cli


def test_scheduler_status_reads_and_shows_times_in_the_programmes_zone(
    new_york: InstalledCli,
) -> None:
    done = new_york("scheduler", "status", "--now", OPENED, code=1)  # due, no daemon
    assert "(as of 2026-01-05 09:00 -0500)" in done.stderr
    next_due = next(line for line in done.stdout.splitlines() if line.startswith("Next due:"))
    assert next_due.endswith("-0500")
    assert "+0100" not in done.stdout + done.stderr


def test_the_case_list_shows_the_programmes_zone(new_york: InstalledCli) -> None:
    listed = new_york("case", "list").stdout
    assert "2026-01-05 09:00 -0500" in listed


def test_the_setting_overrides_the_programmes_zone(new_york: InstalledCli) -> None:
    new_york.env["DK2020FLOW_TIMEZONE"] = "Asia/Tokyo"
    assert "2026-01-05 23:00 +0900" in new_york("case", "list").stdout


def test_an_unknown_timezone_setting_is_one_clear_error(new_york: InstalledCli) -> None:
    new_york.env["DK2020FLOW_TIMEZONE"] = "Mars/Olympus"
    done = new_york("case", "list", code=1)
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "DK2020FLOW_TIMEZONE" in line
    assert "not a timezone of the IANA database" in line


def test_a_database_without_one_programme_shows_utc(tmp_path: Path) -> None:
    cli = InstalledCli(tmp_path, db=f"sqlite:///{tmp_path / 'empty.db'}")
    cli("db", "upgrade")
    done = cli("scheduler", "status", "--now", "2026-01-05T09:00")
    assert "(as of 2026-01-05 09:00 +0000)" in done.stderr


def test_a_local_now_of_case_list_overdue_is_the_programmes_time(new_york: InstalledCli) -> None:
    """The reply deadline is 2 February 12:00 in New York (17:00 UTC): at 14:00 New York
    time the case is late; read as 14:00 UTC (the parse came before the database was
    open, so before its programme's zone was known) it was not."""
    late = new_york("case", "list", "--overdue", "--now", "2026-02-02T14:00").stdout
    assert "Northtown" in late
    on_time = new_york("case", "list", "--overdue", "--now", "2026-02-02T11:00").stdout
    assert "Northtown" not in on_time
