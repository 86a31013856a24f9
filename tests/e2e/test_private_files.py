"""No file in a shared, world-readable temporary folder; nothing left behind (#15.20)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DK2020 = ROOT / "workflows" / "dk2020.yaml"


def run(cwd: Path, tmp: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env["DK2020FLOW_ACTOR"] = "tester"
    env["TMPDIR"] = str(tmp)  # where tempfile puts its folders: watched by the test
    done = subprocess.run(
        ["dk2020flow", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_mail_preview_writes_only_where_asked(tmp_path: Path) -> None:
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    run(work, tmp, "db", "upgrade")
    run(work, tmp, "workflow", "load", str(DK2020))
    run(work, tmp, "case", "open", "dk2020", "Aarhus", "--now", "2020-06-20T10:00+02:00")
    shown = run(work, tmp, "mail", "preview", "Aarhus", "decision_reminder")
    assert "Subject:" in shown
    assert list(tmp.iterdir()) == []  # no /tmp/dk2020flow-preview for everyone to read
    assert sorted(p.name for p in work.iterdir()) == ["dk2020flow.db"]

    saved = work / "previews"
    shown = run(work, tmp, "mail", "preview", "Aarhus", "decision_reminder", "--out", str(saved))
    (html,) = saved.iterdir()
    assert html.name == "Aarhus-decision_reminder.da.html"
    assert str(html) in shown
    assert "<" in html.read_text(encoding="utf-8")
    assert list(tmp.iterdir()) == []


def test_simulate_leaves_no_timeline_behind(tmp_path: Path) -> None:
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    period = ("--from", "2020-06-01", "--to", "2020-09-30")
    shown = run(work, tmp, "simulate", str(DK2020), *period)
    assert "--out" in shown  # says where the whole timeline would go
    assert list(tmp.iterdir()) == []
    assert list(work.iterdir()) == []

    out = work / "run"
    shown = run(work, tmp, "simulate", str(DK2020), *period, "--out", str(out))
    timeline = out / "timeline.txt"
    assert timeline.is_file()
    assert str(timeline) in shown
    assert list(tmp.iterdir()) == []
