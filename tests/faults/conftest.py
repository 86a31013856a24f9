"""Helpers for the fault suite: the installed command as a subprocess, daemons, the ``crash``
workflow, and the SMTP server of the runtime tests (reused, not copied)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dk2020flow.clock import ManualClock
from dk2020flow.service import Service
from dk2020flow.settings import Settings
from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore
from integration.runtime.conftest import (
    LogWatch,
    read_conn,
    smtp_server,  # noqa: F401 - the fixture, shared
)

FAULTS = Path(__file__).parent
DATA = FAULTS / "data"
CORPUS = FAULTS / "corpus"
ROOT = FAULTS.parents[1]
DK2020 = ROOT / "workflows" / "dk2020.yaml"
CRASH = DATA / "workflows" / "crash.yaml"
CRASH_TIMERS = 20
"""Timers per ``crash`` case: t01 … t20, each fires ``ping`` (an internal transition) and queues
one mail to the secretariat."""
T0 = dt.datetime(2021, 3, 1, 9, 0, tzinfo=dt.UTC)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any DK2020FLOW_* setting of the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("DK2020FLOW_DEBUG", None)
    env.update(extra)
    return env


class Cli:
    """``dk2020flow …`` as a user runs it: the installed console script in a subprocess."""

    def __init__(self, cwd: Path, **env: str) -> None:
        self.cwd = cwd
        self.env = clean_env(**env)

    def __call__(
        self,
        *args: str | bytes,
        code: int | None = 0,
        timeout: float = 120,
        user: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*user, "dk2020flow", *args],
            capture_output=True,
            env=self.env,
            cwd=self.cwd,
            timeout=timeout,
            check=False,
        )
        result = subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode("utf-8", "replace"),
            done.stderr.decode("utf-8", "replace"),
        )
        if code is not None:
            assert result.returncode == code, (
                args,
                result.returncode,
                result.stdout,
                result.stderr,
            )
        assert "Traceback" not in result.stderr, result.stderr
        assert "internal error" not in result.stderr, result.stderr
        return result

    def many(
        self, commands: Sequence[Sequence[str | bytes]], *, at_once: int = 4, timeout: float = 180
    ) -> list[subprocess.CompletedProcess[str]]:
        """Several commands, ``at_once`` at a time (CLI start-up dominates their cost).
        Checks that none printed a traceback."""
        results: list[subprocess.CompletedProcess[str]] = []
        for start in range(0, len(commands), at_once):
            group = commands[start : start + at_once]
            procs = [
                subprocess.Popen(
                    ["dk2020flow", *args],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=self.env,
                    cwd=self.cwd,
                )
                for args in group
            ]
            for args, proc in zip(group, procs, strict=True):
                out, err = proc.communicate(timeout=timeout)
                result = subprocess.CompletedProcess(
                    list(args),
                    proc.returncode,
                    out.decode("utf-8", "replace"),
                    err.decode("utf-8", "replace"),
                )
                assert "Traceback" not in result.stderr, (args, result.stderr)
                assert "internal error" not in result.stderr, (args, result.stderr)
                results.append(result)
        return results


class Daemon:
    """``dk2020flow scheduler run …`` in the background. Its JSON log (stderr) goes into
    ``self.log``, a ``LogWatch``: a test waits for the line that says what it needs."""

    def __init__(self, args: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            ["dk2020flow", "scheduler", "run", "--log-format", "json", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )
        assert self.proc.stderr is not None
        self.log = LogWatch()
        self._reader = self.log.read(self.proc.stderr)

    @property
    def lines(self) -> list[str]:
        return self.log.lines

    def text(self) -> str:
        return self.log.text()

    def wait(self, timeout: float = 60) -> int:
        """Its exit status, once it exited and its log was read to the end."""
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=30)
        assert self.log.ended, "the daemon's log did not end with the process"
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.terminate()
        return self.wait(timeout)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts; any still running at the end is killed."""
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for daemon in started:
            daemon.kill()


def open_cases(url: str, workflow: Path, count: int | None = None, now: dt.datetime = T0) -> int:
    """Load ``workflow`` and open a case for ``count`` organisations (all by default)."""
    store = SqlStore(url)
    try:
        service = Service(store, clock=ManualClock(now), settings=Settings())
        stored, _ = service.load_workflow(workflow)
        with store.read() as tx:
            organisations = tx.organisations()
        chosen = organisations if count is None else organisations[:count]
        for organisation in chosen:
            service.open_case(stored.name, organisation.code, actor="test", role="secretariat")
        return len(chosen)
    finally:
        store.close()


def table_counts(store: SqlStore) -> dict[str, int]:
    """Rows of the tables a change writes to (a cheap 'nothing changed' fingerprint)."""
    with read_conn(store) as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in (
                ("cases", t.cases),
                ("events", t.events),
                ("timers", t.timers),
                ("outbox", t.outbox),
                ("organisations", t.organisations),
                ("contacts", t.contacts),
            )
        }
