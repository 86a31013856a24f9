"""HTTP load for the web benchmarks: a uvicorn server process, and N keep-alive clients.

Shared by bench/web.py (the console) and bench/portal.py (the participants' portal):
``Server`` runs ``dk2020flow serve`` or a bare app in its own process on a free port;
``load`` sends each client's requests on one connection, all clients released together
by a barrier, and keeps every request's wall time.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import free_port, wait_until

SESSION_COOKIE = "dk2020flow_session"


class Server:
    """A uvicorn process (``dk2020flow serve`` or the bare app) until ``stop()``."""

    def __init__(self, argv: list[str], url: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DK2020FLOW_DATABASE_URL": url, "DK2020FLOW_LOG_LEVEL": "warning"}
        self._log = log.open("wb")
        self.log = log
        self.proc = subprocess.Popen(
            [*argv, "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait_ready(self, path: str, timeout: float = 120.0) -> None:
        import httpx2 as httpx

        def up() -> bool:
            if self.proc.poll() is not None:
                return True
            try:
                httpx.get(self.base + path, timeout=2.0)
            except httpx.HTTPError:
                return False
            return True

        wait_until(up, timeout, interval=0.2)
        if self.proc.poll() is not None:
            raise RuntimeError(f"the server exited: {self.tail()}")

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])[:300]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


@dataclass(frozen=True)
class Load:
    latencies: list[float]
    """Seconds per request."""
    statuses: dict[int, int]
    seconds: float


def load(base: str, paths: list[list[str]], token: str | Sequence[str], budget: float) -> Load:
    """``len(paths)`` clients at once, client ``i`` sending ``paths[i]`` in order on one
    keep-alive connection with the session cookie ``token`` (or ``token[i]``: a session
    each); every request's wall time. A client sends no new request once ``budget``
    seconds have passed (a slow page is measured on fewer requests)."""
    import httpx2 as httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(len(paths))
    errors: list[BaseException] = []

    tokens = [token] * len(paths) if isinstance(token, str) else list(token)
    if len(tokens) != len(paths):
        raise ValueError(f"{len(paths)} clients, {len(tokens)} session tokens")

    def client(own: list[str], session: str) -> None:
        try:
            with httpx.Client(
                base_url=base, cookies={SESSION_COOKIE: session}, timeout=60.0
            ) as http:
                http.get(own[0])  # the connection is open before the clock starts
                barrier.wait()
                stop_at = time.perf_counter() + budget
                mine: list[float] = []
                codes: list[int] = []
                for path in own:
                    if mine and time.perf_counter() > stop_at:
                        break
                    start = time.perf_counter()
                    response = http.get(path)
                    mine.append(time.perf_counter() - start)
                    codes.append(response.status_code)
            with lock:
                latencies.extend(mine)
                for code in codes:
                    statuses[code] = statuses.get(code, 0) + 1
        except BaseException as exc:  # reported by the caller, never lost in a thread
            errors.append(exc)
            barrier.abort()

    threads = [
        threading.Thread(target=client, args=(own, session))
        for own, session in zip(paths, tokens, strict=True)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return Load(latencies=latencies, statuses=statuses, seconds=time.perf_counter() - start)
