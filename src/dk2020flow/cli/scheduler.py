"""``dk2020flow scheduler …``: run the daemon, and ask whether it is healthy.

``scheduler status`` exit codes (for a monitoring probe, e.g. Nagios/Icinga
conventions):

- 0 OK: a daemon is alive (or nothing is due), no dead mail;
- 1 WARNING: dead or parked mail waits for an operator; or timers are overdue by more
  than ``--overdue-minutes`` while a daemon is alive (it is behind or stuck);
  or timers are due but not yet overdue and no daemon is alive (normal
  between two cron runs of ``--once``);
- 2 CRITICAL: no daemon is alive while timers are overdue by more than
  ``--overdue-minutes`` (nobody will fire them).

Errors (database unreachable, schema behind) exit with the error's own code
(1, 5 …) and one line on stderr, like every command.
"""

from __future__ import annotations

import datetime as dt
import os
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dk2020flow.cli.common import (
    DbOption,
    JsonOption,
    NowOption,
    err,
    handle_errors,
    local,
    out,
    parse_now,
    print_json,
    settings_for,
)
from dk2020flow.clock import Clock, FixedClock, ShiftedClock, SystemClock
from dk2020flow.runtime.logs import LogFormat, configure_logging

if TYPE_CHECKING:
    from dk2020flow.notify.transports import Transport
    from dk2020flow.service.health import SchedulerHealth
    from dk2020flow.store.port import DaemonInfo


scheduler_app = typer.Typer(
    no_args_is_help=True,
    help="Run the scheduler daemon (timers and mail) and check its health.",
)


def _secrets(url: str) -> list[str]:
    from sqlalchemy.engine import make_url  # lazily: SQLAlchemy takes long to import
    from sqlalchemy.exc import ArgumentError

    found: list[str] = []
    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    if password:
        found.append(str(password))
    for name in ("DK2020FLOW_SMTP_PASSWORD",):
        value = os.environ.get(name, "")
        if value:
            found.append(value)
    return found


def _mail() -> tuple[Transport, tuple[str, str]]:
    """The configured transport and sender (From) address."""
    from pydantic import ValidationError

    from dk2020flow.notify.errors import MailConfigError
    from dk2020flow.notify.transports import MailSettings, transport_from_settings

    try:
        mail = MailSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise MailConfigError(
            f"invalid mail settings ({problems}); check the DK2020FLOW_SMTP_* / DK2020FLOW_MAIL_* "
            "variables (docs/operations.md, 'Mail')"
        ) from None
    return transport_from_settings(mail), (mail.mail_sender_name, mail.mail_sender)


@scheduler_app.command("run")
@handle_errors
def run_command(
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Fire everything due now, deliver the outbox once, and exit (for cron and tests).",
        ),
    ] = False,
    now: NowOption = None,
    db: DbOption = None,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="text for people, json: one object a line.")
    ] = LogFormat.TEXT,
) -> None:
    """Run the scheduler daemon: fire due timers and deliver mail until stopped.

    With --once: process everything due at this moment (or at --now) and exit 0.
    With --now and --once the clock stands still at that instant (replays, tests);
    with --now alone the daemon's clock starts there and runs on with the wall clock.
    SIGTERM or Ctrl-C: the current batch finishes, then the daemon exits 0.
    On SQLite only one daemon may run per database file (a second one exits 6).
    """
    from dk2020flow.runtime.daemon import Daemon
    from dk2020flow.service.core import open_service

    settings = settings_for(db)
    configure_logging(log_format, secrets=_secrets(settings.database_url))
    from dk2020flow.service.timezone import display_timezone

    if now is not None:
        parse_now(now, "UTC")  # an unreadable --now is refused before the database
    clock: Clock = SystemClock()
    with open_service(settings.database_url, clock=clock, settings=settings) as service:
        # A --now without an offset is local time in the display zone (the programme's).
        instant = parse_now(now, display_timezone(service)) if now is not None else None
        if instant is not None:
            clock = FixedClock(instant) if once else ShiftedClock(instant)
            service.clock = clock
        transport, sender = _mail()
        daemon = Daemon(
            service,
            transport,
            clock=clock,
            settings=settings,
            once=once,
            sender=sender,
        )
        code = daemon.run()
    raise typer.Exit(code)


# ----------------------------------------------------------------------------- status


class _Label(StrEnum):
    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


def _ago(then: dt.datetime | None, now: dt.datetime, zone: str) -> str:
    if then is None:
        return "never"
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return f"{local(then, zone)}"
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{local(then, zone)} ({seconds // 3600} h ago)"


@scheduler_app.command("status")
@handle_errors
def status_command(
    db: DbOption = None,
    as_json: JsonOption = False,
    now: NowOption = None,
    overdue_minutes: Annotated[
        float,
        typer.Option(
            "--overdue-minutes",
            min=0,
            help="A timer due longer ago than this is overdue (see the exit codes).",
        ),
    ] = 10.0,
) -> None:
    """Show daemons alive, last tick, timers due now and overdue, next due, dead mail.

    Exit status for monitoring probes: 0 OK; 1 WARNING (dead mail, daemons behind,
    or timers due with no daemon alive yet); 2 CRITICAL (timers overdue by more than
    --overdue-minutes and no daemon alive). --now judges due and overdue as of that
    instant; daemons are alive when seen within DK2020FLOW_DAEMON_STALE_SECONDS.
    """
    from dk2020flow.service.reads import open_reader
    from dk2020flow.service.timezone import reader_timezone

    settings = settings_for(db)
    wall_now = SystemClock().now()
    if now is not None:
        parse_now(now, "UTC")  # an unreadable --now is refused before the database
    with open_reader(settings.database_url) as reader:
        zone = reader_timezone(reader, settings)
        instant = parse_now(now, zone) if now is not None else wall_now
        report = reader.scheduler_health(
            now=instant,
            wall_now=wall_now,
            stale_seconds=settings.daemon_stale_seconds,
            overdue_minutes=overdue_minutes,
            timezone=zone,
        )
    if as_json:
        print_json(
            {
                "status": _Label[report.health.name].value,
                "exit_code": int(report.health),
                "reasons": report.reasons,
                "now": report.now,
                "daemons_alive": [_daemon_json(d) for d in report.daemons_alive],
                "daemons": [_daemon_json(d) for d in report.daemons_recent],
                "last_tick_at": report.last_tick_at,
                "timers": {
                    "due_now": report.due_now,
                    "overdue": report.overdue,
                    "overdue_minutes": report.overdue_minutes,
                    "oldest_unfired": report.oldest_unfired,
                    "next_due": report.next_due,
                },
                "outbox": report.outbox,
                "webhooks": report.webhooks,
            }
        )
    else:
        _print_status(report, wall_now, zone)
    raise typer.Exit(int(report.health))


def _daemon_json(info: DaemonInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "host": info.host,
        "pid": info.pid,
        "started_at": info.started_at,
        "last_tick_at": info.last_tick_at,
        "last_seen_at": info.last_seen_at,
        "stopped_at": info.stopped_at,
        "stats": dict(info.stats),
    }


def _print_status(report: SchedulerHealth, wall_now: dt.datetime, zone: str) -> None:
    """The report for people; instants in ``zone`` (the display zone), with their offset."""
    label = _Label[report.health.name].value
    style = {"OK": "green", "WARNING": "yellow", "CRITICAL": "red"}[report.health.name]
    out.print(f"[bold {style}]{label}[/]")
    for reason in report.reasons:
        out.print(f"  - {reason}", markup=False)
    if report.daemons_alive:
        out.print(f"Daemons alive: {len(report.daemons_alive)}")
        for d in report.daemons_alive:
            out.print(
                f"  {d.id}  seen {_ago(d.last_seen_at, wall_now, zone)}, "
                f"last tick {_ago(d.last_tick_at, wall_now, zone)}",
                markup=False,
            )
    else:
        last = report.daemons_recent[0] if report.daemons_recent else None
        seen = f" (last seen: {last.id}, {_ago(last.last_seen_at, wall_now, zone)})" if last else ""
        out.print(f"Daemons alive: none{seen}", markup=False)
    out.print(f"Last tick:      {_ago(report.last_tick_at, wall_now, zone)}", markup=False)
    out.print(f"Due now:        {report.due_now}")
    late = f"due more than {report.overdue_minutes:g} min ago"
    out.print(f"Overdue:        {report.overdue} ({late})")
    out.print(f"Oldest unfired: {local(report.oldest_unfired, zone)}", markup=False)
    out.print(f"Next due:       {local(report.next_due, zone)}", markup=False)
    mail = ", ".join(f"{status} {count}" for status, count in report.outbox.items())
    out.print(f"Outbox:         {mail}", markup=False)
    hooks = ", ".join(f"{status} {count}" for status, count in report.webhooks.items())
    out.print(f"Webhooks:       {hooks}", markup=False)
    if report.now != wall_now:
        err.print(f"(as of {local(report.now, zone)})", markup=False)
