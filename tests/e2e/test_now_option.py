"""`--now` is a rehearsal's clock: empty or unreadable is an error, never the real clock (#15.17c)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DK2020 = ROOT / "workflows" / "dk2020.yaml"


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env["DK2020FLOW_ACTOR"] = "tester"
    return subprocess.run(
        ["dk2020flow", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    here = tmp_path_factory.mktemp("now")
    assert run(here, "db", "upgrade").returncode == 0
    assert run(here, "workflow", "load", str(DK2020)).returncode == 0
    return here


COMMANDS = [
    ("case", "open", "dk2020", "Aarhus"),
    ("case", "list"),
    ("case", "list", "--overdue"),
    ("case", "show", "Aarhus"),
    ("case", "fire", "Aarhus", "decide_participate", "--role", "council"),
    ("case", "migrate", "dk2020"),
    ("scheduler", "run", "--once"),
    ("mail", "preview", "Aarhus", "invitation"),
]


CASES = (
    [(command, value) for command in COMMANDS for value in ("", "x" * 5000)]
    + [
        (("case", "open", "dk2020", "Aarhus"), value)
        for value in ("   ", "yesterday", "2020-13-45")
    ]
    + [
        (
            (
                "case",
                "extend",
                "Aarhus",
                "reply_deadline",
                "--role",
                "secretariat",
                "--reason",
                "r",
            ),
            f"--to={'x' * 5000}",
        ),
        (("outbox", "purge"), f"--sent-before={'x' * 5000}"),
    ]
)


@pytest.mark.parametrize(("command", "value"), CASES, ids=lambda v: " ".join(v)[:40])
def test_an_empty_or_unreadable_now_is_refused(
    folder: Path, command: tuple[str, ...], value: str
) -> None:
    option = ["--now", value] if not value.startswith("--") else [value]
    done = run(folder, *command, *option)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert (option[0] if len(option) == 2 else value.split("=", maxsplit=1)[0]) in lines[0]
    assert len(lines[0]) < 400  # the 5,000 characters are cut, not echoed whole
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_nothing_was_opened(folder: Path) -> None:
    done = run(folder, "case", "list", "--json")
    assert done.returncode == 0
    assert done.stdout.strip() == "[]"
