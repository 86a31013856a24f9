"""Output to a pipe or a log is not cut to 80 columns: whole values (#15.19)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DK2020 = ROOT / "workflows" / "dk2020.yaml"


def run(cwd: Path, *args: str) -> str:
    # No COLUMNS: rich would fall back to 80 columns when stdout is not a terminal.
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
    env = {k: v for k, v in env.items() if not k.startswith("DK2020FLOW_")}
    env["DK2020FLOW_ACTOR"] = "tester"
    done = subprocess.run(
        ["dk2020flow", *args],
        cwd=cwd,
        env=env,
        capture_output=True,  # stdout: a pipe
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_tables_in_a_pipe_carry_whole_values(tmp_path: Path) -> None:
    run(tmp_path, "db", "upgrade")
    run(tmp_path, "workflow", "load", str(DK2020))
    run(tmp_path, "case", "open", "dk2020", "Ringkøbing-Skjern", "--now", "2020-06-20T10:00+02:00")
    comment = "The council decided on 19 August 2020 to join DK2020 with the whole organisation"
    run(
        tmp_path,
        "case",
        "fire",
        "Ringkøbing-Skjern",
        "decide_participate",
        "--role",
        "council",
        "--data",
        "cohort=round1",
        "--data",
        "decision_date=2020-08-19",
        "--data",
        "contact_person_name=Anna Jensen",
        "--data",
        "contact_person_email=anna.jensen@rksk.example.dk",
        "--comment",
        comment,
        "--now",
        "2020-08-19T12:00+02:00",
    )
    history = run(tmp_path, "case", "history", "Ringkøbing-Skjern")
    assert "decide_participate" in history
    assert comment in history
    assert "…" not in history
    listed = run(tmp_path, "case", "list")
    assert "Ringkøbing-Skjern" in listed
    assert "…" not in listed
