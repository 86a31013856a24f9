"""`dk2020flow demo` as a user runs it: the main job, end to end, in a fresh folder."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
from email import policy
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dk2020flow(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = shutil.which("dk2020flow")
    argv = [command, *args] if command else [sys.executable, "-m", "dk2020flow.cli", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    bundled = resources.files("dk2020flow").joinpath("_bundled/workflows/dk2020.yaml")
    if not bundled.is_file():
        # This install ships no copy of the workflow: run it the way a clone does.
        for name in ("workflows", "notifications"):
            (folder / name).symlink_to(ROOT / name)
    return folder


@pytest.fixture(scope="module")
def demo(demo_dir: Path) -> subprocess.CompletedProcess[str]:
    return dk2020flow("demo", cwd=demo_dir, timeout=1200)


@pytest.mark.timeout(1500)
def test_demo_builds_database_mail_and_report(
    demo: subprocess.CompletedProcess[str], demo_dir: Path
) -> None:
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "Traceback" not in demo.stderr
    assert "dk2020flow case list" in demo.stdout
    assert (demo_dir / "dk2020flow.db").is_file()
    report = (demo_dir / "report.html").read_text(encoding="utf-8")
    assert report.startswith("<!DOCTYPE html>")
    assert report.count("<svg") >= 3
    mails = sorted((demo_dir / "outbox").glob("*.eml"))
    assert len(mails) > 500
    message = email.message_from_bytes(mails[0].read_bytes(), policy=policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "DK2020" in str(message["Subject"]) or "DK2020" in text
    assert any(word in text for word in ("Med venlig hilsen", "kommune", "Kære")), text[:500]


@pytest.mark.timeout(1500)
def test_the_other_commands_work_on_the_demo_database(
    demo: subprocess.CompletedProcess[str], demo_dir: Path
) -> None:
    assert demo.returncode == 0, demo.stderr[-2000:]
    listed = dk2020flow("case", "list", cwd=demo_dir)
    assert listed.returncode == 0, listed.stderr
    assert "Aarhus" in listed.stdout
    shown = dk2020flow("case", "history", "Aarhus", cwd=demo_dir)
    assert shown.returncode == 0, shown.stderr
    reported = dk2020flow("report", "--at", "2023-12-31", cwd=demo_dir)
    assert reported.returncode == 0, reported.stderr
    assert "Decisions and sign-ups" in reported.stdout
    as_csv = dk2020flow("report", "--format", "csv", cwd=demo_dir)
    assert as_csv.returncode == 0, as_csv.stderr
    assert as_csv.stdout.startswith("section,group,category,value")


@pytest.mark.timeout(1500)
def test_a_second_demo_refuses_to_overwrite(
    demo: subprocess.CompletedProcess[str], demo_dir: Path
) -> None:
    assert demo.returncode == 0, demo.stderr[-2000:]
    again = dk2020flow("demo", cwd=demo_dir)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "--fresh" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.timeout(1500)
def test_contact_persons_mail_carries_a_link_that_signs_them_in(
    demo: subprocess.CompletedProcess[str], demo_dir: Path
) -> None:
    """The demo's mail to one contact person carries a case link to where `dk2020flow
    serve` listens by default (docs/portal.md, "Links in mail"); one the demo's database
    accepts for that person and case."""
    import datetime as dt
    import re

    from dk2020flow.clock import FixedClock
    from dk2020flow.service.core import open_service
    from dk2020flow.service.links import CaseLinkSignIn
    from dk2020flow.settings import Settings

    assert demo.returncode == 0, demo.stderr[-2000:]
    link = re.compile(r"http://127\.0\.0\.1:8020/sign-in/case\?token=([\w.-]+)")
    found: tuple[str, str] | None = None
    for path in sorted((demo_dir / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["Cc"]:
            continue
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        match = link.search(body.get_content())
        if match:
            html = message.get_body(preferencelist=("html",))
            assert html is not None and match.group(0) in html.get_content().replace("&amp;", "&")
            to = message["To"].addresses[0].addr_spec
            found = (match.group(1), to)
            break
    assert found, "no mail in outbox/ carries a case link"
    token, to = found
    # An hour before it expires (the links are as old as the simulated mail).
    at = dt.datetime.fromtimestamp(int(token.split(".")[1]) - 3600, dt.UTC)
    url = f"sqlite:///{demo_dir / 'dk2020flow.db'}"
    with open_service(url, clock=FixedClock(at), settings=Settings(database_url=url)) as service:
        target = CaseLinkSignIn(service).check(token)
    assert target.email == to.lower()
