"""The console as a user meets it: ``dk2020flow demo``, ``users add``, ``serve``, and a
headless Chromium (Debian's package, driven by Playwright) pointed at it.

Session-scoped: the demo simulates four years (10-40 s) once, one server serves every
test; each test gets a fresh browser context (no cookies), so each signs in itself.

Screenshots go to ``$DK2020FLOW_SCREENSHOTS`` (default: a temporary folder); docs/web/
holds a copy of the journey's. ``DK2020FLOW_SCREENSHOTS=docs/web pytest tests/browser``
renews them. ``DK2020FLOW_BROWSER_DEMO=FOLDER`` copies a folder where ``dk2020flow demo``
ran (and nothing else did) instead of simulating again: for working on these tests
(CI never sets it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from dk2020flow.cli.process import DEMO_BROWSE_AT

from .support import VIEWPORT, AxeReport, Console, PageWatch, free_port, serving

NOW = DEMO_BROWSE_AT
"""The instant the console's clock starts at: ``serve --now`` as ``dk2020flow demo`` tells
its user to start it (``cli.process.DEMO_BROWSE_AT``).

``dk2020flow demo`` simulates the programme to the end of 2023 and leaves the database as
it is then: a clock in 2022 would show the cases of 2023 with nothing late (every timer
due before 2024 has fired). With seed 0 the cases still open at the end are three in
round 2: Greve and Næstved (Sjælland) in screening, and Fanø (Syddanmark) in revising,
whose resubmission deadline is 2024-02-08 23:59. On 1 March 2024 all three are late,
so "round 2, Syddanmark, late" finds Fanø; ``console`` checks that it still does."""

STAFF_EMAIL = "signe@dk2020.example.dk"
"""A new member of the secretariat (not the account `dk2020flow demo` makes itself)."""
STAFF_NAME = "Signe Sekretariat"
STAFF_ROLES = ("secretariat", "follow_up")
ADMIN_EMAIL = "admin@dk2020.example.dk"
ADMIN_NAME = "Anders Admin"
ADMIN_ROLES = ("admin", "secretariat")


def _environment(folder: Path) -> dict[str, str]:
    """The shell a user would have in the demo folder (none of this machine's DK2020FLOW_*
    settings), pointed at the demo's database and outbox explicitly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env["DK2020FLOW_DATABASE_URL"] = f"sqlite:///{folder / 'dk2020flow.db'}"
    env["DK2020FLOW_MAIL_FOLDER"] = str(folder / "outbox")
    env["COLUMNS"] = "200"
    return env


def _run(folder: Path, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        ["dk2020flow", *args],
        cwd=folder,
        env=_environment(folder),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"dk2020flow {' '.join(args)}: exit {done.returncode}\n{done.stderr}"
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


@pytest.fixture(scope="package")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("DK2020FLOW_SCREENSHOTS", "").strip()
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="package")
def axe_report(screenshots: Path) -> Iterator[AxeReport]:
    report = AxeReport()
    yield report
    report.write(screenshots)


@pytest.fixture(scope="package")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where ``dk2020flow demo`` ran, with the two staff accounts added."""
    folder = tmp_path_factory.mktemp("demo")
    earlier = os.environ.get("DK2020FLOW_BROWSER_DEMO", "").strip()
    if earlier:
        shutil.copyfile(Path(earlier) / "dk2020flow.db", folder / "dk2020flow.db")
        shutil.copytree(Path(earlier) / "outbox", folder / "outbox")
    else:
        _run(folder, "demo")
    assert (folder / "dk2020flow.db").is_file() and (folder / "outbox").is_dir()
    for address, name, roles in (
        (STAFF_EMAIL, STAFF_NAME, STAFF_ROLES),
        (ADMIN_EMAIL, ADMIN_NAME, ADMIN_ROLES),
    ):
        role_options = [part for role in roles for part in ("--role", role)]
        _run(folder, "users", "add", address, "--name", name, *role_options)
    return folder


@pytest.fixture(scope="package")
def console(demo_folder: Path) -> Iterator[Console]:
    """``dk2020flow serve --port <free> --now NOW`` in the demo folder, stopped at the end
    (its stderr must hold no traceback)."""
    cases = json.loads(_run(demo_folder, "case", "list", "--json"))
    overdue = ["--overdue", "--cohort", "round2", "--region", "Syddanmark", "--now", NOW]
    late = json.loads(_run(demo_folder, "case", "list", *overdue, "--json"))
    assert late, f"the demo has no late round-2 case in Syddanmark on {NOW}: choose another NOW"
    with serving(demo_folder, _environment(demo_folder), NOW, free_port()) as served:
        yield Console(
            base_url=served.base_url,
            folder=demo_folder,
            outbox=demo_folder / "outbox",
            now=NOW,
            staff_email=STAFF_EMAIL,
            admin_email=ADMIN_EMAIL,
            cases=cases,
            late_round2_syddanmark=late,
        )


# Package scope, not session: Playwright's sync API runs an asyncio loop in the main thread
# while it is open, and every later test that starts one (asyncio.run: SMTP, the folder
# transport) would fail. The package's fixtures end after its last test.
@pytest.fixture(scope="package")
def browser(chromium: str) -> Iterator[Browser]:
    """Headless Chromium from the distribution (never ``playwright install``)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile: no cookies, Danish, the size of a laptop screen."""
    made = browser.new_context(viewport=VIEWPORT, locale="da-DK")  # type: ignore[arg-type]
    made.set_default_timeout(15_000)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def page(context: BrowserContext, watch: PageWatch) -> Page:
    opened = context.new_page()
    watch.attach(opened)
    return opened
