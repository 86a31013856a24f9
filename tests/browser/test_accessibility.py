"""Every page of the console passes axe-core in headless Chromium (WCAG 2.1 A and AA rules:
no serious or critical violation), in Danish and in English, signed in and not.

The journey (test_journey.py) checks the pages it walks through; this file visits the
rest: the accessibility statement, the account and user admin pages, every operations
page, error pages, the English versions (through the language switch, as a user) and
a case page in other states. Screenshots go beside the journey's as ``a11y-*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from .support import VIEWPORT, AxeReport, Console, PageWatch, check_page, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

# The storage state (cookies) of a signed-in browser, per address: signing in is the
# journey's subject; here it is done once per account and reused.
_states: dict[str, Any] = {}


def _signed_in_context(browser: Browser, console: Console, address: str) -> BrowserContext:
    if address not in _states:
        context = browser.new_context(viewport=VIEWPORT, locale="da-DK")  # type: ignore[arg-type]
        try:
            sign_in(context.new_page(), console, address)
            _states[address] = context.storage_state()
        finally:
            context.close()
    made = browser.new_context(
        viewport=VIEWPORT,  # type: ignore[arg-type]
        locale="da-DK",
        storage_state=_states[address],
    )
    made.set_default_timeout(15_000)
    return made


@pytest.fixture
def admin_page(browser: Browser, console: Console, watch: PageWatch) -> Iterator[Page]:
    """A page signed in as the administrator (roles admin and secretariat)."""
    context = _signed_in_context(browser, console, console.admin_email)
    try:
        page = context.new_page()
        watch.attach(page)
        yield page
    finally:
        context.close()


@pytest.fixture
def staff_page(browser: Browser, console: Console, watch: PageWatch) -> Iterator[Page]:
    """A page signed in as the journey's staff member (secretariat, follow_up)."""
    context = _signed_in_context(browser, console, console.staff_email)
    try:
        page = context.new_page()
        watch.attach(page)
        yield page
    finally:
        context.close()


def _open_case(page: Page, console: Console, organisation: str) -> None:
    """Open a case's page as a user finds it: search the cases table, follow the link."""
    _visit(page, console, f"/cases?q={organisation}")
    page.locator("#cases-table tbody").get_by_role("link", name=organisation).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(organisation)


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "overview"


def _visit(page: Page, console: Console, path: str, status: int = 200) -> None:
    response = page.goto(console.url(path))
    assert response is not None
    assert response.status == status, f"GET {path}: {response.status}"


# Pages an administrator reaches from the menu, and the case page in states the journey
# does not open (screening: the CAPF checklist is editable, the documents listed with
# upload forms; approved: no actions).
ADMIN_PAGES = [
    "/",
    "/?round=round2&region=Syddanmark",
    "/cases",
    "/cases?sort=-organisation",
    "case:Greve",
    "case:Aarhus",
    "/account",
    "/admin/users",
    "/operations",
    "/tilgaengelighed",
]


@pytest.mark.parametrize("target", ADMIN_PAGES)
def test_signed_in_pages(
    admin_page: Page,
    console: Console,
    watch: PageWatch,
    axe_report: AxeReport,
    screenshots: Path,
    target: str,
) -> None:
    if target.startswith("case:"):
        organisation = target.removeprefix("case:")
        _open_case(admin_page, console, organisation)
        name = f"a11y-case-{organisation.lower()}"
        if organisation == "Greve":  # in screening: its application and plan are listed
            documents = admin_page.get_by_role("region", name="Dokumenter")
            expect(documents.get_by_role("row").nth(1)).to_be_visible()
            expect(documents.locator("form[enctype='multipart/form-data']").first).to_be_visible()
    else:
        _visit(admin_page, console, target)
        name = f"a11y-{_slug(target)}"
    expect(admin_page.get_by_role("heading", level=1)).to_have_count(1)
    check_page(admin_page, name, watch=watch, report=axe_report, screenshots=screenshots)


def test_every_operations_page(
    admin_page: Page, console: Console, watch: PageWatch, axe_report: AxeReport, screenshots: Path
) -> None:
    """Each page reached by following the operations pages' own links (outbox, scheduler,
    workflows and each workflow's diagram, migration …)."""

    def links_here() -> set[str]:
        hrefs = admin_page.locator("main a[href^='/operations']").evaluate_all(
            "links => links.map(a => a.getAttribute('href'))"
        )
        return {urlsplit(h).path for h in hrefs}

    _visit(admin_page, console, "/operations")
    seen = {"/operations"}
    waiting = sorted(links_here() - seen)
    assert waiting, "the operations page links to no other operations page"
    while waiting:
        path = waiting.pop(0)
        seen.add(path)
        _visit(admin_page, console, path)
        expect(admin_page.get_by_role("heading", level=1)).to_have_count(1)
        check_page(
            admin_page,
            f"a11y-{_slug(path)}",
            watch=watch,
            report=axe_report,
            screenshots=screenshots,
        )
        waiting = sorted(set(waiting) | (links_here() - seen))
        assert len(seen) < 40, f"more operations pages than expected: {sorted(seen)}"


def test_bulk_pages(
    admin_page: Page, console: Console, watch: PageWatch, axe_report: AxeReport, screenshots: Path
) -> None:
    """A bulk action's confirmation and run pages: ask for a revision of every case in
    screening (Greve and Næstved), as the secretariat."""
    _visit(admin_page, console, "/cases?state=screening")
    expect(admin_page.locator("#cases-table tbody tr")).to_have_count(2)
    bulk = admin_page.get_by_role("group", name="Udløs en handling på flere sager")
    bulk.get_by_role("combobox", name="Handling").select_option(value="request_revision")
    bulk.get_by_role("radio", name=re.compile("^Alle")).check()
    bulk.get_by_role("button", name="Videre til bekræftelse").click()
    expect(admin_page.get_by_role("heading", level=1)).to_have_text("Bekræft massehandlingen")
    expect(admin_page.locator("#bulk-cases li")).to_have_count(2)
    check_page(
        admin_page, "a11y-bulk-confirm", watch=watch, report=axe_report, screenshots=screenshots
    )
    admin_page.get_by_role("button", name="Udløs på 2 sager").click()
    expect(admin_page).to_have_url(re.compile(r"/bulk/\d+$"))
    check_page(admin_page, "a11y-bulk-run", watch=watch, report=axe_report, screenshots=screenshots)


def test_english_pages(
    admin_page: Page, console: Console, watch: PageWatch, axe_report: AxeReport, screenshots: Path
) -> None:
    """The language switch, as a user presses it; then the pages in English."""
    _visit(admin_page, console, "/")
    admin_page.get_by_role("link", name="Read this page in English").click()
    expect(admin_page.locator("html")).to_have_attribute("lang", "en")
    expect(admin_page.get_by_role("heading", level=1)).to_have_text("Programme overview")
    check_page(
        admin_page, "a11y-en-overview", watch=watch, report=axe_report, screenshots=screenshots
    )
    _open_case(admin_page, console, "Greve")
    expect(admin_page.locator("html")).to_have_attribute("lang", "en")
    check_page(admin_page, "a11y-en-case", watch=watch, report=axe_report, screenshots=screenshots)
    for path in ("/cases", "/operations", "/account", "/admin/users", "/tilgaengelighed"):
        _visit(admin_page, console, path)
        expect(admin_page.locator("html")).to_have_attribute("lang", "en")
        check_page(
            admin_page,
            f"a11y-en-{_slug(path)}",
            watch=watch,
            report=axe_report,
            screenshots=screenshots,
        )


def test_pages_without_signing_in(
    page: Page, console: Console, watch: PageWatch, axe_report: AxeReport, screenshots: Path
) -> None:
    """The accessibility statement, the sign-in page in English, a refused sign-in link
    and a page that does not exist."""

    def check(name: str) -> None:
        check_page(page, name, watch=watch, report=axe_report, screenshots=screenshots)

    _visit(page, console, "/tilgaengelighed")
    expect(page.get_by_role("heading", level=1)).to_have_text("Tilgængelighedserklæring")
    check("a11y-accessibility-statement")

    _visit(page, console, "/sign-in")
    page.get_by_role("link", name="Read this page in English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    check("a11y-en-sign-in")

    # A forged link: refused with a page that says so (the GET looks the token up and
    # consumes nothing) and offers a new link.
    _visit(page, console, "/sign-in/link?token=" + "x" * 43, status=400)
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("main").get_by_role("button")).to_have_count(0)
    check("a11y-en-sign-in-refused")

    _visit(page, console, "/no-such-page", status=404)
    check("a11y-en-not-found")


def test_a_page_the_role_may_not_see(
    staff_page: Page,
    console: Console,
    watch: PageWatch,
    axe_report: AxeReport,
    screenshots: Path,
) -> None:
    """The 403 page (the secretariat is no administrator)."""
    _visit(staff_page, console, "/admin/users", status=403)
    expect(staff_page.get_by_role("heading", level=1)).to_have_text("Ingen adgang")
    check_page(
        staff_page, "a11y-forbidden", watch=watch, report=axe_report, screenshots=screenshots
    )


def test_portal_pages(
    page: Page, console: Console, watch: PageWatch, axe_report: AxeReport, screenshots: Path
) -> None:
    """The participants' portal as Fanø's contact person sees it: my cases, and the case in
    revising with the CAPF item that needs revision, its comment and the answer form
    (unless the console's journey withdrew Fanø first), in Danish and in English."""

    def check(name: str) -> None:
        check_page(page, name, watch=watch, report=axe_report, screenshots=screenshots)

    sign_in(page, console, "klima@fanoe.example.dk")
    _visit(page, console, "/portal")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mine sager")
    check("a11y-portal")
    page.get_by_role("link", name="Åbn sagen").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Fanø")
    expect(page.get_by_role("region", name="CAPF-screening")).to_be_visible()
    check("a11y-portal-case")
    page.get_by_role("link", name="Read this page in English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("region", name="CAPF screening")).to_be_visible()
    check("a11y-en-portal-case")
