"""`case attach`, `case documents`, `case download`: the installed command, as a secretariat
runs it, with the database storage and with a directory."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from dk2020flow.service.filetypes import sample

ROOT = Path(__file__).resolve().parents[2]
DK2020 = ROOT / "workflows" / "dk2020.yaml"
NOW = "2020-08-20T15:00+02:00"
LATER = "2020-09-01T10:00+02:00"


class Cli:
    def __init__(self, cwd: Path, **env: str) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
        self.env.update({"DK2020FLOW_ACTOR": "Anna Jensen", "COLUMNS": "200", **env})

    def __call__(
        self, *args: str, code: int = 0, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(
            ["dk2020flow", *args],
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        assert b"Traceback" not in done.stderr
        return done

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture(params=["database", "directory"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    env: dict[str, str] = {}
    if request.param == "directory":
        (tmp_path / "documents").mkdir()
        env = {
            "DK2020FLOW_DOCUMENT_STORAGE": "directory",
            "DK2020FLOW_DOCUMENT_DIRECTORY": str(tmp_path / "documents"),
        }
    run = Cli(tmp_path, **env)
    run("db", "upgrade")
    run("workflow", "load", str(DK2020), "--now", "2020-06-20T10:00+02:00")
    run("case", "open", "dk2020", "Aarhus", "--role", "follow_up", "--now", NOW)
    run(
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
        "--now",
        NOW,
    )
    return run


def test_attach_list_download_and_the_trigger_that_needs_it(cli: Cli, tmp_path: Path) -> None:
    submit = (
        "case",
        "fire",
        "Aarhus",
        "submit_application",
        "--role",
        "contact_person",
        "--data",
        "commitment_signed=true",
        "--data",
        "staff_hours_per_week=30",
        "--now",
        LATER,
    )
    refused = cli(*submit, code=3)
    assert b"needs the document application" in refused.stderr

    # A picture named .pdf is refused by its content, and nothing is stored.
    (tmp_path / "in").mkdir()
    fake = tmp_path / "in" / "ansøgning.pdf"
    fake.write_bytes(sample("png"))
    wrong = cli(
        "case", "attach", "Aarhus", "application", str(fake), "--role", "contact_person", code=3
    )
    assert b"is a PNG image by its content" in wrong.stderr
    assert b"nothing was stored" in wrong.stderr
    listed = cli.json("case", "documents", "Aarhus")
    assert isinstance(listed, dict) and listed["documents"] == []
    assert len(wrong.stderr.strip().splitlines()) == 1  # one line, no traceback

    real = tmp_path / "in" / "Ansøgning DK2020.pdf"
    data = sample("pdf", "Aarhus Kommunes ansøgning") + b"%" * 300_000
    real.write_bytes(data)
    attached = cli.json(
        "case",
        "attach",
        "Aarhus",
        "application",
        str(real),
        "--role",
        "contact_person",
        "--now",
        LATER,
    )
    assert isinstance(attached, dict)
    assert attached["sha256"] == hashlib.sha256(data).hexdigest()
    assert attached["filename"] == "Ansøgning DK2020.pdf"
    assert attached["uploaded_by"] == "Anna Jensen"
    assert attached["uploaded_role"] == "contact_person"
    assert attached["content_type"] == "application/pdf"

    moved = cli(*submit)
    assert b"state application_submitted" in moved.stdout

    listed = cli.json("case", "documents", "Aarhus")
    assert isinstance(listed, dict)
    assert [d["id"] for d in listed["documents"]] == [attached["id"]]
    declared = {d["document"]: d for d in listed["declared"]}
    assert {"application", "draft_plan", "council_decision"} <= set(declared)
    table = cli("case", "documents", "Aarhus").stdout.decode()
    assert "Ansøgning DK2020.pdf" in table and "application/pdf" in table

    out = tmp_path / "copy.pdf"
    cli("case", "download", "Aarhus", str(attached["id"]), "-o", str(out))
    assert out.read_bytes() == data
    again = cli("case", "download", "Aarhus", str(attached["id"]), "-o", str(out), code=2)
    assert b"exists" in again.stderr
    piped = cli("case", "download", "Aarhus", str(attached["id"]), "-o", "-")
    assert piped.stdout == data
    cli("case", "download", "Aarhus", str(attached["id"]))  # its own name, here
    assert (tmp_path / "Ansøgning DK2020.pdf").read_bytes() == data

    history = cli.json("case", "history", "Aarhus")
    assert isinstance(history, list)
    assert [e["kind"] for e in history][-2:] == ["document", "transition"]
    cli("case", "verify", "Aarhus")  # the document event is in the hash chain; the log replays


def test_standard_input_and_bad_input(cli: Cli) -> None:
    named = cli(
        "case",
        "attach",
        "Aarhus",
        "application",
        "-",
        "--name",
        "ansøgning.odt",
        "--role",
        "contact_person",
        "--json",
        stdin=sample("odt"),
    )
    assert json.loads(named.stdout)["filename"] == "ansøgning.odt"
    unnamed = cli(
        "case",
        "attach",
        "Aarhus",
        "application",
        "-",
        "--role",
        "contact_person",
        "--json",
        stdin=sample("docx"),
    )
    assert json.loads(unnamed.stdout)["filename"] == "application.docx"  # named for it

    missing = cli(
        "case", "attach", "Aarhus", "application", "nosuch.pdf", "--role", "contact_person", code=2
    )
    assert b"cannot read nosuch.pdf" in missing.stderr
    unknown = cli("case", "attach", "Aarhus", "aplication", "-", "--role", "contact_person", code=3)
    assert b"is not a document of dk2020" in unknown.stderr
    mayor = cli("case", "attach", "Aarhus", "application", "-", "--role", "mayor", code=3)
    assert b"may not upload" in mayor.stderr
    nothing = cli("case", "download", "Aarhus", "999", code=1)
    assert b"has no document 999" in nothing.stderr
