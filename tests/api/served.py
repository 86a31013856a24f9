"""``dk2020flow serve`` as an operator starts it, on a free loopback port: the installed
command, a real uvicorn, for the tests that talk HTTP to the running API."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

SERVE_NOW = "2021-12-01T10:00"
"""The server's clock (``serve --now``), as the in-process tests' clock."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env.update(extra or {})
    return env


@contextmanager
def serve(
    database_url: str,
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    now: str = SERVE_NOW,
) -> Iterator[str]:
    """The base URL of ``dk2020flow serve`` on ``database_url`` until the block ends;
    its stderr must hold no traceback then (no request failed on the server)."""
    port = free_port()
    log = cwd / f"serve-{port}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [
                "dk2020flow",
                "serve",
                "--db",
                database_url,
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--now",
                now,
            ],
            cwd=cwd,
            env=environment(env),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
    try:
        # The socket accepting is the process's own signal that it listens (not a guessed
        # sleep); give up after 60 s.
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve did not listen within 60 s"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    errors = log.read_text()
    assert "Traceback" not in errors, errors[-3000:]
