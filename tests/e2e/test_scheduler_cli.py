"""`dk2020flow scheduler …`, `outbox …` and `mail preview` run as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from dk2020flow.cli.common import to_jsonable
from dk2020flow.clock import FixedClock, parse_instant
from dk2020flow.notify.transports import FolderTransport, SmtpTransport
from dk2020flow.runtime.daemon import Daemon
from dk2020flow.service import Service
from dk2020flow.settings import Settings
from dk2020flow.store.port import Contact, OutboxMessage
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[2]
DK2020 = ROOT / "workflows" / "dk2020.yaml"
OPENED = "2020-06-15T10:00+02:00"
REMINDERS = "2020-08-19T12:00+02:00"
ESCALATION = "2020-09-01T10:00+02:00"
CITIES = ("Aarhus", "Odense", "Aalborg")


def _env(db_url: str, mail: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env.update(
        DK2020FLOW_DATABASE_URL=db_url,
        DK2020FLOW_MAIL_TRANSPORT="folder",
        DK2020FLOW_MAIL_FOLDER=str(mail),
        DK2020FLOW_MAIL_SENDER="dk2020@concito.example.dk",
        PYTHONUNBUFFERED="1",
    )
    return env


class Cli:
    def __init__(self, db_url: str, tmp: Path) -> None:
        self.db_url = db_url
        self.tmp = tmp
        self.mail = tmp / "mail"
        self.env = _env(db_url, self.mail)

    def __call__(self, *args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["dk2020flow", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.tmp,
            timeout=120,
            check=False,
        )
        if code is not None:
            assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def json(self, *args: str, code: int | None = 0) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["dk2020flow", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.tmp,
        )


@pytest.fixture
def cli(sqlite_url: str, tmp_path: Path) -> Cli:
    return Cli(sqlite_url, tmp_path)


@pytest.fixture
def dk2020(cli: Cli) -> Cli:
    """The DK2020 workflow with three invited organisations that have contacts.

    Set up in-process (a CLI start costs seconds); the commands under test run as
    subprocesses.
    """
    store = SqlStore(cli.db_url)
    try:
        service = Service(store, clock=FixedClock(parse_instant(OPENED, "Europe/Copenhagen")))
        with store.transaction() as tx:
            codes = {city: tx.find_organisation(city).code for city in CITIES}  # type: ignore[union-attr]
            tx.replace_participants(
                [],
                [
                    Contact(
                        organisation_code=codes[city],
                        role=role,
                        name=f"{role} {city}",
                        email=f"{role}@{city.lower()}.example.dk",
                    )
                    for city in CITIES
                    for role in ("mayor", "contact_person")
                ],
            )
        service.load_workflow(DK2020)
        for city in CITIES:
            service.open_case("dk2020", city, actor="test", role="follow_up")
    finally:
        store.close()
    return cli


def _outbox(cli: Cli) -> list[OutboxMessage]:
    store = SqlStore(cli.db_url)
    try:
        with store.read() as tx:
            return tx.outbox(limit=10_000)
    finally:
        store.close()


def _log(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_reminders_at_the_reminder_date_and_nothing_more_on_a_second_run(dk2020: Cli) -> None:
    cli = dk2020
    first = cli("scheduler", "run", "--once", "--now", REMINDERS, "--log-format", "json")
    log = _log(first.stderr)
    tick = next(line for line in log if line["action"] == "tick")
    assert tick["fired"] == len(CITIES)  # the 14-day reminder of reply_deadline, per case
    assert tick["now"] == "2020-08-19T10:00:00+00:00"
    reminders = [m for m in _outbox(cli) if m.template == "decision_reminder"]
    assert len(reminders) == len(CITIES)
    assert {m.status.value for m in reminders} == {"sent"}  # delivered to the mail folder
    files = sorted((cli.mail).glob("*.eml"))
    assert len(files) == len(_outbox(cli))
    text = files[0].read_text(encoding="utf-8", errors="replace")
    assert "Message-ID:" in text

    before = _outbox(cli)
    second = cli("scheduler", "run", "--once", "--now", REMINDERS, "--log-format", "json")
    tick = next(line for line in _log(second.stderr) if line["action"] == "tick")
    assert tick["fired"] == 0
    assert tick["delivered"] == 0
    assert _outbox(cli) == before


def _history(cli: Cli, city: str) -> list[str]:
    store = SqlStore(cli.db_url)
    try:
        with store.read() as tx:
            (case,) = tx.find_cases_by_ref(city, "dk2020")
            return [json.dumps(to_jsonable(e.record)) for e in tx.history(case.id or 0)]
    finally:
        store.close()


def test_escalation_after_the_deadline(dk2020: Cli) -> None:
    cli = dk2020
    cli("scheduler", "run", "--once", "--now", ESCALATION)
    templates = [m.template for m in _outbox(cli)]
    assert templates.count("escalation") == len(CITIES)
    assert templates.count("decision_overdue") == len(CITIES)
    # latest_once: the two reminders missed before 1 September fire as the latest one
    # only; the older one is written to the log as skipped, never dropped silently.
    history = _history(cli, "Aarhus")
    assert any("escalated_to" in e for e in history)
    assert any("firing_skipped" in e for e in history)


def test_status_exit_codes(dk2020: Cli) -> None:
    cli = dk2020
    # As of the reminder date with nothing run yet: the 14-day reminders are due and
    # overdue by more than 10 minutes (17 Aug), no daemon alive: CRITICAL.
    report = cli.json("scheduler", "status", "--now", REMINDERS, code=2)
    assert report["status"] == "CRITICAL"
    assert report["timers"]["due_now"] == len(CITIES)
    assert report["timers"]["overdue"] == len(CITIES)
    assert report["timers"]["oldest_unfired"].startswith("2020-08-17T")
    assert report["daemons_alive"] == []
    cli("scheduler", "run", "--once", "--now", REMINDERS)
    shown = cli("scheduler", "status", "--now", REMINDERS, code=0)
    assert "OK" in shown.stdout
    assert "Next due:       2020-08-28 23:59 +0200" in shown.stdout  # the 3-day reminder
    # Due, but not yet late by --overdue-minutes, and no daemon alive: WARNING.
    report = cli.json("scheduler", "status", "--now", "2020-08-29T00:00+02:00", code=1)
    assert report["status"] == "WARNING"
    assert report["timers"]["due_now"] == len(CITIES)
    assert report["timers"]["overdue"] == 0
    (daemon,) = report["daemons"]
    assert daemon["stopped_at"] is not None
    assert daemon["stats"]["fired"] == len(CITIES)


def test_sigterm_finishes_and_exits_0_with_a_final_heartbeat(dk2020: Cli) -> None:
    cli = dk2020
    proc = cli.popen("scheduler", "run", "--now", REMINDERS, "--log-format", "json")
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if '"action": "tick"' in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(60), "".join(lines)
        # A second daemon on the same SQLite file is refused, naming the first one's pid.
        refused = cli("scheduler", "run", "--once", code=6)
        assert "another scheduler daemon" in refused.stderr
        assert f"pid {proc.pid}" in refused.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    log = [json.loads(line) for line in lines if line.startswith("{")]
    assert log[-1]["action"] == "stopped"
    assert any(line["action"] == "stopping" and line["signal"] == "SIGTERM" for line in log)
    store = SqlStore(cli.db_url)
    try:
        with store.read() as tx:
            (daemon,) = tx.daemons()
    finally:
        store.close()
    assert daemon.pid == proc.pid
    assert daemon.stopped_at is not None
    assert daemon.stats["fired"] == len(CITIES)


def _run_once_in_process(cli: Cli, now: str, transport: Any = None) -> None:
    store = SqlStore(cli.db_url)
    try:
        clock = FixedClock(parse_instant(now, "Europe/Copenhagen"))
        settings = Settings(mail_max_attempts=1)
        daemon = Daemon(
            Service(store, clock=clock, settings=settings),
            transport or FolderTransport(cli.mail),
            clock=clock,
            settings=settings,
            once=True,
        )
        assert daemon.run() == 0
    finally:
        store.close()


def test_outbox_commands(dk2020: Cli) -> None:
    cli = dk2020
    _run_once_in_process(cli, REMINDERS)
    rows = _outbox(cli)
    first = rows[-1]
    shown = cli("outbox", "show", str(first.id))
    assert first.message_id in shown.stdout
    assert "--- html ---" in shown.stdout
    listed = cli.json("outbox", "list", "--status", "sent", "--case", "Aarhus")
    assert listed and {m["status"] for m in listed} == {"sent"}
    assert len({m["case_id"] for m in listed}) == 1
    # Retrying a sent message is refused with a clear line.
    refused = cli("outbox", "retry", str(first.id), code=1)
    assert "only dead or parked" in refused.stderr
    purged = cli.json("outbox", "purge", "--sent-before", "2030-01-01")
    assert purged["purged"] == len(rows)
    assert _outbox(cli) == []


def test_dead_mail_warns_and_is_retried_through_the_cli(dk2020: Cli) -> None:
    cli = dk2020
    # A mail server that is not there, and one attempt allowed: the reminders die.
    _run_once_in_process(cli, REMINDERS, SmtpTransport(host="127.0.0.1", port=9, timeout=2))
    dead = [m for m in _outbox(cli) if m.status.value == "dead"]
    assert dead and all("gave up after 1 attempts" in m.last_error for m in dead)
    report = cli.json("scheduler", "status", "--now", REMINDERS, code=1)
    assert report["outbox"]["dead"] == len(dead)
    assert any("dead message" in reason for reason in report["reasons"])
    retried = cli.json("outbox", "retry", "--all-dead")
    assert sorted(retried["requeued"]) == sorted(m.id for m in dead)
    assert not [m for m in _outbox(cli) if m.status.value == "dead"]


def test_mail_preview(dk2020: Cli) -> None:
    cli = dk2020
    shown = cli("mail", "preview", "Aarhus", "decision_reminder")
    assert "To:" in shown.stdout and "mayor@aarhus.example.dk" in shown.stdout
    assert "Subject:" in shown.stdout
    assert "HTML version:" in shown.stdout
    english = cli.json("mail", "preview", "Aarhus", "decision_reminder", "--lang", "en")
    assert english[0]["language"] == "en"
    assert "<" in english[0]["html"]


def test_clear_errors(cli: Cli, tmp_path: Path) -> None:
    bad_now = cli("scheduler", "run", "--once", "--now", "yesterday", code=2)
    assert "--now" in bad_now.stderr
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    no_schema = cli("scheduler", "status", "--db", empty, code=5)
    assert "db upgrade" in no_schema.stderr
    missing = cli("outbox", "retry", "99999", code=1)
    assert "no message 99999" in missing.stderr


def test_status_of_a_rehearsal_is_judged_at_its_now(dk2020: Cli) -> None:
    """The README's tour: `scheduler run --once --now …`, then `scheduler status` (#15.9)."""
    cli = dk2020
    cli("scheduler", "run", "--once", "--now", ESCALATION)
    # As of the rehearsal's instant everything due has fired: not CRITICAL.
    report = cli.json("scheduler", "status", "--now", ESCALATION, code=None)
    assert report["status"] != "CRITICAL", report
    assert report["timers"]["overdue"] == 0
    # By the machine's clock the rest of 2020-2023 looks overdue; the status says it is a
    # rehearsal and never advises a daemon that would fire 2020's timers now.
    wall = cli("scheduler", "status", code=2)
    assert "start `dk2020flow scheduler run`" not in wall.stdout
    assert "rehearsal" in wall.stdout
    assert "scheduler status --now 2020-09-01T10:00+02:00" in wall.stdout.replace("\n  ", " ")
    # With --now and nothing run yet, the advice fires at that instant, not at the machine's.
    early = cli.json("scheduler", "status", "--now", "2020-12-01T10:00+01:00", code=2)
    advice = " ".join(early["reasons"])
    assert "scheduler run --once --now 2020-12-01T10:00+01:00" in advice
    assert "start `dk2020flow scheduler run`" not in advice
