"""A reader whose language the console has no texts in (German): English pages, marked
as English, with German dates; a German sign-in mail in English; a German contact keeps
their language."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from dk2020flow.service.accounts import participant_roles
from dk2020flow.store.port import Contact

from .conftest import post_form, web_service

EMAIL = "anna@staff.example.de"


def test_a_german_reader_gets_english_pages_that_say_so(client: TestClient) -> None:
    service = web_service(client)
    service.accounts.add_user(EMAIL, "Anna Schmidt", ["read_only"], actor="test", language="de")
    token = service.accounts.open_session(EMAIL, method="test", client="t", user_agent="pytest")
    client.cookies.set("dk2020flow_session", token)
    page = client.get("/")
    assert page.status_code == 200
    # The texts are English, so the page says it is English (not German, not Danish).
    assert re.search(r'<html lang="en">', page.text), page.text[:200]


def test_a_german_staff_members_sign_in_mail_is_english(client: TestClient) -> None:
    service = web_service(client)
    service.accounts.add_user(EMAIL, "Anna Schmidt", ["secretariat"], actor="test", language="de")
    assert post_form(client, "/sign-in", {"email": EMAIL, "next": "/"}).status_code == 200
    with service.store.read() as tx:
        (mail,) = [m for m in tx.outbox(limit=100) if m.template == "sign_in"]
    assert mail.text.startswith("Hello Anna Schmidt"), mail.text[:80]
    assert mail.language == "en"


def test_a_contacts_language_is_kept_whatever_it_is() -> None:
    def roles(language: str) -> str:
        contact = Contact(
            organisation_code="751",
            role="contact_person",
            name="A",
            email="a@x.de",
            language=language,
        )
        found = participant_roles([contact])
        assert found is not None
        return found.language

    assert roles("de") == "de"
    assert roles("en") == "en"
    assert roles("xx") == "en"  # not a language: the programme's (English when not given)
