"""What the browser tests share: the console they drive, the axe-core check, the sign-in.

Kept out of conftest.py so the tests can import it (``from .support import …``).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import axe_playwright_python
import httpx2 as httpx
from playwright.sync_api import ConsoleMessage, Page, Response, expect

AXE_SOURCE = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text(
    encoding="utf-8"
)
"""axe-core as the ``axe-playwright-python`` package ships it (no download at test time)."""

WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
VIEWPORT = {"width": 1280, "height": 900}
"""A laptop's screen; screenshots are full-page, whatever the height."""

BLOCKING_IMPACTS = frozenset({"serious", "critical"})
"""The issue's bar: no serious or critical violation on any page."""


@dataclass(frozen=True)
class Console:
    """A running ``dk2020flow serve`` over the demo programme."""

    base_url: str
    folder: Path
    """The demo folder: dk2020flow.db, outbox/, report.html."""
    outbox: Path
    now: str
    """The instant the console's clock started at (``serve --now``)."""
    staff_email: str
    admin_email: str
    cases: list[dict[str, Any]]
    """Every case of the demo (``dk2020flow case list --json``)."""
    late_round2_syddanmark: list[dict[str, Any]]
    """``case list --overdue --cohort round2 --region Syddanmark --now NOW --json``."""

    def url(self, path: str) -> str:
        return self.base_url + path


@dataclass
class PageWatch:
    """What a page did that no user sees but a test must: Content-Security-Policy
    refusals, script errors, and sub-resources (CSS, scripts, images) that failed."""

    problems: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        # "Failed to load resource" is reported by _response, with its address (the
        # document itself may be a 404 or 403 page on purpose; and the browser asks for
        # /favicon.ico by itself when a page names no icon, which is no fault of the page).
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            where = message.location.get("url", "")
            self.problems.append(
                f"console error: {message.text}" + (f" ({where})" if where else "")
            )

    def _response(self, response: Response) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            self.problems.append(f"{response.status} for {response.url}")

    def assert_clean(self, where: str) -> None:
        found, self.problems = self.problems, []
        assert not found, f"{where}: " + "; ".join(found)


@dataclass
class AxeReport:
    """Every page's axe result of the session (written to axe-summary.json beside the
    screenshots, for docs and for the report of which page has what)."""

    pages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def write(self, folder: Path) -> None:
        (folder / "axe-summary.json").write_text(
            json.dumps(self.pages, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )


def run_axe(page: Page) -> dict[str, Any]:
    """axe-core's result for the page as it is now, on the WCAG 2.1 A and AA rules.

    The console's Content-Security-Policy (``script-src 'self'``) refuses an inline
    <script>, and ``page.add_script_tag(path=…)`` inserts exactly that: the page would
    refuse axe. ``page.evaluate`` runs it through the DevTools protocol instead, which
    the page's policy does not govern, so the check runs on the page under its real
    policy (no ``bypass_csp`` context, which would hide the page's own CSP refusals).
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE)
    result: dict[str, Any] = page.evaluate(
        "options => window.axe.run(document, options)",
        {"runOnly": {"type": "tag", "values": WCAG_21_AA}, "resultTypes": ["violations"]},
    )
    return result


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(
            f"- {violation['id']} ({violation['impact']}): {violation['help']} "
            f"[{violation['helpUrl']}]"
        )
        for node in violation["nodes"][:10]:
            target = " ".join(str(t) for t in node["target"])
            lines.append(f"    {target}: {node.get('failureSummary', '').splitlines()[-1:]}")
        if len(violation["nodes"]) > 10:
            lines.append(f"    … and {len(violation['nodes']) - 10} more")
    return "\n".join(lines)


def check_page(
    page: Page,
    name: str,
    *,
    watch: PageWatch,
    report: AxeReport,
    screenshots: Path,
) -> None:
    """Screenshot the page (full length) to ``<name>.png``, then fail on a CSP refusal,
    a script error, a failed sub-resource, or a serious or critical axe violation."""
    page.wait_for_load_state("load")
    # caret="initial": Playwright's default (hide the caret) leaves style="" on every
    # input, and htmx's history snapshot, cloning them, then trips the page's CSP.
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True, caret="initial")
    watch.assert_clean(f"{name} ({page.url})")
    result = run_axe(page)
    assert result["passes"], f"axe-core checked nothing on {page.url}"
    violations = result["violations"]
    report.pages[name] = {
        "url": page.url,
        "violations": [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "targets": [" ".join(str(t) for t in n["target"]) for n in v["nodes"]],
            }
            for v in violations
        ],
    }
    blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, (
        f"axe-core (WCAG 2.1 A/AA) on {name} ({page.url}): "
        f"{len(blocking)} serious or critical violation(s)\n{describe(blocking)}"
    )


# ----------------------------------------------------------------------- sign-in mail


def mail_files(outbox: Path) -> set[Path]:
    """The delivered mail: not the folder transport's ``.tmp-*.eml`` still being written
    (renamed into place when complete)."""
    return {p for p in outbox.glob("*.eml") if not p.name.startswith(".")}


def read_mail(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        message = email.message_from_binary_file(handle, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def wait_for_sign_in_mail(
    outbox: Path, to: str, before: set[Path], timeout: float = 30.0
) -> EmailMessage:
    """The newest mail to ``to`` that was not in the outbox before (the console sends the
    sign-in mail at once; poll the folder until it is there)."""
    deadline = time.monotonic() + timeout
    while True:
        new = sorted(mail_files(outbox) - before, key=lambda p: p.stat().st_mtime, reverse=True)
        for path in new:
            message = read_mail(path)
            if to.lower() in str(message.get("To", "")).lower():
                return message
        assert time.monotonic() < deadline, (
            f"no sign-in mail to {to} appeared in {outbox} within {timeout:.0f} s "
            f"({len(new)} other new file(s))"
        )
        time.sleep(0.1)


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    assert part is not None, "the sign-in mail has no text body"
    content = part.get_content()
    assert isinstance(content, str)
    return content


def sign_in_link(message: EmailMessage, base_url: str) -> str:
    """The one-time link in the mail (to this console)."""
    links = re.findall(re.escape(base_url) + r"/[^\s<>\"')]+", body_text(message))
    assert links, f"no link to {base_url} in the sign-in mail:\n{body_text(message)}"
    return str(links[0])


def sign_in(page: Page, console: Console, address: str) -> None:
    """Sign ``address`` in through the real flow (form, mail, link, button); for the
    tests that need a signed-in page without making that flow their subject."""
    before = mail_files(console.outbox)
    page.goto(console.url("/sign-in"))
    page.get_by_role("textbox").first.fill(address)
    page.locator("main form button[type=submit], main form input[type=submit]").first.click()
    message = wait_for_sign_in_mail(console.outbox, address, before)
    page.goto(sign_in_link(message, console.base_url))
    page.locator("main form button[type=submit], main form input[type=submit]").first.click()
    expect(page.locator("form[action='/sign-out']")).to_be_visible()


# ----------------------------------------------------------------------------- serve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Poll /healthz until it answers 200 (the server listens and its database answers);
    fail at once if the process dies, or after 60 s."""
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(
                f"dk2020flow serve exited with {process.returncode}:\n"
                + log.read_text(encoding="utf-8", errors="replace")
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer within 60 s"
        time.sleep(0.1)


@dataclass(frozen=True)
class Served:
    base_url: str
    started: float
    """``time.monotonic()`` when the process started (its ``--now`` clock began then)."""
    started_wall: float
    """``time.time()`` at the same moment (to compare with files' mtimes)."""


@contextmanager
def serving(folder: Path, env: dict[str, str], now: str, port: int) -> Iterator[Served]:
    """``dk2020flow serve --port PORT --now NOW`` in ``folder``, once it answers /healthz;
    stopped at the end, and its stderr (``folder/serve.log``) must hold no traceback."""
    log = folder / "serve.log"
    with log.open("wb") as stderr:
        started, started_wall = time.monotonic(), time.time()
        process = subprocess.Popen(
            ["dk2020flow", "serve", "--port", str(port), "--now", now],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_healthy(process, base + "/healthz", log)
            yield Served(base_url=base, started=started, started_wall=started_wall)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    output = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in output, f"dk2020flow serve logged a traceback:\n{output}"
