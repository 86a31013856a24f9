"""`dk2020flow serve` as an operator starts it: the installed command, a real uvicorn."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from .test_case_cli import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    run = Cli(tmp_path)
    run("db", "upgrade")
    return run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(cli: Cli) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        ["dk2020flow", "serve", "--port", str(port), "--now", "2021-06-01T10:00"],
        cwd=cli.cwd,
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Wait for the socket to accept (the process's own signal that it listens), not a sleep
        # of a guessed length; give up after 30 s.
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve did not listen within 30 s"
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        assert "Traceback" not in (stderr or "")


def test_serve_answers_and_sends_a_stranger_to_sign_in(served: str) -> None:
    with httpx.Client(base_url=served) as http:
        assert http.get("/healthz").text == "ok"
        page = http.get("/")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/sign-in")
        statement = http.get("/tilgaengelighed")
        assert statement.status_code == 200
        # A database with no programme yet: the pages open in English (docs/web.md).
        assert "Accessibility statement" in statement.text and '<html lang="en">' in statement.text
        assert "script-src 'self'" in statement.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--now", ""], "--now is empty"),
        (["--now", "someday"], "--now"),
        (["--workers", "2"], "needs PostgreSQL"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(cli: Cli, args: list[str], message: str) -> None:
    done = cli("serve", *args, code=2)
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_database_behind_the_schema_is_refused(tmp_path: Path) -> None:
    run = Cli(tmp_path)
    done = run("serve", "--db", f"sqlite:///{tmp_path / 'new.db'}", code=2)
    assert "dk2020flow db upgrade" in done.stderr
    assert os.listdir(tmp_path) in ([], ["new.db"])
