"""Case links in milestone mail (docs/portal.md, "Links in mail"): the link in a mail the
scheduler really rendered signs its person in by a POST behind a button; the GET changes
nothing; a tampered, expired, other-case, rotated or no-longer-a-contact link signs nobody
in; a link of Aarhus does not open Odense. Over the web tests' programme, SQLite."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, delete, func, insert, select

from dk2020flow.clock import ManualClock
from dk2020flow.service.core import Service
from dk2020flow.service.links import CaseLinkError, CaseLinks, renew_key
from dk2020flow.store import tables as t
from dk2020flow.web.config import SESSION_COOKIE, WebConfig

from .conftest import post_form, web_service
from .portal_world import AARHUS, ANNA, ODENSE, OLE, add_contacts, case_id

BASE = "http://testserver"
LINK = re.compile(r"http://testserver/sign-in/case\?token=([\w.-]+)")


@pytest.fixture
def app_config(programme_url: str, clock: ManualClock) -> WebConfig:
    """The web tests' programme with contacts of Aarhus and Odense, served at BASE (so the
    service's mail carries links to it)."""
    add_contacts(programme_url)
    return WebConfig(
        database_url=programme_url,
        clock=clock,
        threads=4,
        deliver_sign_in_mail=False,
        base_url=BASE,
    )


def _count(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(t.metadata.tables[table])).one()[0]
            )
    finally:
        engine.dispose()


def _mail_to(service: Service, address: str, template: str) -> str:
    with service.store.read() as tx:
        found = [
            m
            for m in tx.outbox(limit=5000)
            if m.template == template and any(a == address for _, a in m.to)
        ]
    assert found, f"no {template} mail to {address}"
    return found[-1].text


AARHUS_REMINDED = dt.datetime(2020, 10, 7, 22, 0, tzinfo=dt.UTC)
"""Just after round 1's first application reminder is due (Aarhus)."""
ODENSE_REMINDED = dt.datetime(2021, 8, 12, 22, 0, tzinfo=dt.UTC)
"""Just after round 2's (Odense)."""


@pytest.fixture
def mailed(client: TestClient, clock: ManualClock) -> TestClient:
    """The scheduler fires what is due when Aarhus's application reminder is: it goes to
    Anna, its contact person (To only), rendered in the firing's transaction."""
    _fire_all_due(client, clock, AARHUS_REMINDED)
    return client


def _fire_all_due(client: TestClient, clock: ManualClock, at: dt.datetime) -> None:
    clock.set(at)
    service = web_service(client)
    for _ in range(20):  # a batch at a time, as the daemon does
        done = service.fire_due(at)
        if not (done.fired or done.skipped or done.discarded):
            return
    raise AssertionError("the timers due did not run out")


def _token(client: TestClient, address: str = ANNA) -> str:
    text = _mail_to(web_service(client), address, "application_reminder")
    found = LINK.search(text)
    assert found, text
    return found.group(1)


def test_the_link_in_a_rendered_mail_signs_in_by_post_only(
    mailed: TestClient, programme_url: str
) -> None:
    token = _token(mailed)
    aarhus = case_id(programme_url, AARHUS)
    assert token.startswith(f"{aarhus}.")
    sessions, users = _count(programme_url, "web_sessions"), _count(programme_url, "users")
    # The GET (what a mail scanner does) shows a button and changes nothing.
    for _ in range(3):
        page = mailed.get(f"/sign-in/case?token={token}")
        assert page.status_code == 200
        assert ANNA in page.text and 'action="/sign-in/case"' in page.text
        assert SESSION_COOKIE not in page.cookies
    assert _count(programme_url, "web_sessions") == sessions
    assert _count(programme_url, "users") == users
    # The POST signs Anna in (her participant account made now) and opens her case.
    signed = post_form(mailed, "/sign-in/case", {"token": token})
    assert signed.status_code == 303, signed.text
    assert signed.headers["location"] == f"/portal/cases/{aarhus}"
    assert _count(programme_url, "web_sessions") == sessions + 1
    case_page = mailed.get(f"/portal/cases/{aarhus}")
    assert case_page.status_code == 200 and "Aarhus" in case_page.text
    # Signed in, she is still Aarhus's contact only.
    odense = case_id(programme_url, ODENSE)
    assert mailed.get(f"/portal/cases/{odense}").status_code == 403
    # Already signed in as her, the link's GET goes straight to the case.
    again = mailed.get(f"/sign-in/case?token={token}")
    assert again.status_code == 303 and again.headers["location"] == f"/portal/cases/{aarhus}"
    with web_service(mailed).store.read() as tx:
        user = tx.find_user(ANNA)
        assert user is not None
        [session] = tx.sessions_of(user.id, AARHUS_REMINDED)
    assert session.method == "case_link"


def _refused(client: TestClient, url: str, token: str) -> None:
    sessions = _count(url, "web_sessions")
    page = client.get(f"/sign-in/case?token={token}")
    assert page.status_code == 400, page.text
    assert "not valid" in page.text or "ikke gyldigt" in page.text
    posted = post_form(client, "/sign-in/case", {"token": token})
    assert posted.status_code == 400
    assert SESSION_COOKIE not in posted.cookies
    assert _count(url, "web_sessions") == sessions


def test_a_tampered_link_signs_nobody_in(mailed: TestClient, programme_url: str) -> None:
    token = _token(mailed)
    case, expires, signature = token.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    later = str(int(expires) + 86400 * 365)
    for forged in (
        f"{case}.{expires}.{flipped}",
        f"{case}.{later}.{signature}",  # a longer life
        f"{case}.{expires}",
        "",
        "1.2.3",
        token + "x",
    ):
        _refused(mailed, programme_url, forged)


def test_a_link_of_aarhus_does_not_open_odense(
    mailed: TestClient, programme_url: str, clock: ManualClock
) -> None:
    aarhus, odense = case_id(programme_url, AARHUS), case_id(programme_url, ODENSE)
    token = _token(mailed)
    _, expires, signature = token.split(".")
    _refused(mailed, programme_url, f"{odense}.{expires}.{signature}")
    # Odense's own contact's link (from its reminder) opens Odense, and only Odense.
    _fire_all_due(mailed, clock, ODENSE_REMINDED)
    ole = _token(mailed, OLE)
    assert ole.startswith(f"{odense}.")
    _, expires, signature = ole.split(".")
    _refused(mailed, programme_url, f"{aarhus}.{expires}.{signature}")
    signed = post_form(mailed, "/sign-in/case", {"token": ole})
    assert signed.headers["location"] == f"/portal/cases/{odense}"
    assert mailed.get(f"/portal/cases/{aarhus}").status_code == 403


def test_an_expired_link_leads_to_the_sign_in_page(
    mailed: TestClient, programme_url: str, clock: ManualClock
) -> None:
    token = _token(mailed)
    aarhus = case_id(programme_url, AARHUS)
    clock.set(AARHUS_REMINDED + dt.timedelta(days=14, seconds=1))
    sessions = _count(programme_url, "web_sessions")
    for response in (
        mailed.get(f"/sign-in/case?token={token}"),
        post_form(mailed, "/sign-in/case", {"token": token}),
    ):
        assert response.status_code == 303
        where = urlsplit(response.headers["location"])
        assert where.path == "/sign-in"
        assert parse_qs(where.query) == {"email": [ANNA], "next": [f"/portal/cases/{aarhus}"]}
        assert SESSION_COOKIE not in response.cookies
    assert _count(programme_url, "web_sessions") == sessions
    page = mailed.get(f"/sign-in?email={ANNA}&next=/portal/cases/{aarhus}")
    assert f'value="{ANNA}"' in page.text
    # A day before its end it still worked.
    clock.set(AARHUS_REMINDED + dt.timedelta(days=13))
    assert mailed.get(f"/sign-in/case?token={token}").status_code == 200


def test_no_longer_a_contact_signs_nobody_in(mailed: TestClient, programme_url: str) -> None:
    token = _token(mailed)
    engine = create_engine(programme_url)
    try:
        with engine.begin() as conn:
            conn.execute(delete(t.contacts).where(t.contacts.c.email == ANNA))
    finally:
        engine.dispose()
    _refused(mailed, programme_url, token)


def test_a_new_key_voids_the_links_made_before(mailed: TestClient, programme_url: str) -> None:
    token = _token(mailed)
    assert renew_key(web_service(mailed)) == 2
    _refused(mailed, programme_url, token)


def test_copies_to_several_people_carry_the_plain_case_address(
    client: TestClient, programme_url: str
) -> None:
    """A copy that also goes to the mayor (Cc) must not sign Anna in for whoever opens it:
    it carries the portal's address of the case instead."""
    engine = create_engine(programme_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(t.contacts),
                [
                    {
                        "organisation_code": AARHUS,
                        "role": "mayor",
                        "name": "Borgmester Aarhus",
                        "email": "borgmester@aarhus.example.dk",
                        "language": "en",  # copied on Anna's copy (hers is in English)
                    }
                ],
            )
    finally:
        engine.dispose()
    service = web_service(client)
    aarhus = case_id(programme_url, AARHUS)
    [copy] = [p for p in service.preview("Aarhus", "application_overdue") if p.to[0][1] == ANNA]
    assert copy.cc
    assert f"{BASE}/portal/cases/{aarhus}" in copy.mail.text
    assert "/sign-in/case" not in copy.mail.text + copy.mail.html
    # Whoever opens it is asked who they are, and comes back to the case.
    opened = client.get(f"/portal/cases/{aarhus}")
    assert opened.status_code in (302, 303, 307)
    assert urlsplit(opened.headers["location"]).path == "/sign-in"
    # The one-recipient reminder carries a case link (in the HTML part as a button).
    [reminder] = [
        p for p in service.preview("Aarhus", "application_reminder") if p.to[0][1] == ANNA
    ]
    # A preview shows where the case link goes, but signs nobody in and writes no key.
    assert f"{BASE}/sign-in/case?token=…" in reminder.mail.text
    assert f"{BASE}/sign-in/case?token=…" in reminder.mail.html
    with service.store.read() as tx:
        assert tx.link_key() is None


def test_without_a_public_address_mail_carries_no_link(programme_url: str) -> None:
    from dk2020flow.service.core import open_service
    from dk2020flow.settings import Settings

    add_contacts(programme_url)
    settings = Settings(database_url=programme_url, public_url=None)
    clock = ManualClock(AARHUS_REMINDED)
    with open_service(programme_url, clock=clock, settings=settings) as service:
        [reminder] = [
            p for p in service.preview("Aarhus", "application_reminder") if p.to[0][1] == ANNA
        ]
        with service.store.read() as tx:
            assert tx.link_key() is None  # nothing signed, no key made
    assert "See the case" not in reminder.mail.text and "http://" not in reminder.mail.text
    assert "Open the case" not in reminder.mail.html
    assert "\n\n\n" not in reminder.mail.text  # the missing line leaves no gap


def test_checking_a_link_reads_the_contacts_now(mailed: TestClient, programme_url: str) -> None:
    service = web_service(mailed)
    links: CaseLinks = service.mail.links
    token = _token(mailed)
    with service.store.read() as tx:
        target = links.check(tx, token, AARHUS_REMINDED)
        assert target.email == ANNA and target.case_id == case_id(programme_url, AARHUS)
        with pytest.raises(CaseLinkError) as refused:
            links.check(tx, token, target.expires_at)
        assert refused.value.problem == "expired"
