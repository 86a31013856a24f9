"""Bad input at the edges: participants CSV files and command-line arguments.

Every bad input gets a clear message (the CSV's bad rows by line number), a non-zero exit and
no traceback, and changes nothing: the participants tables, the case, its log, its timers and
its mail are the same afterwards (a refusal for a missing role is logged on purpose)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dk2020flow.clock import ManualClock
from dk2020flow.errors import RefusedError
from dk2020flow.service import Service
from dk2020flow.settings import Settings
from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore

from .conftest import CORPUS, DK2020, Cli, read_conn, table_counts

OPENED = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)
CSV_LINES = {
    "bad_emails.csv": {2, 3, 4, 5, 7},
    "broken_rows.csv": {3, 4, 5, 6},
    "crlf_in_names.csv": {2, 4, 6},
    "duplicate_organisations.csv": {4, 5},  # a 2-character code is a code now
    "latin1.csv": {2},
    "nul_bytes.csv": {2},
    "unknown_references.csv": {2, 3},
    "utf16.csv": {1},
    "wrong_header.csv": {1},
}
"""Each broken participants file and the lines its error must name (line 1 is the header)."""
DECIDE_DATA = (
    "--data",
    "cohort=round1",
    "--data",
    "decision_date=2020-08-20",
    "--data",
    "contact_person_name=Anna Jensen",
    "--data",
    "contact_person_email=anna@aarhus.example.dk",
    "--now",
    "2020-08-20T15:00+02:00",
)
FIRE = ("case", "fire", "Aarhus", "decide_participate", "--role", "council")
CLI_CASES: list[tuple[str, tuple[str | bytes, ...], int, str]] = [
    (
        "unknown case",
        ("case", "fire", "Atlantis", "decide_participate", "--role", "council"),
        1,
        "no case 'Atlantis'",
    ),
    (
        "unknown trigger",
        ("case", "fire", "Aarhus", "decide_participatte", "--role", "council"),
        3,
        "decide_participate",
    ),
    (
        "trigger not from this state",
        ("case", "fire", "Aarhus", "submit_application", "--role", "contact_person"),
        3,
        "cannot fire in state",
    ),
    (
        "unknown role",
        ("case", "fire", "Aarhus", "decide_participate", "--role", "emperor", *DECIDE_DATA),
        3,
        "not a role",
    ),
    (
        "role not allowed",
        ("case", "fire", "Aarhus", "decide_participate", "--role", "secretariat", *DECIDE_DATA),
        3,
        "secretariat",
    ),
    (
        "date that is not a date",
        (*FIRE, *DECIDE_DATA, "--data", "decision_date=tomorrow"),
        3,
        "'tomorrow' is not a date",
    ),
    ("unknown cohort", (*FIRE, *DECIDE_DATA, "--data", "cohort=round9"), 3, "round9"),
    (
        "bad e-mail",
        (*FIRE, *DECIDE_DATA, "--data", "contact_person_email=anna(at)aarhus"),
        3,
        "not an e-mail address",
    ),
    (
        "unknown field",
        (*FIRE, *DECIDE_DATA, "--data", "favourite_colour=green"),
        3,
        "favourite_colour",
    ),
    ("not KEY=VALUE", (*FIRE, "--data", "cohort"), 2, "is not KEY=VALUE"),
    ("bad --now", (*FIRE, *DECIDE_DATA, "--now", "yesterday"), 2, "--now"),
    (
        "huge comment (120 kB, near the OS limit for one argument)",
        (*FIRE, *DECIDE_DATA, "--comment", "x" * 120_000),
        3,
        "at most",
    ),
    ("unknown outbox id", ("outbox", "retry", "99999999"), 1, "no message 99999999"),
    (
        "non-UTF-8 case",
        ("case", "fire", b"Aar\xe5hus", "decide_participate", "--role", "council"),
        2,
        "not valid UTF-8",
    ),
    (
        "non-UTF-8 data",
        (*FIRE, *DECIDE_DATA, "--data", b"contact_person_name=J\xf8rgen"),
        2,
        "not valid UTF-8",
    ),
    (
        "non-UTF-8 comment",
        (*FIRE, *DECIDE_DATA, "--comment", b"ok \xe6\xf8\xe5"),
        2,
        "not valid UTF-8",
    ),
]
ROLE_REFUSALS = 2  # "unknown role" and "role not allowed" are logged as `refused` events
HUGE = 1024 * 1024


@pytest.fixture
def dk2020_url(sqlite_url: str) -> str:
    """A database with the DK2020 workflow loaded and Aarhus invited."""
    store = SqlStore(sqlite_url)
    try:
        service = Service(store, clock=ManualClock(OPENED), settings=Settings())
        service.load_workflow(DK2020)
        service.open_case("dk2020", "Aarhus", actor="test", role="secretariat")
    finally:
        store.close()
    return sqlite_url


def _participants(store: SqlStore) -> tuple[list[Any], list[Any]]:
    with read_conn(store) as conn:
        organisations = conn.execute(select(t.organisations).order_by("code")).all()
        contacts = conn.execute(select(t.contacts).order_by("id")).all()
    return [tuple(r) for r in organisations], [tuple(r) for r in contacts]


def _case(store: SqlStore) -> tuple[Any, list[Any], dict[str, int]]:
    """The Aarhus case row, its log without refusals, and the row counts."""
    with read_conn(store) as conn:
        case = tuple(conn.execute(select(t.cases)).one())
        events = conn.execute(
            select(t.events).where(t.events.c.kind != "refused").order_by(t.events.c.id)
        ).all()
    counts = table_counts(store)
    del counts["events"]  # compared above, without the refusals
    return case, [tuple(e) for e in events], counts


def _refusals(store: SqlStore) -> list[tuple[str, str]]:
    e = t.events.c
    with read_conn(store) as conn:
        rows = conn.execute(select(e.trigger, e.role).where(e.kind == "refused")).all()
    return [(str(trigger), str(role)) for trigger, role in rows]


def test_broken_participants_files_are_refused_by_line_and_import_nothing(
    dk2020_url: str, tmp_path: Path
) -> None:
    files = sorted((CORPUS / "participants").glob("*.csv"))
    assert {f.name for f in files} == set(CSV_LINES)
    store = SqlStore(dk2020_url)
    try:
        before = _participants(store)
        cli = Cli(tmp_path, DK2020FLOW_DATABASE_URL=dk2020_url)
        results = cli.many([("participants", "import", str(f)) for f in files])
        for path, done in zip(files, results, strict=True):
            assert done.returncode == 1, (path.name, done.stdout, done.stderr)
            assert done.stderr.startswith(f"error: {path}"), done.stderr
            assert "nothing was imported" in done.stderr, done.stderr
            named = {int(n) for n in re.findall(r"(?<!on )\bline (\d+)", done.stderr)}
            assert named == CSV_LINES[path.name], (path.name, done.stderr)
        assert _participants(store) == before
    finally:
        store.close()


def test_bad_command_line_input_is_a_clear_error_and_changes_nothing(
    dk2020_url: str, tmp_path: Path
) -> None:
    store = SqlStore(dk2020_url)
    try:
        before = _case(store)
        cli = Cli(tmp_path, DK2020FLOW_DATABASE_URL=dk2020_url)
        results = cli.many([args for _, args, _, _ in CLI_CASES])
        for (what, _, code, says), done in zip(CLI_CASES, results, strict=True):
            assert done.returncode == code, (what, done.returncode, done.stderr)
            assert says in done.stderr, (what, done.stderr)
            if code != 2:  # usage errors are typer's box; ours are one line
                assert len(done.stderr.strip().splitlines()) == 1, (what, done.stderr)
                assert done.stderr.startswith("error: "), (what, done.stderr)
        assert _case(store) == before
        assert sorted(_refusals(store)) == [
            ("decide_participate", "emperor"),
            ("decide_participate", "secretariat"),
        ]
        assert len(_refusals(store)) == ROLE_REFUSALS
        # The same trigger with good input works (the refusals blocked nothing else).
        cli(*FIRE, *DECIDE_DATA)
        assert _case(store)[0] != before[0]
    finally:
        store.close()


def test_a_one_megabyte_comment_or_value_is_refused_in_process(dk2020_url: str) -> None:
    """1 MB cannot be one argument on Linux (128 kB per argument), so it is tried through
    the service the CLI calls."""
    store = SqlStore(dk2020_url)
    try:
        service = Service(store, clock=ManualClock(OPENED), settings=Settings())
        before = _case(store)
        data = {
            "cohort": "round1",
            "decision_date": "2020-08-20",
            "contact_person_name": "Anna Jensen",
            "contact_person_email": "anna@aarhus.example.dk",
        }
        attempts: list[dict[str, Any]] = [
            {"data": data, "comment": "x" * HUGE},
            {"data": {**data, "contact_person_name": "x" * HUGE}},
            {"data": {**data, "contact_person_email": "a" * HUGE + "@aarhus.example.dk"}},
        ]
        for attempt in attempts:
            with pytest.raises(RefusedError) as refused:
                service.fire("Aarhus", "decide_participate", actor="t", role="council", **attempt)
            assert len(str(refused.value)) < 1000  # the message does not echo the megabyte
        assert _case(store) == before
    finally:
        store.close()
