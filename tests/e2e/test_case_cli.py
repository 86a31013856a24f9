"""The README's tour, run as a newcomer runs it: the installed command in an empty directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from .installed import InstalledCli

ROOT = Path(__file__).resolve().parents[2]
DK2020 = ROOT / "workflows" / "dk2020.yaml"


Cli = InstalledCli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    run = Cli(tmp_path)
    run("db", "upgrade")
    run("workflow", "load", str(DK2020))
    return run


def test_a_case_from_invited_to_a_decision(cli: Cli) -> None:
    opened = cli(
        "case", "open", "dk2020", "Aarhus", "--role", "follow_up", "--now", "2020-06-20T10:00+02:00"
    )
    assert "state invited" in opened.stdout
    shown = cli.json("case", "show", "Aarhus")
    assert isinstance(shown, dict)
    assert shown["state"] == "invited"
    assert {t["timer"] for t in shown["pending_timers"]} == {"reply_deadline"}
    assert shown["warnings"]  # no contacts imported: the mayor's mail will be parked

    # Refused: not valid from this state; nothing changes.
    refused = cli(
        "case", "fire", "Aarhus", "submit_application", "--role", "contact_person", code=3
    )
    assert "cannot fire in state 'invited'" in refused.stderr
    # Refused: a wrong value.
    bad = cli(
        "case",
        "fire",
        "Aarhus",
        "decide_participate",
        "--role",
        "council",
        "--data",
        "cohort=round1",
        "--data",
        "decision_date=tomorrow",
        "--data",
        "contact_person_name=Anna",
        "--data",
        "contact_person_email=anna@aarhus.example.dk",
        code=3,
    )
    assert "decision_date" in bad.stderr and "YYYY-MM-DD" in bad.stderr
    history = cli.json("case", "history", "Aarhus")
    assert isinstance(history, list) and len(history) == 1

    # Allowed: the council joins round 1 and names a contact person.
    moved = cli(
        "case",
        "fire",
        "Aarhus",
        "decide_participate",
        "--role",
        "council",
        "--data",
        "cohort=round1",
        "--data",
        "decision_date=2020-08-20",
        "--data",
        "contact_person_name=Anna Jensen",
        "--data",
        "contact_person_email=anna@aarhus.example.dk",
        "--comment",
        "Byrådet besluttede 20. august",
        "--now",
        "2020-08-20T15:00+02:00",
    )
    assert "state decided" in moved.stdout
    history = cli.json("case", "history", "Aarhus")
    assert isinstance(history, list)
    assert [e["kind"] for e in history] == ["opened", "transition"]
    assert history[1]["trigger"] == "decide_participate"
    assert history[1]["actor"] == "tester" and history[1]["role"] == "council"
    assert history[1]["comment"] == "Byrådet besluttede 20. august"
    table = cli("case", "history", "Aarhus").stdout
    assert "invited → decided" in table

    listed = cli.json("case", "list", "--state", "decided")
    assert isinstance(listed, list) and [c["organisation"] for c in listed] == ["Aarhus"]


def test_clear_errors_for_unknown_things(cli: Cli) -> None:
    assert "no case" in cli("case", "show", "Atlantis", code=1).stderr
    assert (
        "no organisation"
        in cli("case", "open", "dk2020", "Atlantis", "--role", "follow_up", code=1).stderr
    )
    assert (
        "no workflow" in cli("case", "open", "nope", "Aarhus", "--role", "follow_up", code=1).stderr
    )
    cli("case", "open", "dk2020", "Aarhus", "--role", "follow_up")
    assert (
        "not a trigger" in cli("case", "fire", "Aarhus", "fly", "--role", "council", code=3).stderr
    )
    assert "--now" in cli("case", "list", "--now", "next tuesday", code=2).stderr


def test_a_reason_with_control_characters_is_refused_not_a_crash(cli: Cli) -> None:
    refused = cli("case", "open", "dk2020", "Aarhus", "--reason", "late\x01", code=3)
    assert "control characters" in refused.stderr and "internal error" not in refused.stderr
    assert "no case" in cli("case", "show", "Aarhus", code=1).stderr  # nothing was opened


def test_commands_say_when_the_schema_is_behind(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    out = cli("case", "list", code=5)
    assert "dk2020flow db upgrade" in out.stderr
