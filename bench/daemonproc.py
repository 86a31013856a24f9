"""The real daemon (``dk2020flow scheduler run``) as a child process we can measure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

DAEMON = "from dk2020flow.cli import main; main()"


class DaemonProcess:
    """``dk2020flow scheduler run`` on ``url`` with the system clock, mail into a folder.

    ``stop()`` sends SIGTERM: the daemon finishes its batch and exits.
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

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the daemon finishes its batch), SIGKILL after ``timeout`` s; exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(10)

    def peak_rss_mb(self) -> float:
        """The process's peak resident set (``VmHWM``), read while it runs.

        Not ``ru_maxrss`` from ``wait4``: that also counts the parent's pages the child
        shared between fork and exec, i.e. the benchmark's own memory.
        """
        return vm_hwm_mb(self.proc.pid)

    def tail(self, lines: int = 3) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


def vm_hwm_mb(pid: int | str) -> float:
    """``VmHWM`` of ``/proc/PID/status`` in MB (``pid`` may be ``"self"``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")
