"""HTTP load for the web benchmarks: a uvicorn server process, and N keep-alive clients.

Shared by bench/web.py (the console) and bench/portal.py (the participants' portal):
``Server`` runs ``dk2020flow serve`` or a bare app in its own process on a free port;
``load`` runs N keep-alive clients for a number of seconds (wrk when installed, else
Python threads) and keeps every request's wall time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
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
    client: str
    """What sent the requests: ``wrk`` (C, one thread per connection) or ``python``."""


def load(base: str, paths: list[list[str]], token: str | Sequence[str], seconds: float) -> Load:
    """``len(paths)`` clients at once for ``seconds``: client ``i`` sends ``paths[i]`` in
    turn, again and again, on one keep-alive connection with the session cookie ``token``
    (or ``token[i]``: a session each); every request's wall time.

    The clients are wrk when it is installed (``apt-get install wrk``): a C load
    generator costs the two cores a few per cent of what 20 Python threads do, so the
    server, not the client, is measured. Without it, Python threads (``client`` says
    which)."""
    tokens = [token] * len(paths) if isinstance(token, str) else list(token)
    if len(tokens) != len(paths):
        raise ValueError(f"{len(paths)} clients, {len(tokens)} session tokens")
    if shutil.which("wrk"):
        return _wrk(base, paths, tokens, seconds)
    return _threads(base, paths, tokens, seconds)


_WRK_SCRIPT = """
local clients = {clients}
local made = 0
local threads = {{}}
function setup(thread)
  made = made + 1
  thread:set("own", clients[made].paths)
  thread:set("cookie", clients[made].cookie)
  table.insert(threads, thread)
end
function init(args)
  sent = 0
  codes = {{}}
end
function request()
  sent = sent + 1
  return wrk.format("GET", own[((sent - 1) % #own) + 1], {{["Cookie"] = cookie}})
end
function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end
function done(summary, latency, requests)
  local out = io.open("{out}", "w")
  for i = 1, #latency do
    local value, count = latency(i)
    out:write(string.format("latency %d %d\\n", value, count))
  end
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("codes")) do
      out:write(string.format("status %d %d\\n", status, count))
    end
  end
  out:write(string.format("errors %d\\n", summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
  out:close()
end
"""


def _lua(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wrk(base: str, paths: list[list[str]], tokens: list[str], seconds: float) -> Load:
    with tempfile.TemporaryDirectory(prefix="dk2020flow-wrk-") as tmp:
        out = Path(tmp) / "result.txt"
        clients = ", ".join(
            "{paths = {"
            + ", ".join(_lua(p) for p in own)
            + "}, cookie = "
            + _lua(f"{SESSION_COOKIE}={session}")
            + "}"
            for own, session in zip(paths, tokens, strict=True)
        )
        script = Path(tmp) / "load.lua"
        script.write_text(_WRK_SCRIPT.format(clients="{" + clients + "}", out=out))
        n = len(paths)
        started = time.perf_counter()
        done = subprocess.run(
            [
                "wrk",
                f"-t{n}",
                f"-c{n}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "60s",
                "-s",
                str(script),
                base,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed: {(done.stderr or done.stdout).strip()[:300]}")
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        for line in out.read_text().splitlines():
            kind, *numbers = line.split()
            if kind == "latency":
                value, count = int(numbers[0]), int(numbers[1])
                latencies.extend([value / 1e6] * count)  # wrk counts microseconds
            elif kind == "status":
                statuses[int(numbers[0])] = statuses.get(int(numbers[0]), 0) + int(numbers[1])
            elif kind == "errors" and int(numbers[0]):
                statuses[0] = int(numbers[0])  # no response: a connection or socket error
    return Load(latencies=latencies, statuses=statuses, seconds=elapsed, client="wrk")


def _threads(base: str, paths: list[list[str]], tokens: list[str], seconds: float) -> Load:
    import httpx2 as httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(len(paths))
    errors: list[BaseException] = []

    def client(own: list[str], session: str) -> None:
        try:
            with httpx.Client(
                base_url=base, cookies={SESSION_COOKIE: session}, timeout=60.0
            ) as http:
                http.get(own[0])  # the connection is open before the clock starts
                barrier.wait()
                stop_at = time.perf_counter() + seconds
                mine: list[float] = []
                codes: list[int] = []
                n = 0
                while time.perf_counter() < stop_at:
                    start = time.perf_counter()
                    response = http.get(own[n % len(own)])
                    mine.append(time.perf_counter() - start)
                    codes.append(response.status_code)
                    n += 1
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
    return Load(
        latencies=latencies,
        statuses=statuses,
        seconds=time.perf_counter() - start,
        client="python",
    )
