"""Helpers for the fault suite: the installed command as a subprocess, daemons, the ``crash``
workflow, and the SMTP server of the runtime tests (reused, not copied)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dk2020flow.clock import ManualClock
from dk2020flow.service import Service
from dk2020flow.settings import Settings
from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore
from integration.runtime.conftest import (
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


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """A bounded wait for another process to get somewhere (never for a deadline)."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        pause.wait(0.05)
    raise AssertionError(f"timed out waiting for {what or 'the other process'}")


class Daemon:
    """``dk2020flow scheduler run …`` in the background; its log lines are collected."""

    def __init__(self, args: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            ["dk2020flow", "scheduler", "run", "--log-format", "json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )
        self.lines: list[str] = []
        self.out: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=10)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.terminate()
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code


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
    """Load ``workflow`` and open a case for ``count`` municipalities (all by default)."""
    store = SqlStore(url)
    try:
        service = Service(store, clock=ManualClock(now), settings=Settings())
        stored, _ = service.load_workflow(workflow)
        with store.read() as tx:
            municipalities = tx.municipalities()
        chosen = municipalities if count is None else municipalities[:count]
        for municipality in chosen:
            service.open_case(stored.name, municipality.code, actor="test", role="secretariat")
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
                ("municipalities", t.municipalities),
                ("contacts", t.contacts),
            )
        }
