"""The programme's identity on the pages comes from its workflow (#18): the language a
page opens in is the programme's first, its participants are called by the workflow's
``participant`` noun ("Kommune", "City"; "Organisation" when it names none), and the
accessibility statement names the programme, its help contact and its country's law and
enforcement body from the workflow (``links``) — an EU Mission database names no Danish
body.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from dk2020flow.clock import ManualClock
from dk2020flow.definition.starter import starter_files
from dk2020flow.service.core import open_service
from dk2020flow.settings import load_settings
from dk2020flow.store.port import CaseFilter
from dk2020flow.web.config import LANGUAGE_COOKIE, SESSION_COOKIE

from .conftest import web_service
from .portal_world import ANNA, OLE, add_contacts, sign_in_as_participant
from .test_programme_name import (
    EU_MISSION,
    OPENED,
    eu_mission_database,
    web_client,
)

DANISH_BODIES = ("Digitaliseringsstyrelsen", "webtilgængelighed", "Danish", "Denmark", "Danmark")


@pytest.fixture
def eu_mission(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with web_client(eu_mission_database(sqlite_url, tmp_path)) as client:
        yield client


def _staff(client: TestClient, language: str) -> TestClient:
    """Signed in as a reader (``read_only``: a role every programme has), with an account
    whose language is ``language``."""
    service = web_service(client)
    address = f"secretariat-{language}@staff.example.eu"
    service.accounts.add_user(
        address, "Sam Secretariat", ["read_only"], actor="test", language=language
    )
    token = service.accounts.open_session(
        address, method="test", client="testclient", user_agent="pytest"
    )
    client.cookies.set(SESSION_COOKIE, token)
    return client


def _text(page: str) -> str:
    return html.unescape(page)


def _headers(page: str, table_id: str) -> list[str]:
    """The column headers of the table ``table_id`` (their visible text)."""
    start = page.index(f'id="{table_id}"')
    head = page[start : page.index("</thead>", start)]
    cells = re.findall(r"<th[^>]*>(.*?)</th>", head, flags=re.S)
    visible = [
        re.sub(r'<span class="visually-hidden">.*?</span>', "", c, flags=re.S) for c in cells
    ]
    return [_text(re.sub(r"<[^>]+>|[▲▼]", "", c)).strip() for c in visible]


def test_an_eu_mission_database_opens_in_english(eu_mission: TestClient) -> None:
    """No cookie, nobody signed in: the programme's first (and only) language."""
    page = eu_mission.get("/sign-in")
    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    assert f"The secretariat's console for {EU_MISSION}" in _text(page.text)
    assert "Sign in" in page.text
    assert "Log ind" not in page.text and "Sekretariatets konsol" not in page.text
    # The reader's choice still wins.
    eu_mission.cookies.set(LANGUAGE_COOKIE, "da")
    assert "Log ind" in eu_mission.get("/sign-in").text


def test_the_eu_missions_console_calls_its_participants_cities(eu_mission: TestClient) -> None:
    client = _staff(eu_mission, "en")
    cases = client.get("/cases")
    assert cases.status_code == 200, cases.text
    assert '<html lang="en">' in cases.text
    assert _headers(cases.text, "cases-table")[:1] == ["City"]
    text = _text(cases.text)
    assert '<label class="form-label" for="f-q">Search by city</label>' in text
    assert 'placeholder="City: all of its name or part of it"' in text
    assert "Organisation" not in text
    case_id = re.search(r'href="/cases/(\d+)"', cases.text)
    assert case_id is not None
    case = _text(client.get(f"/cases/{case_id.group(1)}").text)
    assert "<dt>City</dt><dd>Lund</dd>" in case
    # A reader of Danish reads the console's texts in Danish, the programme's noun as the
    # programme writes it (its only language).
    client.cookies.set(LANGUAGE_COOKIE, "da")
    danish = _text(client.get("/cases").text)
    assert '<label class="form-label" for="f-q">Søg på city</label>' in danish
    assert _headers(danish, "cases-table")[:1] == ["City"]


def test_dk2020s_console_and_portal_call_their_participants_kommune(
    client_as: Callable[..., TestClient], programme_url: str
) -> None:
    client = client_as("secretariat")
    cases = client.get("/cases")
    assert _headers(cases.text, "cases-table")[1] == "Kommune"  # after the checkboxes
    assert '<label class="form-label" for="f-q">Søg på kommune</label>' in _text(cases.text)
    assert 'placeholder="Kommune: hele navnet eller en del af det"' in _text(cases.text)
    assert "<dt>Kommune</dt><dd>Odense</dd>" in _text(client.get("/cases/Odense").text)
    overview = client.get("/")
    assert _headers(overview.text, "late-table")[0] == "Kommune"
    client.cookies.set(LANGUAGE_COOKIE, "en")
    english = client.get("/cases")
    assert _headers(english.text, "cases-table")[1] == "Municipality"
    assert "Search by municipality" in english.text
    # The portal: a contact of Odense (Danish) and one of Aarhus (English).
    add_contacts(programme_url)
    client.cookies.delete(LANGUAGE_COOKIE)
    portal = sign_in_as_participant(client, web_service(client), OLE).get("/portal")
    assert "<dt>Kommune</dt>\n    <dd>Odense</dd>" in _text(portal.text)
    assert '<th scope="col">Kommune</th>' in client.get("/portal/my-data").text
    portal = sign_in_as_participant(client, web_service(client), ANNA).get("/portal")
    assert "<dt>Municipality</dt>\n    <dd>Aarhus</dd>" in _text(portal.text)


def test_with_several_workflows_the_participants_are_organisations_but_a_case_says_its_own(
    programme_url: str, tmp_path: Path
) -> None:
    """DK2020 and the EU Mission in one database: no one programme, so the shared pages
    say "Organisation"; a case's page calls it what its own workflow does."""
    with web_client(eu_mission_database(programme_url, tmp_path)) as client:
        _staff(client, "en")
        overview = client.get("/")
        assert _headers(overview.text, "late-table")[0] == "Organisation"
        [lund] = web_service(client).cases(CaseFilter(workflow="eu_mission"))
        assert "<dt>City</dt><dd>Lund</dd>" in _text(client.get(f"/cases/{lund.id}").text)


def test_the_eu_missions_accessibility_statement_names_it_and_no_danish_body(
    eu_mission: TestClient,
) -> None:
    page = _text(eu_mission.get("/tilgaengelighed").text)
    assert '<html lang="en">' in page
    statement = page[page.index("<main") : page.index("</main>")]
    assert f"participants' portal of {EU_MISSION}" in statement
    assert "write to EU Mission Platform helpdesk at " in statement
    assert 'href="mailto:helpdesk@mission-platform.example.eu"' in statement
    assert "WCAG 2.1 level AA" in statement and "Enforcement" not in statement
    for body in DANISH_BODIES:
        assert body not in page, body
    assert "DK2020" not in page


def test_dk2020s_accessibility_statement_keeps_the_danish_law_and_body(
    client: TestClient,
) -> None:
    page = _text(client.get("/tilgaengelighed").text)
    statement = page[page.index("<main") : page.index("</main>")]
    assert "deltagerportalen for DK2020 – klimaplaner i hele Danmark" in statement
    assert "skriv til DK2020-sekretariatet hos CONCITO på " in statement
    assert "<h2>Håndhævelse</h2>" in statement
    assert "lov om tilgængelighed af offentlige organers websteder" in statement
    assert "Du kan klage til Digitaliseringsstyrelsen via webtilgængelighed.dk." in statement
    client.cookies.set(LANGUAGE_COOKIE, "en")
    english = _text(client.get("/tilgaengelighed").text)
    assert "complain to the Danish Agency for Digital Government" in english


def test_with_no_programme_the_statement_names_none(sqlite_url: str) -> None:
    with web_client(sqlite_url) as client:
        page = _text(client.get("/tilgaengelighed").text)
    assert "write to the organisation that runs this installation of dk2020flow." in page
    for body in DANISH_BODIES:
        assert body not in page, body


def _german_programme(url: str, tmp_path: Path) -> str:
    """A programme written in German first (``dk2020flow workflow init --languages de,en``)."""
    files = starter_files("energie", ("de", "en"), timezone="Europe/Berlin")
    folder = tmp_path / "energie"
    (folder / "workflows" / "data").mkdir(parents=True)
    (folder / "notifications" / "energie").mkdir(parents=True)
    workflow = folder / "workflows" / "energie.yaml"
    workflow.write_text(files.pop("workflow"), encoding="utf-8")
    data = folder / "workflows" / "data" / "energie_organisations.csv"
    data.write_text(files.pop("organisations"), encoding="utf-8")
    for name, text in files.items():
        (folder / "notifications" / "energie" / name).write_text(text, encoding="utf-8")
    with open_service(url, clock=ManualClock(OPENED), settings=load_settings()) as service:
        service.load_workflow(workflow, now=OPENED)
    return url


def test_a_german_programme_opens_with_english_texts_and_german_dates(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The console's texts are Danish and English: a reader of German (the programme's
    first language, as no one chose) reads English texts, with German dates and numbers."""
    with web_client(_german_programme(sqlite_url, tmp_path)) as client:
        page = client.get("/sign-in")
        assert '<html lang="en">' in page.text and "Sign in" in page.text
        app: Any = client.app
        anonymous = Request({"type": "http", "app": app, "headers": [], "state": {}})
        tr = app.state.web.renderer.translator(anonymous)
        assert (tr.language, tr.text_language, tr.locale_name) == ("de", "en", "de")
        assert tr.date(OPENED, "long") == "15. November 2021"


def test_the_eu_missions_own_staff_role_opens_the_console_in_its_language(
    eu_mission: TestClient,
) -> None:
    """Staff in a role only EU Mission has (``mission_platform``), with an account that
    names no language: the console lets them in (it used to require DK2020's role names
    and answered 403), lets them act, and speaks the programme's language."""
    service = web_service(eu_mission)
    address = "platform@staff.example.eu"
    added = service.accounts.add_user(address, "Pat Platform", ["mission_platform"], actor="test")
    assert added.language == "en"
    token = service.accounts.open_session(
        address, method="test", client="testclient", user_agent="pytest"
    )
    eu_mission.cookies.set(SESSION_COOKIE, token)
    cases = eu_mission.get("/cases")
    assert cases.status_code == 200, cases.text[:300]
    assert '<html lang="en">' in cases.text
    overview = eu_mission.get("/")
    assert overview.status_code == 200
    assert eu_mission.get("/admin/users").status_code == 403  # not an admin
    users_page_as_admin = _admin_users_page(service, eu_mission)
    assert 'value="mission_platform"' in users_page_as_admin
    assert 'value="secretariat"' not in users_page_as_admin


def _admin_users_page(service: Any, client: TestClient) -> str:
    """The users page as an admin: the roles it offers are the programme's."""
    address = "admin@staff.example.eu"
    service.accounts.add_user(address, "Ada Admin", ["admin"], actor="test")
    token = service.accounts.open_session(
        address, method="test", client="testclient", user_agent="pytest"
    )
    client.cookies.set(SESSION_COOKIE, token)
    page = client.get("/admin/users")
    assert page.status_code == 200, page.text[:300]
    return _text(page.text)


def test_the_cases_csv_names_the_column_as_the_page_does(eu_mission: TestClient) -> None:
    """The CSV export's header says the programme's noun ("City"), as the table does; it
    said "Organisation" for every programme."""
    client = _staff(eu_mission, "en")
    exported = client.get("/cases.csv")
    assert exported.status_code == 200
    header = exported.content.decode("utf-8-sig").splitlines()[0].split(",")
    assert header[:3] == ["Case", "City", "Code"]
