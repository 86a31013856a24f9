"""A read command imports only what it needs (#15.18; bench/startup.py measures the time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dk2020flow.store.db import HEAD_REVISION, head_revision, upgrade

PROBE = """
import sys
from dk2020flow.cli import app
sys.argv = ["dk2020flow", *sys.argv[1:]]
try:
    app()
except SystemExit:
    pass
heavy = ("alembic", "dk2020flow.service.core", "dk2020flow.notify.render", "icalendar", "holidays",
         "jinja2", "dk2020flow.definition.loader", "dk2020flow.engine.decide")
print("imported:" + ",".join(name for name in heavy if name in sys.modules), file=sys.stderr)
"""


def _imported(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("imported:"), done.stderr
    return [name for name in last.removeprefix("imported:").split(",") if name]


def test_the_fast_schema_check_knows_the_newest_migration() -> None:
    assert head_revision() == HEAD_REVISION, "update store/db.py HEAD_REVISION"


def test_case_list_imports_neither_alembic_nor_the_engine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'small.db'}"
    upgrade(url)
    assert _imported("case", "list", "--db", url) == []
    assert _imported("case", "list", "--help") == []
