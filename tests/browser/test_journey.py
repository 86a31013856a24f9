"""Issue #12's journey in a real browser, as a new member of the secretariat takes it.

After ``dk2020flow demo``, ``dk2020flow users add`` and ``dk2020flow serve``: open the
console, be sent to sign in, ask for a link, take it from the mail in outbox/, press the
button, see the overview of the simulated programme, filter the cases to "round 2,
Syddanmark, late", open one, fire a trigger with its form and see it in the history.

Every page is screenshotted (01-sign-in.png …; docs/web.md shows them) and checked with
axe-core (WCAG 2.1 A/AA: no serious or critical violation), for Content-Security-Policy
refusals, script errors and failed sub-resources.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from .support import (
    AxeReport,
    Console,
    PageWatch,
    body_text,
    check_page,
    mail_files,
    sign_in,
    sign_in_link,
    wait_for_sign_in_mail,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

WITHDRAW_REASON = "Kommunalbestyrelsen har besluttet at udtræde (browsertest)."


def _number(text: str) -> int:
    """A count as the page shows it ("1.234" in Danish, "1,234" in English)."""
    digits = re.sub(r"[^\d]", "", text)
    assert digits, f"no number in {text!r}"
    return int(digits)


def _column(page: Page, table: str, header: str) -> int:
    """The index of the column headed ``header`` in ``table``'s head row."""
    headers = [h.strip() for h in page.locator(f"{table} thead th").all_inner_texts()]
    matching = [i for i, h in enumerate(headers) if h.lower().startswith(header.lower())]
    assert matching, f"no column {header!r} in {table}: {headers}"
    return matching[0]


def test_a_new_user_signs_in_filters_opens_a_case_and_fires_a_trigger(
    page: Page, console: Console, watch: PageWatch, axe_report: AxeReport, screenshots: Path
) -> None:
    def check(name: str) -> None:
        check_page(page, name, watch=watch, report=axe_report, screenshots=screenshots)

    # 1. A stranger opening the console is sent to sign in.
    page.goto(console.url("/"))
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2F$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Log ind")
    check("01-sign-in")

    # 2. They give their address; the page says to look in the mail.
    before = mail_files(console.outbox)
    page.get_by_label("E-mailadresse").fill(console.staff_email)
    page.get_by_role("button", name="Send link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Tjek din e-mail")
    expect(page.get_by_role("status")).to_contain_text(console.staff_email)
    check("01b-check-mail")

    # 3. The mail is in outbox/ (the folder transport): a one-time link and a code.
    mail = wait_for_sign_in_mail(console.outbox, console.staff_email, before)
    link = sign_in_link(mail, console.base_url)
    assert urlsplit(link).path == "/sign-in/link"
    assert "token" in parse_qs(urlsplit(link).query)
    assert re.search(r"\b[A-Z0-9]{4,}(-[A-Z0-9]{3,})?\b", body_text(mail)), "no code in the mail"

    # 4. Opening the link only shows a button (a mail scanner's GET signs nobody in) …
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Log ind på dk2020flow")
    expect(page.locator("form[action='/sign-out']")).to_have_count(0)
    check("02-mail-link")

    # 5. … pressing it signs them in, and they land on the overview.
    page.get_by_role("main").get_by_role("button", name="Log ind").click()
    expect(page).to_have_url(console.url("/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Programmets overblik")
    expect(page.get_by_text("Logget ind som Signe Sekretariat")).to_be_visible()
    # The simulated programme's numbers: every case counted, some late.
    total = page.locator("table").first.locator("tfoot td").last
    assert _number(total.inner_text()) == len(console.cases)
    expect(page.locator("#late-table tbody tr").first).to_be_visible()
    check("03-overview")

    # 6. The cases table, filtered as a user does it: pick from the form, press the button.
    page.get_by_role("navigation").get_by_role("link", name="Sager").click()
    expect(page).to_have_url(re.compile(r"/cases(\?|$)"))
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    check("04a-cases")
    filters = page.get_by_role("group", name="Filtrér sagerne")

    def choose(field: str, option: str) -> None:
        filters.get_by_role("combobox", name=field, exact=True).select_option(label=option)

    choose("Runde", "Runde 2")
    choose("Region", "Syddanmark")
    choose("Frister", "For sent")
    filters.get_by_role("button", name="Vis sager").click()

    # The filter lives in the URL (a view to bookmark or send on) …
    expect(page).to_have_url(re.compile(r"/cases\?.*late=1"))
    query = parse_qs(urlsplit(page.url).query)
    assert (query["round"], query["region"], query["late"]) == (["round2"], ["Syddanmark"], ["1"])
    # … and every row is a late round-2 case in Syddanmark: the ones the CLI finds.
    table = page.locator("#cases-table")
    rows = table.locator("tbody tr")
    expect(rows.first).to_be_visible()
    region, cohort, deadline = (
        _column(page, "#cases-table", name) for name in ("Region", "Runde", "Frist")
    )
    shown = []
    for row in rows.all():
        cells = [c.strip() for c in row.locator("th, td").all_inner_texts()]
        assert cells[region] == "Syddanmark", cells
        assert cells[cohort] == "Runde 2", cells
        assert "for sent" in cells[deadline], cells
        shown.append(row.get_by_role("link").first.inner_text().strip())
    expected = {c["organisation"] for c in console.late_round2_syddanmark}
    assert set(shown) == expected, (shown, expected)
    check("04-cases-filtered")

    # 7. Opening one shows its page.
    organisation = shown[0]
    rows.first.get_by_role("link", name=organisation).first.click()
    expect(page).to_have_url(re.compile(r"/cases/[^/?]+$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(organisation)
    check("05-case")

    # 8. Fire a trigger with its form. The staff member follows up (role follow_up) on a
    # organisation that is late: the council has decided to withdraw. From "revising" the
    # workflow lets follow_up fire only `withdraw` (resubmit_plan is the contact person's),
    # and it needs a reason: the form is built from that field.
    action = (
        page.get_by_role("region", name="Handlinger")
        .locator("form")
        .filter(has=page.get_by_role("heading", name="Udtræd af DK2020"))
    )
    expect(action).to_have_count(1)
    action.get_by_label("Begrundelse for udtræden").fill(WITHDRAW_REASON)
    action.get_by_role("button", name="Udfør: Udtræd af DK2020").click()

    # 9. It is in the history (by whom, with the reason), and the case is withdrawn.
    expect(page.get_by_role("status")).to_contain_text("Udført: Udtræd af DK2020")
    history = page.get_by_role("region", name="Historik").get_by_role("listitem")
    newest = history.first
    expect(newest).to_contain_text("Udtræd af DK2020")
    expect(newest).to_contain_text("Udtrådt")
    expect(newest).to_contain_text(console.staff_email)
    expect(newest).to_contain_text(WITHDRAW_REASON)
    check("06-fired")


def test_the_overview_opens_a_case(page: Page, console: Console, watch: PageWatch) -> None:
    """From the overview's tables of late and coming deadlines, a click opens the case."""
    sign_in(page, console, console.staff_email)
    page.goto(console.url("/"))
    first = page.locator("#late-table, #deadlines-table").locator("tbody th a").first
    organisation = first.inner_text().strip()
    first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(organisation)
    watch.assert_clean(f"the case page of {organisation} ({page.url})")
