"""A rehearsal with --now arms programme events as of then (#15.7), run as a user runs it."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

from dk2020flow.store.repository import SqlStore


def _run(db_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env["DK2020FLOW_DATABASE_URL"] = db_url
    return subprocess.run(
        ["dk2020flow", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_workflow_load_arms_programme_events_as_of_now(sqlite_url: str, tmp_path: Path) -> None:
    done = _run(
        sqlite_url, tmp_path, "workflow", "load", "dk2020", "--now", "2020-06-20T10:00+02:00"
    )
    assert done.returncode == 0, done.stderr
    store = SqlStore(sqlite_url)
    try:
        with store.read() as tx:
            rows = sorted(
                (p.kind, p.index, p.due_at)
                for p in tx.programme_timers()
                if p.cohort == "round1" and p.event == "start_conference"
            )
    finally:
        store.close()
    assert rows == [
        ("event", 0, dt.datetime(2020, 11, 5, 9, 0, tzinfo=dt.UTC)),
        ("event_reminder", 1, dt.datetime(2020, 11, 19, 9, 0, tzinfo=dt.UTC)),
        ("event_reminder", 2, dt.datetime(2020, 11, 25, 9, 0, tzinfo=dt.UTC)),
    ]
