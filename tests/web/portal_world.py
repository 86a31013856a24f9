"""The portal tests' people: contacts of Aarhus and of Odense, signed in as participants."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, select

from dk2020flow.service.core import Service
from dk2020flow.store import tables as t
from dk2020flow.web.config import SESSION_COOKIE

AARHUS = "751"
ODENSE = "461"
ANNA = "anna@aarhus.example.dk"
OLE = "ole@odense.example.dk"
CONTACTS = (
    {
        "organisation_code": AARHUS,
        "role": "contact_person",
        "name": "Anna Aarhus",
        "email": ANNA,
        "language": "en",
    },
    {
        "organisation_code": ODENSE,
        "role": "contact_person",
        "name": "Ole Odense",
        "email": OLE,
        "language": "da",
    },
)


def add_contacts(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(t.contacts), list(CONTACTS))
    finally:
        engine.dispose()


def case_id(url: str, code: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = select(t.cases.c.id).where(t.cases.c.organisation_code == code)
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def participant_session(service: Service, email: str) -> str:
    """A session of the participant (their account made by a sign-in request, as in life)."""
    with service.store.read() as tx:
        known = tx.find_user(email) is not None
    if not known:
        service.accounts.request_sign_in(email, client="test", base_url="http://testserver")
    return service.accounts.open_session(
        email, method="test", client="testclient", user_agent="pytest"
    )


def sign_in_as_participant(client: TestClient, service: Service, email: str) -> TestClient:
    client.cookies.set(SESSION_COOKIE, participant_session(service, email))
    return client


def link_of(text: str) -> str:
    found = re.search(r"token=([\w-]+)", text)
    assert found, text
    return found.group(1)
