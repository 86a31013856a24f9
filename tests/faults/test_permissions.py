"""Permissions: roles, secrets and privileges.

- Every transition of the DK2020 workflow, from every state it leaves, refuses every role that is
  not among its roles; the refusal is logged as a ``refused`` event and the case is unchanged.
- The SMTP password and the database password never appear in logs, errors, ``--json`` output,
  the event log, the outbox or the daemons table.
- The CLI and the daemon run as ``nobody`` on a database file that user owns.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url

from dk2020flow.clock import ManualClock
from dk2020flow.errors import RefusalReason, RefusedError
from dk2020flow.service import Service
from dk2020flow.settings import Settings
from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore
from integration.runtime.conftest import Recorder, free_port

from .conftest import DK2020, Cli, clean_env, open_cases, read_conn

OPENED = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)
SMTP_SECRET = "s3cr3t-smtp-Qx7w"
DB_SECRET = "pw-s3cr3t-Zk4p"


# ----------------------------------------------------------------------------- roles


def test_every_transition_refuses_every_other_role_and_logs_it(sqlite_url: str) -> None:
    store = SqlStore(sqlite_url)
    try:
        service = Service(store, clock=ManualClock(OPENED), settings=Settings())
        service.load_workflow(DK2020)
        case = service.open_case("dk2020", "Aarhus", actor="test", role="secretariat")
        workflow = service.compiled_latest("dk2020").workflow
        roles = set(workflow.roles)
        tried = 0
        for transition in workflow.transitions:
            if transition.automatic:
                continue
            for state in sorted(workflow.sources(transition)):
                # Put the case in the state the transition leaves (test set-up, not a change).
                with store.engine.begin() as conn:
                    conn.execute(update(t.cases).where(t.cases.c.id == case.id).values(state=state))
                allowed = {
                    r
                    for other in workflow.transitions_named(transition.trigger)
                    if state in workflow.sources(other)
                    for r in other.roles
                }
                for role in sorted(roles - allowed):
                    with read_conn(store) as conn:
                        before = tuple(conn.execute(select(t.cases)).one())
                    with pytest.raises(RefusedError) as refused:
                        service.fire("Aarhus", transition.trigger, actor="mallory", role=role)
                    assert refused.value.reason is RefusalReason.ROLE, (transition.trigger, role)
                    with read_conn(store) as conn:
                        assert tuple(conn.execute(select(t.cases)).one()) == before
                        last = conn.execute(
                            select(t.events.c.kind, t.events.c.trigger, t.events.c.role)
                            .order_by(t.events.c.id.desc())
                            .limit(1)
                        ).one()
                    assert tuple(last) == ("refused", transition.trigger, role)
                    tried += 1
                # A role that may fire it is not refused for its role (data or guards may
                # still stop it): the check is per transition, not a blanket refusal.
                for role in sorted(allowed)[:1]:
                    reason = None
                    try:
                        service.fire("Aarhus", transition.trigger, actor="anna", role=role)
                    except RefusedError as error:
                        reason = error.reason
                    assert reason is not RefusalReason.ROLE, (transition.trigger, role)
                    with store.engine.begin() as conn:  # undo a move that did happen
                        conn.execute(
                            update(t.cases).where(t.cases.c.id == case.id).values(state=state)
                        )
        assert tried >= 100  # every (transition, source state, other role)
        with read_conn(store) as conn:
            refused_events = conn.execute(
                select(text("count(*)")).select_from(t.events).where(t.events.c.kind == "refused")
            ).scalar_one()
        assert refused_events == tried
    finally:
        store.close()


# ----------------------------------------------------------------------------- secrets


class _Auth:
    """aiosmtpd authenticator: accepts exactly one user/password."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.logins: list[bool] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = data.login == b"dk2020" and data.password == self.password.encode()
        self.logins.append(ok)
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def auth_smtp() -> Iterator[tuple[int, _Auth]]:
    auth = _Auth(SMTP_SECRET)
    port = free_port()
    controller = Controller(
        Recorder(),
        hostname="127.0.0.1",
        port=port,
        authenticator=auth,
        auth_require_tls=False,  # loopback, no certificate; AUTH is offered without TLS
    )
    controller.start()
    try:
        yield port, auth
    finally:
        controller.stop()


def _with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def _dump(store: SqlStore) -> str:
    """Every row of every table a secret could leak into, as text."""
    with read_conn(store) as conn:
        return "\n".join(
            repr(tuple(row))
            for table in (t.events, t.outbox, t.daemons, t.cases, t.definitions)
            for row in conn.execute(select(table))
        )


@pytest.mark.postgres
def test_secrets_never_leak(pg_url: str, tmp_path: Path, auth_smtp: tuple[int, _Auth]) -> None:
    port, auth = auth_smtp
    secret_url = _with_password(pg_url, DB_SECRET)  # trust auth accepts any password
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "organisation,role,name,email\n"
        "101,mayor,Sophie,borgmester@kk.example.dk\n"
        "101,contact_person,Ida,ida@kk.example.dk\n",
        encoding="utf-8",
    )
    Cli(tmp_path, DK2020FLOW_DATABASE_URL=secret_url)("participants", "import", str(contacts))
    open_cases(pg_url, DK2020, 3, now=OPENED)
    mail = {
        "DK2020FLOW_MAIL_TRANSPORT": "smtp",
        "DK2020FLOW_SMTP_HOST": "127.0.0.1",
        "DK2020FLOW_SMTP_PORT": str(port),
        "DK2020FLOW_SMTP_STARTTLS": "false",
        "DK2020FLOW_SMTP_USERNAME": "dk2020",
    }
    cli = Cli(
        tmp_path, DK2020FLOW_DATABASE_URL=secret_url, DK2020FLOW_SMTP_PASSWORD=SMTP_SECRET, **mail
    )
    outputs = [
        cli(
            "scheduler", "run", "--once", "--now", "2020-08-19T12:00+02:00", "--log-format", "json"
        ),
        cli("scheduler", "run", "--once", "--now", "2020-08-20T12:00+02:00"),
    ]
    assert auth.logins and all(auth.logins), "the daemon did not log in with the password"
    outputs += cli.many(
        [
            ("case", "list", "--json"),
            ("case", "show", "København", "--json"),
            ("case", "history", "København", "--json"),
            ("outbox", "list", "--json"),
            ("scheduler", "status", "--json"),
            ("case", "fire", "København", "decide_participate", "--role", "emperor"),
            ("case", "show", "Atlantis"),
        ]
    )
    # Failures that print the URL or the SMTP answer: a wrong SMTP password, a closed port.
    wrong = Cli(
        tmp_path,
        DK2020FLOW_DATABASE_URL=secret_url,
        DK2020FLOW_SMTP_PASSWORD=SMTP_SECRET + "-wrong",
        **mail,
    )
    outputs.append(
        wrong(
            "scheduler", "run", "--once", "--now", "2020-09-02T12:00+02:00", "--log-format", "json"
        )
    )
    assert not auth.logins[-1]
    assert "refused the login" in outputs[-1].stderr
    unreachable = _with_password(
        make_url(pg_url).set(port=free_port()).render_as_string(hide_password=False), DB_SECRET
    )
    outputs.append(cli("case", "list", "--json", "--db", unreachable, code=None))
    assert outputs[-1].returncode != 0
    assert "***" in outputs[-1].stderr
    store = SqlStore(pg_url)
    try:
        stored = _dump(store)
    finally:
        store.close()
    for secret in (SMTP_SECRET, DB_SECRET):
        for done in outputs:
            assert secret not in done.stdout + done.stderr, (done.args, secret)
        assert secret not in stored, secret
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


# ----------------------------------------------------------------------------- privileges


@pytest.fixture
def as_nobody() -> Iterator[tuple[list[str], Path]]:
    """A command prefix that runs Python as ``nobody``, and a directory that user owns.

    The interpreter lives under /root (mode 0700 here), which ``nobody`` cannot enter: its
    prefix is bind-mounted read-only at a temporary path for the test (unmounted afterwards).
    """
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("switching to the nobody user needs root and runuser")
    prefix = Path(sys.base_prefix)
    view = Path(tempfile.mkdtemp(prefix="dk2020flow-python-"))
    home = Path(tempfile.mkdtemp(prefix="dk2020flow-nobody-"))
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(prefix), str(view)], check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot bind-mount the interpreter for the nobody user")
    try:
        shutil.chown(home, "nobody", "nogroup")
        site = [p for p in sys.path if p.endswith("site-packages") and p.startswith(str(prefix))]
        sources = [str(Path(__import__("dk2020flow").__file__).parents[1])]
        python_path = [p.replace(str(prefix), str(view), 1) for p in site] + sources
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        prefix_cmd = [
            "runuser",
            "-u",
            "nobody",
            "--",
            "env",
            f"PYTHONHOME={view}",
            f"LD_LIBRARY_PATH={view / 'lib'}",  # its libpython, not the system's
            f"PYTHONPATH={os.pathsep.join(python_path)}",
            f"HOME={home}",
            str(view / "bin" / version),
            "-c",
            "import sys; from dk2020flow.cli import main; sys.argv[0] = 'dk2020flow'; main()",
        ]
        yield prefix_cmd, home
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
        view.rmdir()
        shutil.rmtree(home, ignore_errors=True)


def test_cli_and_daemon_run_as_nobody(as_nobody: tuple[list[str], Path]) -> None:
    prefix, home = as_nobody
    env = clean_env(
        DK2020FLOW_DATABASE_URL=f"sqlite:///{home / 'dk2020flow.db'}",
        DK2020FLOW_MAIL_FOLDER=str(home / "outbox"),
    )
    contacts = home / "contacts.csv"
    contacts.write_text(
        "organisation,role,name,email\n751,mayor,Jacob,borgmester@aarhus.example.dk\n",
        encoding="utf-8",
    )
    steps: list[tuple[str, ...]] = [
        ("db", "upgrade"),
        ("workflow", "load", str(DK2020)),  # with its data set: the municipalities
        ("participants", "import", str(contacts)),
        ("case", "open", "dk2020", "Aarhus", "--now", "2020-06-20T10:00+02:00"),
        ("scheduler", "run", "--once", "--now", "2020-08-19T12:00+02:00"),
        ("outbox", "list", "--json"),
    ]
    for args in steps:
        done = subprocess.run(
            [*prefix, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=home,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
    written = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".eml" for p in written), written
    for path in written:
        info = path.stat()
        if path != contacts:
            assert info.st_uid != 0, path  # everything was written by nobody …
        assert not info.st_mode & 0o002, path  # … and nothing is world-writable
