"""The real daemon (``dk2020flow scheduler run``) as a child process we can measure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
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
        self._changed = threading.Condition()
        self._actions: list[str] = []
        self._ended = False
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DAEMON, "scheduler", "run", "--db", url, "--log-format", "json"],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Copy the daemon's log into ``self.log`` and note each line's ``action``."""
        assert self.proc.stdout is not None
        with self.log.open("wb") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                try:
                    action = str(json.loads(line).get("action", ""))
                except ValueError:
                    action = ""
                with self._changed:
                    self._actions.append(action)
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def lines_seen(self) -> int:
        with self._changed:
            return len(self._actions)

    def wait_for_action(self, action: str, timeout: float, since: int = 0) -> bool:
        """Block until the daemon logs ``action`` (after its first ``since`` lines); False if
        it exits or ``timeout`` s pass first. The daemon's own signal: no sleep, no polling."""
        give_up = time.monotonic() + timeout
        with self._changed:
            while action not in self._actions[since:]:
                left = give_up - time.monotonic()
                if self._ended or left <= 0:
                    return False
                self._changed.wait(left)
            return True

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
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait(10)
        else:
            code = self.proc.wait(10)
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

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
