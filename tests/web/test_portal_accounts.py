"""Participants' accounts over a real store (SQLite and PostgreSQL): an address in the
contacts gets a participant account on its first sign-in request, in the contact's name
and language; its roles are the contact rows, per organisation; an unknown address gets
nothing."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import create_engine, insert

from dk2020flow.clock import ManualClock
from dk2020flow.service import Service
from dk2020flow.service.accounts import PARTICIPANT, Accounts
from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore

START = dt.datetime(2021, 3, 1, 9, 0, tzinfo=dt.UTC)


def _contacts(url: str) -> None:
    engine = create_engine(url)
    rows = [
        ("751", "contact_person", "Anna Aarhus", "Anna@Aarhus.example.dk", "en"),
        ("751", "council", "Anna Aarhus", "anna@aarhus.example.dk", "en"),
        ("461", "mayor", "Anna Aarhus", "anna@aarhus.example.dk", "en"),
    ]
    keys = ("organisation_code", "role", "name", "email", "language")
    try:
        with engine.begin() as conn:
            conn.execute(insert(t.contacts), [dict(zip(keys, row, strict=True)) for row in rows])
    finally:
        engine.dispose()


def test_a_contact_gets_a_participant_account_and_case_scoped_roles(
    store: SqlStore, db_url: str
) -> None:
    _contacts(db_url)
    accounts = Accounts(Service(store, clock=ManualClock(START)))
    first = accounts.request_sign_in(
        " ANNA@aarhus.example.dk", client="c", base_url="https://x.example"
    )
    again = accounts.request_sign_in("anna@aarhus.example.dk", client="c", base_url="https://x")
    assert first is not None and again is not None and again != first
    with store.read() as tx:
        user = tx.find_user("anna@aarhus.example.dk")
        mail = tx.outbox_message(first)
        assert [u.email for u in tx.users(PARTICIPANT)] == ["anna@aarhus.example.dk"]
        assert tx.users() == []  # the staff list does not show participants
    assert user is not None and user.kind == PARTICIPANT and user.roles == ()
    assert user.name == "Anna Aarhus" and user.language == "en"
    assert mail is not None and mail.language == "en"
    roles = accounts.participant_roles("anna@aarhus.example.dk")
    assert roles is not None
    assert roles.by_organisation == {"461": ("mayor",), "751": ("contact_person", "council")}
    token = accounts.open_session(user.email, method="test", client="c", user_agent="t")
    session = accounts.session_user(token, START)
    assert session is not None and session.kind == PARTICIPANT


def test_an_address_in_no_contact_row_gets_nothing(store: SqlStore, db_url: str) -> None:
    _contacts(db_url)
    accounts = Accounts(Service(store, clock=ManualClock(START)))
    assert accounts.request_sign_in("ole@odense.example.dk", client="c", base_url="x") is None
    with store.read() as tx:
        assert tx.find_user("ole@odense.example.dk") is None
        assert tx.outbox(limit=10) == []
    assert accounts.participant_roles("ole@odense.example.dk") is None
