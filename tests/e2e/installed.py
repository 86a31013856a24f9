"""The installed ``dk2020flow`` command, run as a user would: a subprocess in a folder of
the test's own, with none of the test runner's ``DK2020FLOW_*`` variables (the definition
cache in that folder), a wide terminal (rich tables do not wrap), the exit code checked and
never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any


class InstalledCli:
    def __init__(
        self, cwd: Path, *, db: str | None = None, actor: str = "tester", timeout: float = 120
    ) -> None:
        self.cwd = cwd
        self.db = db
        """Given: every command gets ``--db`` with it."""
        self.timeout = timeout
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
        self.env.update({"DK2020FLOW_ACTOR": actor, "COLUMNS": "200"})
        # The parsed-definition cache of this test's own, not the user's ~/.cache.
        self.env["DK2020FLOW_CACHE_DIR"] = str(cwd / ".dk2020flow-cache")

    def __call__(
        self, *args: str, code: int = 0, actor: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = self.env if actor is None else {**self.env, "DK2020FLOW_ACTOR": actor}
        done = subprocess.run(
            ["dk2020flow", *args, *(("--db", self.db) if self.db else ())],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)
