"""The real daemon (``dk2020flow scheduler run``) as a child process we can measure."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DAEMON = "from dk2020flow.cli import main; main()"


class DaemonProcess:
    """``dk2020flow scheduler run`` on ``url`` with the system clock, mail into a folder.

    ``stop()`` sends SIGTERM (the daemon finishes its batch and exits) and returns the
    child's own rusage from ``os.wait4``: its CPU times and peak RSS (``ru_maxrss``, kB).
    """

    def __init__(self, url: str, folder: Path, **env: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "daemon.log"
        environment = {
            **os.environ,
            "DK2020FLOW_DATABASE_URL": url,
            "DK2020FLOW_MAIL_TRANSPORT": "folder",
            "DK2020FLOW_MAIL_FOLDER": str(folder / "mail"),
            **env,
        }
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    DAEMON,
                    "scheduler",
                    "run",
                    "--db",
                    url,
                    "--log-format",
                    "json",
                ],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.rusage: Any = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.rusage is None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> Any:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the child's rusage."""
        if self.rusage is not None:
            return self.rusage
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while True:
            pid, _status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.rusage = rusage
                self.proc.returncode = _status
                return rusage
            if time.monotonic() > deadline:
                os.kill(self.proc.pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
            time.sleep(0.05)

    def tail(self, lines: int = 3) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])
