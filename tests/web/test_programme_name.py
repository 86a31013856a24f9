"""The programme's name in the console's and the portal's header, title and footer: the
title of the workflow the database holds (issue 18: no page names DK2020 of itself).

A database with the EU Mission's workflow shows the EU Mission's name and nothing says
DK2020; one with the DK2020 workflow shows its title in the page's language; one with
several workflows, or none, names no programme. The name costs no query a page: the
service keeps what it read for ``PROGRAMME_LIFETIME`` (a newly loaded version shows
within it), and a page renders without it when it cannot be read.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from dk2020flow.bundled import workflow_path
from dk2020flow.clock import ManualClock
from dk2020flow.service.core import open_service
from dk2020flow.service.programme import PROGRAMME_LIFETIME
from dk2020flow.settings import load_settings
from dk2020flow.web.app import create_app
from dk2020flow.web.config import LANGUAGE_COOKIE, WebConfig

from .conftest import sign_in, web_service
from .portal_world import sign_in_as_participant

EU_MISSION = "EU Mission: 100 climate-neutral and smart cities"
DK2020_DA = "DK2020 – klimaplaner i hele Danmark"
DK2020_EN = "DK2020 – climate action plans across Denmark"
OPENED = dt.datetime(2021, 11, 15, 9, 0, tzinfo=dt.UTC)
CITY = "MIS-LUND"
COORDINATOR = "coordinator@lund.example.eu"
TAGLINE_EN = '<span class="app-tagline">The secretariat\'s console</span>'
"""The header's tagline when no one programme is named, in English."""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def eu_mission_database(url: str, tmp_path: Path) -> str:
    """The EU Mission's workflow, a city with a case and its Mission coordinator."""
    with open_service(url, clock=ManualClock(OPENED), settings=load_settings()) as svc:
        svc.load_workflow(workflow_path("eu_mission"), now=OPENED)
        svc.import_participants(
            _write(tmp_path / "cities.csv", f"code,name,country\n{CITY},Lund,SE\n")
        )
        svc.import_participants(
            _write(
                tmp_path / "contacts.csv",
                "organisation,role,name,email,language\n"
                f"{CITY},city_coordinator,Lena Lund,{COORDINATOR},en\n",
            )
        )
        svc.open_cases(
            "eu_mission", [("test", CITY)], actor="setup", role="mission_platform", now=OPENED
        )
    return url


def web_client(url: str) -> TestClient:
    config = WebConfig(
        database_url=url, clock=ManualClock(OPENED), threads=2, deliver_sign_in_mail=False
    )
    return TestClient(create_app(config), follow_redirects=False)


@pytest.fixture
def eu_mission(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with web_client(eu_mission_database(sqlite_url, tmp_path)) as client:
        yield client


def _brand(page: str) -> str:
    """The header's brand link, its text unescaped (``The secretariat's console``)."""
    start = page.index('class="app-brand"')
    return html.unescape(page[start : page.index("</a>", start)])


def _footer(page: str) -> str:
    return html.unescape(page[page.index('<footer class="footer">') :])


@pytest.mark.parametrize(
    ("language", "console", "about"),
    [
        (
            "da",
            f"Sekretariatets konsol for {EU_MISSION}",
            f"dk2020flow fører hver organisation gennem {EU_MISSION}.",
        ),
        (
            "en",
            f"The secretariat's console for {EU_MISSION}",
            f"dk2020flow follows every organisation through {EU_MISSION}.",
        ),
    ],
)
def test_the_eu_missions_console_names_the_eu_mission_and_never_dk2020(
    eu_mission: TestClient, language: str, console: str, about: str
) -> None:
    eu_mission.cookies.set(LANGUAGE_COOKIE, language)
    signed_out = eu_mission.get("/sign-in")
    sign_in(eu_mission, ("read_only",))
    pages = [signed_out, eu_mission.get("/"), eu_mission.get("/cases")]
    for page in pages:
        assert page.status_code == 200, page.text
        assert console in _brand(page.text)
        assert about in _footer(page.text)
        assert "DK2020" not in page.text
        assert "Danmark" not in page.text and "Denmark" not in page.text


def test_the_eu_missions_portal_names_the_eu_mission_and_never_dk2020(
    eu_mission: TestClient,
) -> None:
    sign_in_as_participant(eu_mission, web_service(eu_mission), COORDINATOR)
    page = eu_mission.get("/portal")  # in English, the coordinator's language
    assert page.status_code == 200, page.text
    assert f"My case in {EU_MISSION}" in _brand(page.text)
    assert f"<title>My cases · My case in {EU_MISSION}</title>" in page.text
    assert f"dk2020flow follows every organisation through {EU_MISSION}." in page.text
    assert "Lund" in page.text
    assert "DK2020" not in page.text and "Denmark" not in page.text


def test_the_dk2020_programme_is_named_by_its_title_in_the_pages_language(
    client: TestClient,
) -> None:
    sign_in(client, ("secretariat",))
    danish = client.get("/")
    assert f"Sekretariatets konsol for {DK2020_DA}" in _brand(danish.text)
    client.cookies.set(LANGUAGE_COOKIE, "en")
    english = client.get("/")
    assert f"The secretariat's console for {DK2020_EN}" in _brand(english.text)
    # A reader of another language reads the texts, and so the title, in English.
    client.cookies.set(LANGUAGE_COOKIE, "de")
    assert f"The secretariat's console for {DK2020_EN}" in _brand(client.get("/").text)


def test_with_several_workflows_no_programme_is_named(programme_url: str, tmp_path: Path) -> None:
    """DK2020 (Danish first) and the EU Mission (English): the pages open in English."""
    url = eu_mission_database(programme_url, tmp_path)
    with web_client(url) as client:
        page = client.get("/sign-in").text
        assert TAGLINE_EN in _brand(page)
        assert "dk2020flow follows every organisation through the programme." in _footer(page)
        assert EU_MISSION not in page and "DK2020" not in page
        sign_in_as_participant(client, web_service(client), COORDINATOR)
        portal = client.get("/portal").text
        assert "<title>My cases · My case</title>" in portal
        assert "follows every organisation through the programme." in portal


def test_with_no_workflow_no_programme_is_named(sqlite_url: str) -> None:
    with web_client(sqlite_url) as client:
        page = client.get("/sign-in").text
        assert TAGLINE_EN in _brand(page)
        assert "DK2020" not in page


def _renamed_version(tmp_path: Path) -> Path:
    """The EU Mission's workflow renamed "Net Zero Cities", as a version 2022.2 in a
    programme folder of the test's own (the shipped templates and data beside it)."""
    shipped = workflow_path("eu_mission")
    source = shipped.read_text(encoding="utf-8")
    renamed = source.replace(f'title: "{EU_MISSION}"', 'title: "Net Zero Cities"').replace(
        'version: "2022.1"', 'version: "2022.2"'
    )
    assert renamed.count("Net Zero Cities") == 1 and "2022.2" in renamed
    programme = tmp_path / "programme"
    (programme / "workflows").mkdir(parents=True)
    (programme / "notifications").symlink_to(shipped.parent.parent / "notifications")
    if (shipped.parent / "data").is_dir():
        (programme / "workflows" / "data").symlink_to(shipped.parent / "data")
    return _write(programme / "workflows" / "eu_mission.yaml", renamed)


def test_a_version_loaded_by_another_process_is_named_within_the_lifetime(
    eu_mission: TestClient, sqlite_url: str, tmp_path: Path
) -> None:
    """``dk2020flow workflow load`` runs in another process: its own service."""
    clock = web_service(eu_mission).clock
    assert isinstance(clock, ManualClock)
    assert EU_MISSION in _brand(eu_mission.get("/sign-in").text)
    with open_service(sqlite_url, clock=ManualClock(OPENED), settings=load_settings()) as other:
        other.load_workflow(_renamed_version(tmp_path), now=OPENED)
    clock.advance(PROGRAMME_LIFETIME - dt.timedelta(seconds=1))
    assert EU_MISSION in _brand(eu_mission.get("/sign-in").text)  # still the one kept
    clock.advance(dt.timedelta(seconds=1))
    assert "The secretariat's console for Net Zero Cities" in _brand(
        eu_mission.get("/sign-in").text
    )


def test_a_clock_that_goes_back_reads_the_programme_again(
    eu_mission: TestClient, tmp_path: Path
) -> None:
    """A simulation replaying a period sets its clock back: what was kept is not trusted."""
    clock = web_service(eu_mission).clock
    assert isinstance(clock, ManualClock)
    eu_mission.get("/sign-in")
    web_service(eu_mission).load_workflow(_renamed_version(tmp_path), now=OPENED)
    clock.set(OPENED - dt.timedelta(days=1))
    assert "Net Zero Cities" in _brand(eu_mission.get("/sign-in").text)


@pytest.fixture
def statements(eu_mission: TestClient) -> Iterator[list[str]]:
    """The statements the app runs while the test runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = web_service(eu_mission).store.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def read_transactions(eu_mission: TestClient) -> Iterator[list[str]]:
    """One entry for each read transaction the app opens while the test runs."""
    store = web_service(eu_mission).store
    opened: list[str] = []
    read = store.read

    def counted() -> Any:
        opened.append("read")
        return read()

    store.read = counted  # type: ignore[method-assign]
    try:
        yield opened
    finally:
        store.read = read  # type: ignore[method-assign]


def test_the_programme_costs_no_transaction_a_page_within_its_lifetime(
    eu_mission: TestClient, statements: list[str], read_transactions: list[str]
) -> None:
    eu_mission.get("/sign-in")  # read when the app started (its display zone) or here
    statements.clear()
    read_transactions.clear()
    for _ in range(3):
        page = eu_mission.get("/sign-in")
        assert EU_MISSION in _brand(page.text) and EU_MISSION in _footer(page.text)
    # The sign-in page reads nothing else: no transaction at all.
    assert read_transactions == [] and statements == []
    sign_in(eu_mission, ("read_only",))
    eu_mission.get("/cases")

    def page_reads(**headers: str) -> int:
        """The read transactions of one cases page."""
        read_transactions.clear()
        page = eu_mission.get("/cases", headers=headers)
        assert page.status_code == 200 and "Lund" in page.text
        return len(read_transactions)

    whole = page_reads()
    assert [page_reads(), page_reads(**{"HX-Request": "true"})] == [whole, whole]
    # The lifetime is over: the programme is read again, in one transaction of its own.
    web_service(eu_mission).clock.advance(PROGRAMME_LIFETIME)  # type: ignore[attr-defined]
    assert [page_reads(), page_reads()] == [whole + 1, whole]


def test_a_page_renders_without_the_programme_when_it_cannot_be_read(
    eu_mission: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    renderer = eu_mission.app.state.web.renderer  # type: ignore[attr-defined]
    read = renderer.read_programme

    def broken(_request: Any) -> Any:
        raise RuntimeError("the database is gone")

    renderer.read_programme = broken
    try:
        page = eu_mission.get("/no-such-page")
    finally:
        renderer.read_programme = read
    assert page.status_code == 404
    assert TAGLINE_EN in _brand(page.text)
    assert "the programme could not be read: RuntimeError" in caplog.text
