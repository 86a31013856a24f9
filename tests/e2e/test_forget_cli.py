"""`dk2020flow participants forget EMAIL [--yes]`, run as the installed command on a real
database (SQLite and PostgreSQL): a dry run changes nothing; --yes removes the person's
contact rows, account and sessions and redacts the mail to them in one transaction, while
`case verify --all` still passes and the history reads with "(forgotten person)"."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import String, Text, create_engine, func, insert, select
from sqlalchemy import cast as sql_cast

from dk2020flow.store import tables as t

from .installed import InstalledCli

ANNA = "anna@aarhus.example.dk"
ANNA_NAME = "Anna Jensen"
OLE = "ole@odense.example.dk"
NOW = "2020-08-20T15:00+02:00"
AT = dt.datetime(2020, 8, 20, 13, 0, tzinfo=dt.UTC)
KEPT_AS_AUDIT = {"events", "cases"}
"""The append-only, hash-chained history and the case rows it replays to: kept as they
are, shown with the replacement (docs/portal.md "Your data (GDPR)")."""


class Cli(InstalledCli):
    def __init__(self, cwd: Path, db: str) -> None:
        super().__init__(cwd, db=db, actor="secretariat@kl.example.dk")


def _programme(cli: Cli, db_url: str, tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "organisation,role,name,email,language\n"
        f"Aarhus,contact_person,{ANNA_NAME},{ANNA},en\n"
        f"Odense,contact_person,Ole Hansen,{OLE},da\n",
        encoding="utf-8",
    )
    cli("participants", "import", str(contacts))
    cli("workflow", "load", "dk2020", "--now", "2020-06-20T10:00+02:00")
    for name in ("Aarhus", "Odense"):
        cli(
            "case", "open", "dk2020", name, "--role", "follow_up", "--now", "2020-06-20T10:00+02:00"
        )
    cli(
        "case", "fire", "Aarhus", "decide_participate", "--role", "council",
        "--data", "cohort=round1", "--data", "decision_date=2020-08-20",
        "--data", f"contact_person_name={ANNA_NAME}", "--data", f"contact_person_email={ANNA}",
        "--now", NOW, actor=ANNA,
    )  # fmt: skip
    # Her portal account, a session and two access log lines (one by her, one about her),
    # as the web application writes them.
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            user_id = conn.execute(
                insert(t.users).returning(t.users.c.id),
                {
                    "email": ANNA, "name": ANNA_NAME, "kind": "participant", "roles": [],
                    "organisation_code": None, "language": "en", "active": True,
                    "created_at": AT, "disabled_at": None, "oidc_subject": None,
                },
            ).scalar_one()  # fmt: skip
            conn.execute(
                insert(t.web_sessions),
                {
                    "user_id": user_id, "token_hash": "a" * 64, "created_at": AT,
                    "last_seen_at": AT, "expires_at": AT + dt.timedelta(days=1),
                    "revoked_at": None, "user_agent": "pytest", "client": "127.0.0.1",
                    "method": "link",
                },
            )  # fmt: skip
            key = "email:" + hashlib.sha256(ANNA.encode()).hexdigest()
            conn.execute(insert(t.sign_in_attempts), {"key": key, "at": AT})
            common = {"at": AT, "action": "read", "via": "portal", "case_id": 1}
            conn.execute(
                insert(t.access_log),
                [
                    {**common, "actor": ANNA, "actor_kind": "participant", "what": "case"},
                    {
                        **common, "actor": ANNA, "actor_kind": "participant",
                        "what": "my_data", "subject": ANNA,
                    },
                    {**common, "actor": OLE, "actor_kind": "participant", "what": "case"},
                ],
            )  # fmt: skip
            conn.execute(
                insert(t.outbox),
                {
                    "case_id": None, "template": "decision_confirmation", "language": "en",
                    "to_addresses": [[ANNA_NAME, ANNA]], "cc_addresses": [],
                    "subject": f"Hello {ANNA_NAME}", "text": f"Dear {ANNA_NAME} ({ANNA})",
                    "html": f"<p>Dear {ANNA_NAME}</p>", "ics": None, "status": "sent",
                    "attempts": 1, "not_before": AT, "next_attempt_at": AT,
                    "lease_until": None, "last_error": "", "created_at": AT, "sent_at": AT,
                    "dead_at": None, "urgent": False, "reason": "", "message_id": "<m1@x>",
                    "intent": None,
                },
            )  # fmt: skip
    finally:
        engine.dispose()


def _mentions(db_url: str, *needles: str) -> dict[str, list[Any]]:
    """Every table.column (text, or JSON as text) holding one of ``needles``."""
    found: dict[str, list[Any]] = {}
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            for table in t.metadata.sorted_tables:
                for column in table.columns:
                    if not isinstance(column.type, String | Text) and "JSON" not in repr(
                        column.type
                    ).upper().replace("JSONTYPE", "JSON"):
                        continue
                    text = func.lower(sql_cast(column, Text))
                    for needle in needles:
                        rows = conn.execute(
                            select(column).where(text.like(f"%{needle.lower()}%"))
                        ).all()
                        if rows:
                            found.setdefault(f"{table.name}.{column.name}", []).extend(rows)
    finally:
        engine.dispose()
    return found


def _count(db_url: str, table: Any, *where: Any) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
            )
    finally:
        engine.dispose()


def test_forget_removes_the_person_and_keeps_a_readable_verified_history(
    tmp_path: Path, db_url: str
) -> None:
    cli = Cli(tmp_path, db_url)
    _programme(cli, db_url, tmp_path)
    before = _mentions(db_url, ANNA, ANNA_NAME)
    assert {"contacts.email", "users.email", "outbox.to_addresses", "events.actor"} <= set(before)

    dry = cli("participants", "forget", ANNA.upper())
    assert f"would forget {ANNA} (contact of Aarhus)" in dry.stdout
    assert "1 contact row(s) deleted" in dry.stdout
    assert "1 participant account deleted" in dry.stdout
    assert "1 session(s) deleted" in dry.stdout
    assert "dry run: nothing changed" in dry.stdout
    assert _mentions(db_url, ANNA, ANNA_NAME) == before

    done = cli("participants", "forget", ANNA, "--yes", "--json")
    summary = json.loads(done.stdout)
    assert summary["applied"] is True
    assert summary["removed"]["contacts"] == 1
    assert summary["removed"]["users"] == 1
    assert summary["removed"]["sessions"] == 1
    assert summary["removed"]["outbox"] >= 1

    # Nothing of her address or name is left outside the audit log and the case rows.
    left = _mentions(db_url, ANNA, ANNA_NAME)
    assert {"events.actor", "events.data", "cases.data"} <= set(left)  # the audit, as is
    assert set(left) <= {f"{name}.{col}" for name in KEPT_AS_AUDIT for col in ("actor", "data")}, (
        left
    )
    assert _count(db_url, t.contacts, t.contacts.c.email == OLE) == 1  # Ole is kept
    assert _count(db_url, t.access_log, t.access_log.c.actor == OLE) == 1
    assert _count(db_url, t.outbox, t.outbox.c.message_id == "<m1@x>") == 1  # the fact stays

    verified = json.loads(cli("case", "verify", "--all", "--json").stdout)
    assert verified, "two cases checked"
    assert all(not case["problems"] for case in verified), verified

    shown = cli("case", "show", "Aarhus", "--json").stdout
    assert ANNA not in shown and ANNA_NAME not in shown

    # Later mail for the contact person (the round's event invitations) never goes to her,
    # though the case's data still names her (the history is kept as it was).
    mails = _count(db_url, t.outbox)
    cli("scheduler", "run", "--once", "--now", "2021-03-01T10:00+01:00")
    assert _count(db_url, t.outbox) > mails
    assert not {k for k in _mentions(db_url, ANNA, ANNA_NAME) if k.startswith("outbox.")}

    history = cli("case", "history", "Aarhus", "--json").stdout
    assert ANNA not in history and ANNA_NAME not in history
    assert "(forgotten person)" in history
    assert "decide_participate" in history

    # Forgetting twice: she is unknown now (exit 1, a clear message, nothing changed).
    again = cli("participants", "forget", ANNA, "--yes", code=1)
    assert "keeps no contact row or account for this address" in again.stderr
    assert "nothing changed" in again.stderr


def test_an_unknown_address_is_a_clear_message_and_exit_1(tmp_path: Path, db_url: str) -> None:
    cli = Cli(tmp_path, db_url)
    gone = cli("participants", "forget", "nobody@example.dk", code=1)
    assert "nobody@example.dk: the programme keeps no contact row" in gone.stderr
    cli("users", "add", "mette@kl.example.dk", "--name", "Mette", "--role", "secretariat")
    staff = cli("participants", "forget", "mette@kl.example.dk", "--yes", code=1)
    assert "is a staff account and no contact" in staff.stderr
    assert "mette@kl.example.dk" in cli("users", "list").stdout
    bad = cli("participants", "forget", "not-an-address", code=2)
    assert "EMAIL" in bad.stderr
