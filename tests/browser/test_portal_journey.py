"""Issue #13's journey in a real browser: an organisation's contact person, the secretariat
and C40 take one case from the application to the adopted plan, each on their own side of
``dk2020flow serve`` (the portal and the console).

The programme is ``dk2020flow demo``'s (the same workflow, behaviour profile and seed, run
by the same ``simulate.run_simulation``), stopped at the end of 8 October 2020: the round-1
councils that have not applied yet were reminded that morning, two weeks before the
deadline of 21 October, each contact person by a mail to them alone with a signed link to
their case. By the end of 2023, where the demo stops, every case has left the application
behind; and Aarhus, a pilot organisation since 2019, never hands one in (its case opens
in guidance or drafting). So the journey is Viborg's, a council that joined round 1 in
August 2020 and has not applied yet:

1. The contact person opens the signed link in the reminder (an .eml in outbox/), presses
   the button that signs them in; uploads the application and submits it.
2. The secretariat (signed in as in the console's journey) accepts it, starts the round
   and completes the onboarding.
3. Later the contact person, by the link in a newer mail (a copy to the mayor too: the
   case's plain address, then the one-time sign-in link), completes the evidence, uploads
   the draft plan and submits it.
4. The secretariat screens it: 14 CAPF items met, two "not met" with a comment each, and
   asks for a revision.
5. The contact person reads the comments on their case page, answers them, uploads the
   revised plan and resubmits it.
6. The secretariat marks the two items met and passes the screening; C40's reviewer
   records the approval; the contact person uploads the council's decision and records
   the adoption: the plan is approved.
7. The console's history and mail table show every step; the outbox/ folder holds the
   mail the scheduler delivered.

Screenshots ``portal-*.png``; docs/portal.md shows a copy (docs/portal/). Every page is
checked with axe-core as the console's journey does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from dk2020flow.cli.process import DEMO_START
from dk2020flow.service.filetypes import sample

from .support import (
    VIEWPORT,
    AxeReport,
    Console,
    PageWatch,
    check_page,
    free_port,
    mail_files,
    read_mail,
    serving,
    sign_in,
    wait_for_sign_in_mail,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SIMULATED_TO = dt.date(2020, 10, 8)
NOW = "2020-10-09T09:00"
"""The console's clock starts the morning after the simulation stopped."""
ZONE = dt.timezone(dt.timedelta(hours=2))  # Copenhagen in September (CEST)
ORGANISATION = "Viborg"
CONTACT = "klima@viborg.example.dk"
STAFF = "signe@dk2020.example.dk"
C40 = "reviewer@c40.example.org"
REVISE = {
    "P2.3": "Basisårets CO2-opgørelse mangler transporten; tilføj den.",
    "P3.5": "Angiv handlingernes effekt i ton CO2e og det resterende gab.",
}
ANSWERS = {
    "P2.3": "Transporten er nu med i opgørelsen (bilag B, tabel 2).",
    "P3.5": "Effekterne står i tabel 4; gabet er 38.000 ton CO2e i 2030.",
}
CAPF_ITEMS = ("P1.1", "P1.2", "P1.3", "P1.4", "P1.5", "P2.1", "P2.2", "P2.3")
CAPF_ITEMS += ("P2.4", "P2.5", "P3.1", "P3.2", "P3.3", "P3.4", "P3.5", "P3.6")


def _environment(folder: Path, base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env["DK2020FLOW_DATABASE_URL"] = f"sqlite:///{folder / 'dk2020flow.db'}"
    env["DK2020FLOW_MAIL_FOLDER"] = str(folder / "outbox")
    env["DK2020FLOW_PUBLIC_URL"] = base_url
    env["COLUMNS"] = "200"
    return env


@dataclass
class Programme:
    """The running console over the simulated programme, and the command line beside it."""

    base_url: str
    folder: Path
    env: dict[str, str]
    cases: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    """When ``serve`` started (``time.monotonic``)."""
    started_wall: float = 0.0

    @property
    def outbox(self) -> Path:
        return self.folder / "outbox"

    @property
    def console(self) -> Console:
        """As the console's tests know it (for ``support.sign_in``)."""
        return Console(
            base_url=self.base_url,
            folder=self.folder,
            outbox=self.outbox,
            now=NOW,
            staff_email=STAFF,
            admin_email=STAFF,
            cases=self.cases,
            late_round2_syddanmark=[],
        )

    def url(self, path: str) -> str:
        return self.base_url + path

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["dk2020flow", *args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"dk2020flow {' '.join(args)}: {done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def clock(self) -> str:
        """The console's clock now (``serve --now`` runs on from NOW)."""
        start = dt.datetime.fromisoformat(NOW).replace(tzinfo=ZONE)
        at = start + dt.timedelta(seconds=time.monotonic() - self.started + 1)
        return at.isoformat(timespec="seconds")

    def deliver(self) -> None:
        """The scheduler's round at the console's clock: due timers, and the outbox
        delivered into outbox/ as .eml files."""
        self.run("scheduler", "run", "--once", "--now", self.clock())


@pytest.fixture(scope="module")
def programme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Programme]:
    folder = tmp_path_factory.mktemp("portal-demo")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # In a process of its own: Playwright's sync API holds an asyncio loop in this one,
    # and the simulation's mail delivery runs one (conftest.py, ``browser``).
    simulate = (
        "import datetime as dt, sys; from pathlib import Path;"
        "from dk2020flow.simulate import run_simulation;"
        "f = Path(sys.argv[1]);"
        "run_simulation(Path(sys.argv[2]), start=dt.date.fromisoformat(sys.argv[3]),"
        " end=dt.date.fromisoformat(sys.argv[4]), seed=0, out_dir=f / 'outbox',"
        " db_url=f'sqlite:///{f / \"dk2020flow.db\"}', public_url=sys.argv[5])"
    )
    done = subprocess.run(
        [sys.executable, "-c", simulate, str(folder), str(ROOT / "workflows" / "dk2020.yaml"),
         DEMO_START.isoformat(), SIMULATED_TO.isoformat(), base],
        env=_environment(folder, base),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    made = Programme(base_url=base, folder=folder, env=_environment(folder, base))
    made.run("users", "add", STAFF, "--name", "Signe Sekretariat", "--role", "secretariat")
    made.run("users", "add", C40, "--name", "C40 CAPF-reviewer", "--role", "approver")
    made.cases = json.loads(made.run("case", "list", "--json"))
    with serving(folder, made.env, NOW, port) as served:
        made.started, made.started_wall = served.started, served.started_wall
        yield made


@pytest.fixture(scope="module")
def case(programme: Programme) -> dict[str, Any]:
    [found] = [c for c in programme.cases if c["organisation"] == ORGANISATION]
    assert found["state"] == "decided", found
    return dict(found)


def _context(browser: Browser) -> BrowserContext:
    made = browser.new_context(viewport=VIEWPORT, locale="da-DK")  # type: ignore[arg-type]
    made.set_default_timeout(15_000)
    return made


def _links(text: str, base: str) -> list[str]:
    return re.findall(re.escape(base) + r"/[^\s<>\"')]+", text)


def _newest_mail_with_link(
    programme: Programme, to: str, *, signed_first: bool = True
) -> tuple[EmailMessage, str]:
    """The newest .eml to ``to`` that links to the console: with ``signed_first``, one with
    a signed case link (a mail to that person alone) if there is one, else the newest with
    any link (a copy to several people links to the case's plain address)."""
    paths = sorted(mail_files(programme.outbox), key=lambda p: p.stat().st_mtime, reverse=True)
    found: list[tuple[EmailMessage, str]] = []
    for path in paths:
        message = read_mail(path)
        if to.lower() not in str(message.get("To", "")).lower():
            continue
        part = message.get_body(preferencelist=("plain",))
        links = _links(str(part.get_content()) if part is not None else "", programme.base_url)
        signed = [link for link in links if "/sign-in/case" in link]
        if signed and (signed_first or not found):
            return message, signed[0]
        if links:
            found.append((message, links[0]))
    assert found, f"no mail to {to} with a link to {programme.base_url}"
    return found[0]


def _press_main_button(page: Page) -> None:
    page.locator("main form button[type=submit]").first.click()


def _open_mail_link(
    page: Page,
    programme: Programme,
    link: str,
    address: str,
    on_button: Callable[[], None] = lambda: None,
) -> str:
    """Open a mail's link as its reader does. A signed case link shows a button that
    signs in; a plain address leads to the sign-in page, and the one-time link."""
    page.goto(link)
    if "/sign-in/case" in page.url:  # the link's page: a button (the GET signs nobody in)
        expect(page.locator("form[action='/sign-out']")).to_have_count(0)
        on_button()
        _press_main_button(page)
        expect(page.locator("form[action='/sign-out']")).to_be_visible()
        return "signed case link"
    expect(page).to_have_url(re.compile(r"/sign-in"))  # a plain address, or expired
    before = mail_files(programme.outbox)
    page.get_by_role("textbox").first.fill(address)
    _press_main_button(page)
    message = wait_for_sign_in_mail(programme.outbox, address, before)
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    page.goto(_links(str(part.get_content()), programme.base_url)[0])
    _press_main_button(page)
    expect(page.locator("form[action='/sign-out']")).to_be_visible()
    return "one-time sign-in link"


def _action(page: Page, region: str, title: str) -> Locator:
    form = (
        page.get_by_role("region", name=region)
        .locator("form")
        .filter(has=page.get_by_role("heading", name=title, exact=True))
    )
    expect(form).to_have_count(1)
    return form


def _portal_fire(page: Page, title: str, fields: dict[str, str] | None = None) -> None:
    form = _action(page, "Det kan du gøre nu", title)
    for label, value in (fields or {}).items():
        field = form.get_by_label(label)  # "(skal udfyldes)" follows a required one
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    form.get_by_role("button", name=f"Udfør: {title}").click()
    expect(page.get_by_role("status")).to_contain_text("Tak, det er registreret.")


def _portal_upload(page: Page, slot: str, path: Path) -> None:
    form = page.locator(f"#form-upload-{slot}")
    form.get_by_label("Vælg fil").set_input_files(str(path))
    form.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_contain_text("Dokumentet er uploadet.")
    expect(page.get_by_role("region", name="Dokumenter")).to_contain_text(path.name)


def _console_fire(page: Page, title: str, fields: dict[str, str] | None = None) -> None:
    form = _action(page, "Handlinger", title)
    for label, value in (fields or {}).items():
        form.get_by_label(label).fill(value)
    form.get_by_role("button", name=f"Udfør: {title}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Udført: {title}")


def _record_capf(page: Page, statuses: dict[str, tuple[str, str]]) -> None:
    form = page.locator("#form-check-capf")
    for item, (status, comment) in statuses.items():
        form.get_by_label(f"Status for {item}", exact=True).select_option(status)
        if comment:
            form.get_by_label(f"Kommentar til {item}", exact=True).fill(comment)
    form.get_by_role("button", name="Gem CAPF-screening").click()
    expect(page.get_by_role("status")).to_contain_text("CAPF-screening er gemt.")


def _document(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_bytes(sample("pdf", text))
    return path


def test_from_the_application_to_the_adopted_plan(
    browser: Browser,
    programme: Programme,
    case: dict[str, Any],
    axe_report: AxeReport,
    screenshots: Path,
    tmp_path: Path,
) -> None:
    watch = PageWatch()
    case_url = programme.url(f"/portal/cases/{case['id']}")
    staff_url = programme.url(f"/cases/{case['id']}")
    files = tmp_path / "files"
    files.mkdir()

    def check(page: Page, name: str) -> None:
        check_page(page, name, watch=watch, report=axe_report, screenshots=screenshots)

    def detail(what: Page | Locator, name: str) -> None:
        """A small screenshot for docs/portal.md: a region, or the page's first screen."""
        what.screenshot(path=str(screenshots / f"{name}.png"), caret="initial")

    contact_context, staff_context, c40_context = (_context(browser) for _ in range(3))
    try:
        contact = contact_context.new_page()
        staff = staff_context.new_page()
        c40 = c40_context.new_page()
        for page in (contact, staff, c40):
            watch.attach(page)

        # 1. The contact person opens the signed link in the reminder the programme sent
        #    them alone, and presses the button: signed in, on their case.
        reminder, link = _newest_mail_with_link(programme, CONTACT)
        assert str(reminder["Subject"]).startswith("Påmindelse: DK2020-ansøgning")
        how = _open_mail_link(
            contact, programme, link, CONTACT, lambda: check(contact, "portal-00-case-link")
        )
        assert how == "signed case link", how
        expect(contact.get_by_role("heading", level=1)).to_have_text(ORGANISATION)
        contact.goto(programme.url("/portal"))
        expect(contact.get_by_role("heading", level=1)).to_have_text("Mine sager")
        expect(contact.get_by_role("heading", name=ORGANISATION)).to_be_visible()
        check(contact, "portal-01-my-cases")
        detail(contact, "doc-01-my-cases")
        contact.goto(case_url)
        expect(contact.get_by_role("heading", level=1)).to_have_text(ORGANISATION)
        check(contact, "portal-02-case")

        #    The application with its required document.
        _portal_upload(
            contact, "application", _document(files, "Viborg-ansøgning.pdf", "Ansøgning")
        )
        _portal_fire(
            contact,
            "Indsend ansøgning",
            {"Forpligtelseserklæring underskrevet": "true", "Timer om ugen til planarbejdet": "30"},
        )
        expect(contact.get_by_role("region", name="Forløbet")).to_contain_text(
            "Ansøgning indsendt (her er sagen nu)"
        )
        check(contact, "portal-03-application-submitted")
        detail(contact, "doc-03-application-submitted")

        # 2. The secretariat, signed in as in the console's journey, accepts it.
        sign_in(staff, programme.console, STAFF)
        staff.goto(staff_url)
        _console_fire(staff, "Godkend ansøgning")
        check(staff, "portal-04-console-accepted")
        _console_fire(staff, "Runden starter")
        _console_fire(staff, "Onboarding afsluttet", {"Regional rådgiver": "Bo Rådgiver"})
        programme.deliver()

        # 3. Later: the contact person follows the signed link of a newer mail to the case
        #    (a fresh browser: signed out), completes the evidence, uploads the draft plan.
        contact_context.clear_cookies()
        newer, link = _newest_mail_with_link(programme, CONTACT, signed_first=False)
        assert newer["Message-ID"] != reminder["Message-ID"]
        how_later = _open_mail_link(contact, programme, link, CONTACT)
        contact.goto(case_url)
        _portal_fire(contact, "Vidensgrundlag klar", {"Basisår for CO2-opgørelsen": "2019"})
        _portal_upload(contact, "draft_plan", _document(files, "Klimaplan-udkast.pdf", "Plan"))
        _portal_fire(
            contact,
            "Indsend planudkast",
            {"Link til planudkast": "https://www.viborg.example.dk/klimaplan.pdf"},
        )
        check(contact, "portal-05-plan-submitted")

        # 4. The secretariat screens the plan: two items need revision, with comments.
        staff.goto(staff_url)
        statuses = dict.fromkeys(CAPF_ITEMS, ("met", ""))
        statuses.update({item: ("not_met", comment) for item, comment in REVISE.items()})
        _record_capf(staff, statuses)
        _console_fire(staff, "Bed om revision")
        check(staff, "portal-06-console-revision-requested")
        detail(staff.get_by_role("region", name="CAPF-screening"), "doc-06-console-capf")
        programme.deliver()

        # 5. The contact person sees each item's status and the comments, answers them.
        contact.goto(case_url)
        capf = contact.get_by_role("region", name="CAPF-screening")
        expect(capf).to_contain_text("2 krav skal revideres")
        for item, comment in REVISE.items():
            row = capf.get_by_role("row").filter(has_text=item)
            expect(row).to_contain_text("Ikke opfyldt")
            expect(row).to_contain_text(comment)
        check(contact, "portal-07-comments")
        detail(capf, "doc-07-comments")
        for item, answer in ANSWERS.items():
            capf.get_by_label(f"Jeres svar på {item}", exact=True).fill(answer)
        capf.get_by_role("button", name="Gem svarene").click()
        expect(contact.get_by_role("status")).to_contain_text("Tak, dine svar er registreret.")
        capf = contact.get_by_role("region", name="CAPF-screening")
        for item, answer in ANSWERS.items():
            expect(capf.get_by_label(f"Jeres svar på {item}", exact=True)).to_have_value(answer)
        check(contact, "portal-08-answered")
        detail(capf, "doc-08-answered")
        #    … and resubmits the revised plan.
        _portal_upload(
            contact, "draft_plan", _document(files, "Klimaplan-revideret.pdf", "Revideret")
        )
        _portal_fire(
            contact,
            "Indsend revideret plan",
            {"Link til planudkast": "https://www.viborg.example.dk/klimaplan-2.pdf"},
        )

        # 6. The console shows the answers; the two items are met now; screening passed.
        staff.goto(staff_url)
        checklist = staff.get_by_role("region", name="CAPF-screening")
        for answer in ANSWERS.values():
            expect(checklist).to_contain_text(answer)
        check(staff, "portal-09-console-answers")
        detail(checklist, "doc-09-console-answers")
        _record_capf(staff, dict.fromkeys(REVISE, ("met", "Rettet.")))
        _console_fire(staff, "Screening bestået")

        #    C40's reviewer approves …
        sign_in(c40, programme.console, C40)
        c40.goto(staff_url)
        _console_fire(c40, "C40 har godkendt", {"C40-godkendelsesdato": "2020-10-09"})

        #    … and the contact person records the council's adoption with its minutes.
        contact.goto(case_url)
        _portal_upload(
            contact, "council_decision", _document(files, "Byrådets-beslutning.pdf", "Referat")
        )
        _portal_fire(
            contact,
            "Kommunalbestyrelsen har vedtaget planen",
            {"Vedtagelsesdato": "2020-10-09"},
        )
        expect(contact.get_by_role("region", name="Forløbet")).to_contain_text(
            "Godkendt plan (her er sagen nu)"
        )
        check(contact, "portal-10-approved")
        detail(contact, "doc-10-approved")
        programme.deliver()

        # 7. The history and the mail show each step.
        staff.goto(staff_url)
        history = staff.get_by_role("region", name="Historik")
        for step in (
            "Indsend ansøgning",
            "Godkend ansøgning",
            "Indsend planudkast",
            "Bed om revision",
            "Tjekliste besvaret",
            "Indsend revideret plan",
            "Screening bestået",
            "C40 har godkendt",
            "Kommunalbestyrelsen har vedtaget planen",
            "Planen er godkendt",
        ):
            expect(history).to_contain_text(step)
        expect(history).to_contain_text(CONTACT)
        expect(history).to_contain_text(C40)
        expect(history).to_contain_text(ANSWERS["P2.3"])
        mail = staff.get_by_role("region", name="Mail")
        for template in (
            "application_received",
            "revision_requested",
            "plan_received",
            "screening_passed",
            "approval_request",
        ):
            expect(mail).to_contain_text(f"({template})")
        check(staff, "portal-11-console-history")
        detail(history, "doc-11-console-history")
    finally:
        for made in (contact_context, staff_context, c40_context):
            made.close()

    # The delivered mail: the contact person's .eml files, one per step that told them.
    shown = json.loads(programme.run("case", "show", f"#{case['id']}", "--json"))
    assert shown["state"] == "approved"
    assert shown["checklists"]["capf"]["P2.3"] == {
        "status": "met",
        "comment": "Rettet.",
        "answer": "",
    }
    history_json = json.loads(programme.run("case", "history", f"#{case['id']}", "--json"))
    answered = [e for e in history_json if e["kind"] == "checklist_answer"]
    assert [e["data"]["answers"] for e in answered] == [ANSWERS]
    assert answered[0]["actor"] == CONTACT and answered[0]["role"] == "contact_person"
    subjects = []
    for path in mail_files(programme.outbox):
        message = read_mail(path)
        if CONTACT in str(message.get("To", "")) and path.stat().st_mtime >= programme.started_wall:
            subjects.append(str(message.get("Subject", "")))
    assert len(subjects) >= 4, subjects
    programme.run("case", "verify", f"#{case['id']}")
    print(f"signed in first by the {how}, later by the {how_later}")
