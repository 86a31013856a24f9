"""The docs say what the code does (#15.21): references exist, every option documented in
docs/commands.md exists, the actor of timer events, and the README's simulation claims."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

from dk2020flow.engine.decide import SYSTEM_ACTOR

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
GROUPS = {
    "case",
    "db",
    "participants",
    "workflow",
    "scheduler",
    "outbox",
    "mail",
    "users",
    "tokens",
    "webhooks",
}
SINGLE = {"simulate", "report", "demo", "version", "serve"}


def _help(*command: str) -> str:
    env = {**os.environ, "COLUMNS": "250"}
    done = subprocess.run(
        ["dk2020flow", *command, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout


def test_every_markdown_file_the_docs_name_exists() -> None:
    missing = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
            for name in re.findall(r"(?<![\w/.-])([A-Za-z][\w-]*\.md)\b", line):
                if not any((where / name).is_file() for where in (doc.parent, ROOT, ROOT / "docs")):
                    missing.append(f"{doc.name}:{number}: {name}")
    assert missing == []


def test_every_option_in_the_command_reference_exists() -> None:
    wrong = []
    helps: dict[tuple[str, ...], set[str]] = {}
    text = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        row = re.match(r"\| `([a-z]+)(?: ([a-z][a-z-]*))?([^`]*)`", line)
        if row is None or row.group(1) not in GROUPS | SINGLE:
            continue
        command = (row.group(1), row.group(2)) if row.group(1) in GROUPS else (row.group(1),)
        command = tuple(c for c in command if c)
        if command not in helps:
            helps[command] = set(re.findall(r"--[a-z][a-z-]*", _help(*command)))
        for option in re.findall(r"--[a-z][a-z-]*", line.split("|")[1]):
            if option not in helps[command]:
                wrong.append(f"commands.md:{number}: {' '.join(command)} has no {option}")
    assert wrong == []


def test_the_actor_of_timer_events_is_the_one_logged() -> None:
    model = (ROOT / "docs" / "data-model.md").read_text(encoding="utf-8")
    (row,) = [line for line in model.splitlines() if line.startswith("| `actor`, `role`")]
    assert f"`{SYSTEM_ACTOR}`" in row
    assert "`scheduler`" not in row


def test_the_readme_says_what_the_simulation_prints(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("To see a whole programme") :].split("\n\n")[0]
    paragraph = " ".join(paragraph.split())
    claim = re.search(r"runs (\d+ \w+ \d{4}) to (\d+ \w+ \d{4})", paragraph)
    assert claim is not None, paragraph
    mails = re.search(r"([\d,]+) mails", paragraph)
    assert mails is not None, paragraph
    done = subprocess.run(
        ["dk2020flow", "simulate", "dk2020", "--seed", "1", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result = json.loads(done.stdout)
    copenhagen = ZoneInfo("Europe/Copenhagen")

    def day(key: str) -> str:
        return f"{dt.datetime.fromisoformat(result[key]).astimezone(copenhagen):%-d %B %Y}"

    assert (claim.group(1), claim.group(2)) == (day("start"), day("end"))
    sent = result["summary"]["mail"]["sent"]
    assert abs(int(mails.group(1).replace(",", "")) - sent) <= sent * 0.1
    assert "under ten seconds" not in paragraph
