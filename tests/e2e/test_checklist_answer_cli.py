"""`case check` then `case answer`: the CAPF screening's comments answered from the command
line, the revision loop (`request_revision`, `resubmit_plan`) and `case verify` after it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dk2020flow.service.filetypes import sample

from .installed import InstalledCli

ROOT = Path(__file__).resolve().parents[2]
DK2020 = ROOT / "workflows" / "dk2020.yaml"
START = "2022-03-01T10:00+01:00"
SCREENED = "2022-04-01T10:00+02:00"
ANSWERED = "2022-04-20T10:00+02:00"


class Cli(InstalledCli):
    def __init__(self, cwd: Path) -> None:
        super().__init__(cwd, actor="Anna Jensen")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    run = Cli(tmp_path)
    run("db", "upgrade")
    run("workflow", "load", str(DK2020))
    return run


def _hand_in_plan(cli: Cli, tmp_path: Path, trigger: str, now: str) -> None:
    plan = tmp_path / f"{trigger}.pdf"
    plan.write_bytes(sample("pdf", "Aarhus' klimaplan"))
    cli(
        "case",
        "attach",
        "Aarhus",
        "draft_plan",
        str(plan),
        "--role",
        "contact_person",
        "--now",
        now,
    )
    cli(
        "case", "fire", "Aarhus", trigger, "--role", "contact_person", "--now", now,
        "--data", "plan_url=https://aarhus.example.dk/plan.pdf",
    )  # fmt: skip


def _capf(cli: Cli) -> dict[str, dict[str, str]]:
    shown = cli.json("case", "show", "Aarhus")
    checklists = shown["checklists"]
    assert isinstance(checklists, dict)
    capf = checklists["capf"]
    assert isinstance(capf, dict)
    return capf


def test_the_contact_person_answers_the_screening_and_resubmits(cli: Cli, tmp_path: Path) -> None:
    cli(
        "case", "open", "dk2020", "Aarhus", "--role", "secretariat", "--state", "drafting",
        "--reason", "joined mid-round", "--now", START,
    )  # fmt: skip
    _hand_in_plan(cli, tmp_path, "submit_plan", START)
    items = [f"{item}=met" for item in ("P1.1", "P1.2", "P1.3", "P1.4", "P1.5", "P2.1", "P2.2")]
    items += [f"{item}=met" for item in ("P2.4", "P2.5", "P3.1", "P3.2", "P3.3", "P3.4", "P3.6")]
    cli("case", "check", "Aarhus", "capf", *items, "--role", "secretariat", "--now", SCREENED)
    cli(
        "case", "check", "Aarhus", "capf", "P2.3=not_met", "P3.5=not_met", "--role",
        "secretariat", "--comment", "Mangler transport i basisåret.", "--now", SCREENED,
    )  # fmt: skip
    cli("case", "fire", "Aarhus", "request_revision", "--role", "secretariat", "--now", SCREENED)

    # The text view lists the items that need revision, with the comment and no answer yet.
    shown = cli("case", "show", "Aarhus").stdout
    assert "P2.3 not_met: Mangler transport i basisåret.; not answered" in shown

    # A role outside answered_by is refused (exit 3), and nothing changes.
    refused = cli(
        "case", "answer", "Aarhus", "capf", "P2.3=Rettet.", "--role", "secretariat", code=3
    )
    assert "may not answer capf" in refused.stderr
    # An item that does not need revision: refused (exit 3) in one clear line.
    met = cli("case", "answer", "Aarhus", "capf", "P1.1=Tak.", "--role", "contact_person", code=3)
    assert "P1.1 does not need revision" in met.stderr
    assert len(met.stderr.strip().splitlines()) == 1
    bad = cli("case", "answer", "Aarhus", "capf", "P2.3", "--role", "contact_person", code=2)
    assert "ITEM=ANSWER" in bad.stderr
    assert all(v.get("answer", "") == "" for v in _capf(cli).values())

    answered = cli(
        "case", "answer", "Aarhus", "capf", "P2.3=Transport er med i bilag B.",
        "P3.5=Effekterne står nu i tabel 4.", "--role", "contact_person", "--now", ANSWERED,
    )  # fmt: skip
    assert "capf answered" in answered.stdout
    capf = _capf(cli)
    assert capf["P2.3"] == {
        "status": "not_met",
        "comment": "Mangler transport i basisåret.",
        "answer": "Transport er med i bilag B.",
    }
    assert capf["P3.5"]["answer"] == "Effekterne står nu i tabel 4."
    history = json.loads(cli("case", "history", "Aarhus", "--json").stdout)
    answers = [e for e in history if e["kind"] == "checklist_answer"]
    assert len(answers) == 1
    assert answers[0]["actor"] == "Anna Jensen" and answers[0]["role"] == "contact_person"

    # The loop: the revised plan goes back to screening, the reviewer marks the items met.
    _hand_in_plan(cli, tmp_path, "resubmit_plan", ANSWERED)
    assert cli.json("case", "show", "Aarhus")["state"] == "screening"
    cli(
        "case", "check", "Aarhus", "capf", "P2.3=met", "P3.5=met", "--role", "approver",
        "--now", ANSWERED,
    )  # fmt: skip
    cli("case", "fire", "Aarhus", "pass_screening", "--role", "secretariat", "--now", ANSWERED)
    assert cli.json("case", "show", "Aarhus")["state"] == "approval"
    # The log replays to the stored case, answers included, and the hash chain holds.
    cli("case", "verify", "--all")
