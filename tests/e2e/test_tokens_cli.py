"""`dk2020flow tokens create|list|revoke`, run as the installed command, and the tokens
tried on `dk2020flow serve`'s API as a client would (a real uvicorn on loopback)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from api.served import serve

from .test_case_cli import Cli

ROOT = Path(__file__).resolve().parents[2]
DK2020 = ROOT / "workflows" / "dk2020.yaml"
SECRET = re.compile(r"dkf_[A-Za-z0-9_-]{43}")
SERVED_FROM = "2021-06-01T10:00"
"""The server's clock starts here (and runs on)."""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    run = Cli(tmp_path)
    run("db", "upgrade")
    run("workflow", "load", str(DK2020))
    return run


@pytest.fixture
def served(cli: Cli) -> Iterator[str]:
    """The API of ``dk2020flow serve`` on the cli's database, its clock from SERVED_FROM."""
    with serve(
        f"sqlite:///{cli.cwd / 'dk2020flow.db'}", cli.cwd, env=cli.env, now=SERVED_FROM
    ) as url:
        yield url


def created_secret(done: subprocess.CompletedProcess[str]) -> str:
    found = SECRET.findall(done.stdout)
    assert len(found) == 1, done.stdout
    return found[0]


def test_create_shows_the_secret_once_and_list_never(cli: Cli) -> None:
    done = cli(
        "tokens", "create", "kl-dashboard", "--role", "follow_up", "--role", "read_only",
        "--expires", "90d", "--now", "2021-06-01T09:00",
    )  # fmt: skip
    secret = created_secret(done)
    assert "token kl-dashboard created with roles follow_up, read_only" in done.stdout
    assert "until 2021-08-30 09:00 +0200" in done.stdout
    assert "not shown again" in done.stdout

    table = cli("tokens", "list", "--now", "2021-06-02").stdout
    assert "kl-dashboard" in table and f"{secret[:8]}…" in table and "active" in table
    listed = cli("tokens", "list", "--json", "--now", "2021-06-02").stdout
    assert secret not in table and secret not in listed
    (row,) = json.loads(listed)
    assert row["name"] == "kl-dashboard" and row["hint"] == secret[:8]
    assert row["roles"] == ["follow_up", "read_only"] and row["status"] == "active"
    assert row["created_by"] == "tester" and "secret" not in row
    assert (
        json.loads(cli("tokens", "list", "--json", "--now", "2021-09-01").stdout)[0]["status"]
        == "expired"
    )

    revoked = cli("tokens", "revoke", "kl-dashboard")
    assert "token kl-dashboard revoked" in revoked.stdout
    (row,) = json.loads(cli("tokens", "list", "--json").stdout)
    assert row["status"] == "revoked" and row["revoked_at"]
    # A script may take the secret from --json, once too.
    scripted = json.loads(cli("tokens", "create", "ci", "-r", "secretariat", "--json").stdout)
    assert SECRET.fullmatch(scripted["secret"]) and scripted["name"] == "ci"


BAD = [
    (
        ["x", "--role", "mayor_of_rome"],
        "role 'mayor_of_rome' is not one of: admin, read_only, mayor, council",
    ),
    (["x", "--role", "admin", "--expires", "soon"], "--expires: 'soon' is neither"),
    (["x", "--role", "admin", "--expires", "2020-01-01"], "is not in the future"),
    (["a b", "--role", "admin"], "may have letters, digits"),
    (["kl", "--role", "admin"], "already a token named 'kl'"),
]


def test_bad_input_is_one_line_exit_2_and_changes_nothing(cli: Cli) -> None:
    cli("tokens", "create", "kl", "--role", "follow_up")
    before = cli("tokens", "list", "--json").stdout
    for args, message in BAD:
        done = cli("tokens", "create", *args, code=2)
        assert message in done.stderr, args
        assert done.stderr.strip().startswith("error: ")
        assert len(done.stderr.strip().splitlines()) == 1
    assert "--role" in cli("tokens", "create", "x", code=2).stderr  # typer's usage message
    assert cli("tokens", "list", "--json").stdout == before
    missing = cli("tokens", "revoke", "nobody", code=1)
    assert "error: there is no API token named 'nobody'" in missing.stderr


def test_a_revoked_or_expired_token_no_longer_authenticates(cli: Cli, served: str) -> None:
    live = created_secret(cli("tokens", "create", "live", "-r", "follow_up", "--now", "2021-06-01"))
    # Expired half an hour before the server's clock starts.
    stale = created_secret(
        cli("tokens", "create", "stale", "-r", "follow_up",
            "--now", "2021-05-01", "--expires", "2021-06-01T09:30")
    )  # fmt: skip
    with httpx.Client(base_url=served) as http:

        def status(secret: str | None) -> int:
            headers = {"Authorization": f"Bearer {secret}"} if secret else {}
            answer = http.get("/api/v1/organisations", headers=headers)
            if answer.status_code == 401:
                assert answer.headers["WWW-Authenticate"].startswith("Bearer")
            return answer.status_code

        assert status(live) == 200
        assert status(stale) == 401
        assert status(None) == 401
        assert status("dkf_" + "x" * 43) == 401
        cli("tokens", "revoke", "live")
        assert status(live) == 401
