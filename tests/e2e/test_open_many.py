"""`case open WORKFLOW --all | --from FILE`: many cases in one call and one transaction (#15.18),
and an organisation code is never read as a case number (#15.17b)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .installed import InstalledCli

ROOT = Path(__file__).resolve().parents[2]
NOW = ("--now", "2020-06-20T10:00+02:00")


class Cli(InstalledCli):
    def __init__(self, cwd: Path) -> None:
        super().__init__(cwd, timeout=300)

    def cases(self, workflow: str) -> list[dict[str, object]]:
        found = self.json("case", "list", "--workflow", workflow)
        assert isinstance(found, list)
        return found


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    run = Cli(tmp_path)
    run("db", "upgrade")
    run("workflow", "load", str(ROOT / "workflows" / "status_reports.yaml"))
    run("workflow", "load", str(ROOT / "workflows" / "dk2020.yaml"))
    return run


def test_the_issues_scenario(cli: Cli) -> None:
    opened = cli("case", "open", "status_reports", "--all", *NOW)
    assert "opened 98 case(s)" in opened.stdout
    for name in ("Aarhus", "Odense", "Aalborg"):
        cli("case", "open", "dk2020", name, *NOW)
    # København's code 101 is the number of Aalborg's case: still a new case for København.
    kbh = json.loads(cli("case", "open", "dk2020", "København", *NOW, "--json").stdout)
    assert (kbh["organisation"], kbh["id"]) == ("København", 102)
    assert json.loads(cli("case", "show", "#101", "--json").stdout)["organisation"] == "Aalborg"
    shown = json.loads(cli("case", "show", "101", "-w", "dk2020", "--json").stdout)
    assert shown["organisation"] == "København"
    again = cli("case", "open", "dk2020", "København", *NOW, code=3)
    assert "København already has case #102" in again.stderr


def test_from_a_file_all_or_nothing(cli: Cli, tmp_path: Path) -> None:
    listing = tmp_path / "invite.txt"
    listing.write_text("# the first round\n101\n\n  Aarhus  \nAtlantis\nodense\n", encoding="utf-8")
    refused = cli("case", "open", "dk2020", "--from", str(listing), *NOW, code=1)
    assert f"{listing}:5: no organisation 'Atlantis'" in refused.stderr
    assert "nothing was opened" in refused.stderr
    assert cli.cases("dk2020") == []

    listing.write_text("101\nAarhus\nodense\n751\n", encoding="utf-8")
    repeated = cli("case", "open", "dk2020", "--from", str(listing), *NOW, code=1)
    assert f"{listing}:4: Aarhus is also on {listing}:2" in repeated.stderr
    assert cli.cases("dk2020") == []

    cli("case", "open", "dk2020", "Aarhus", *NOW)
    listing.write_text("101\nAarhus\nodense\n", encoding="utf-8")
    done = cli("case", "open", "dk2020", "--from", str(listing), *NOW)
    assert "opened 2 case(s)" in done.stdout
    assert "skipped 1" in done.stdout and "Aarhus (#1)" in done.stdout
    assert sorted(str(c["organisation"]) for c in cli.cases("dk2020")) == [
        "Aarhus",
        "København",
        "Odense",
    ]
    rest = json.loads(cli("case", "open", "dk2020", "--all", *NOW, "--json").stdout)
    assert (len(rest["opened"]), len(rest["skipped"])) == (95, 3)


def test_one_way_to_name_who(cli: Cli, tmp_path: Path) -> None:
    assert "--all" in cli("case", "open", "dk2020", *NOW, code=2).stderr
    both = cli("case", "open", "dk2020", "Aarhus", "--all", *NOW, code=2)
    assert "--all" in both.stderr
    missing = cli("case", "open", "dk2020", "--from", str(tmp_path / "nope.txt"), *NOW, code=2)
    assert "nope.txt" in missing.stderr
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("K\xf8benhavn\n".encode("latin-1"))
    assert "UTF-8" in cli("case", "open", "dk2020", "--from", str(latin1), code=2).stderr
    assert cli.cases("dk2020") == []
