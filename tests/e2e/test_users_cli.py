"""`dk2020flow users add|list|disable`, run as the installed command on a fresh SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .installed import InstalledCli


class Cli(InstalledCli):
    def __init__(self, cwd: Path) -> None:
        super().__init__(cwd, db=f"sqlite:///{cwd / 'console.db'}")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    run = Cli(tmp_path)
    run("db", "upgrade")
    return run


def test_add_list_disable(cli: Cli) -> None:
    added = cli(
        "users", "add", "Mette@KL.example.dk", "--name", "Mette Hansen",
        "--role", "secretariat", "--role", "admin", "--language", "en",
    )  # fmt: skip
    assert "user mette@kl.example.dk (Mette Hansen) added with roles secretariat, admin" in (
        added.stdout
    )
    cli("users", "add", "ro@kl.example.dk", "--name", "Reader", "-r", "read_only")

    table = cli("users", "list").stdout
    assert "mette@kl.example.dk" in table and "secretariat, admin" in table and "active" in table

    rows = json.loads(cli("users", "list", "--json").stdout)
    assert [(r["email"], r["roles"], r["language"], r["active"]) for r in rows] == [
        ("mette@kl.example.dk", ["secretariat", "admin"], "en", True),
        ("ro@kl.example.dk", ["read_only"], "en", True),  # no workflow yet: English
    ]

    gone = cli("users", "disable", "RO@kl.example.dk")
    assert "user ro@kl.example.dk disabled" in gone.stdout
    rows = json.loads(cli("users", "list", "--json").stdout)
    assert [r["active"] for r in rows] == [True, False]
    assert rows[1]["disabled_at"]


def test_bad_input_is_one_line_and_exit_2(cli: Cli) -> None:
    bad_role = cli("users", "add", "a@example.dk", "--name", "A", "--role", "Mayor", code=2)
    assert bad_role.stderr.strip().startswith("error: role 'Mayor' is not a role name")
    assert len(bad_role.stderr.strip().splitlines()) == 1
    bad_mail = cli("users", "add", "not-mail", "--name", "A", "--role", "admin", code=2)
    assert "error: e-mail 'not-mail' is not valid" in bad_mail.stderr
    bad_lang = cli(
        "users", "add", "a@example.dk", "--name", "A", "--role", "admin", "--language", "DE",
        code=2,
    )  # fmt: skip
    assert "language 'DE' is not a language code" in bad_lang.stderr
    no_role = cli("users", "add", "a@example.dk", "--name", "A", code=2)
    assert "--role" in no_role.stderr
    assert json.loads(cli("users", "list", "--json").stdout) == []

    cli("users", "add", "a@example.dk", "--name", "A", "--role", "admin")
    twice = cli("users", "add", "a@example.dk", "--name", "A", "--role", "admin", code=2)
    assert "already an account for a@example.dk" in twice.stderr
    unknown = cli("users", "disable", "nobody@example.dk", code=1)
    assert "error: there is no account for nobody@example.dk" in unknown.stderr


ROOT = Path(__file__).resolve().parents[2]


def test_a_role_no_loaded_workflow_names_is_refused(cli: Cli) -> None:
    """On an EU Mission database `--role secretariat` (DK2020's) is refused with the roles
    there are, as `case open --role` refuses it; nothing is written (#18)."""
    cli("workflow", "load", str(ROOT / "workflows" / "eu_mission.yaml"))
    refused = cli(
        "users", "add", "a@example.eu", "--name", "A", "--role", "secretariat", code=2
    )  # fmt: skip
    message = refused.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: role 'secretariat' is not one of: mayor, city_coordinator")
    assert "mission_platform" in message and message.endswith(
        "admin, read_only (the roles of the loaded workflows, admin and read_only)"
    )
    assert json.loads(cli("users", "list", "--json").stdout) == []

    added = cli(
        "users", "add", "b@example.eu", "--name", "B", "-r", "mission_platform", "-r", "admin"
    )  # fmt: skip
    assert "added with roles mission_platform, admin" in added.stdout
    assert "note:" not in added.stderr
    assert json.loads(cli("users", "list", "--json").stdout)[0]["language"] == "en"
    assert [r["email"] for r in json.loads(cli("users", "list", "--json").stdout)] == [
        "b@example.eu"
    ]


def test_before_a_workflow_is_loaded_a_role_name_is_accepted_with_a_note(cli: Cli) -> None:
    """A database with no workflow yet cannot tell its roles: `users add` may still come
    first (the admin's account), a role is checked to be a role name, and it says so."""
    added = cli("users", "add", "c@example.eu", "--name", "C", "--role", "secretariat")
    assert "added with roles secretariat" in added.stdout
    assert "note: no workflow is loaded yet" in added.stderr


def test_renew_link_key_is_a_dry_run_without_yes(cli: Cli) -> None:
    from sqlalchemy import create_engine, text

    def keys() -> list[int]:
        engine = create_engine(cli.db)
        try:
            with engine.connect() as conn:
                return [int(r[0]) for r in conn.execute(text("SELECT id FROM link_keys"))]
        finally:
            engine.dispose()

    before = keys()
    dry = cli("users", "renew-link-key")
    assert "would renew the case-link key" in dry.stdout
    assert "every case link in mail already sent stops working" in dry.stdout
    assert "one-time link still works" in dry.stdout
    assert "dry run: nothing changed; add --yes" in dry.stdout
    assert keys() == before
    done = cli("users", "renew-link-key", "--yes")
    assert "renewed the case-link key" in done.stdout
    [new] = [k for k in keys() if k not in before]
    assert f"(key {new})" in done.stdout
    again = cli("users", "renew-link-key", "--yes")
    assert len(keys()) == len(before) + 2 and "renewed" in again.stdout
