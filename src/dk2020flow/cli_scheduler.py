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
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dk2020flow.cli_common import (
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
from dk2020flow.clock import Clock, FixedClock, SystemClock
from dk2020flow.runtime.logs import LogFormat, configure_logging

if TYPE_CHECKING:
    from dk2020flow.store.port import DaemonInfo

TIMEZONE = "Europe/Copenhagen"

scheduler_app = typer.Typer(
    no_args_is_help=True,
    help="Run the scheduler daemon (timers and mail) and check its health.",
)


class ShiftedClock:
    """Starts at a given instant and advances with the wall clock (``run --now`` without --once)."""

    __slots__ = ("_offset",)

    def __init__(self, start: dt.datetime, wall: Clock | None = None) -> None:
        self._offset = start - (wall or SystemClock()).now()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self._offset

    def __repr__(self) -> str:
        return f"ShiftedClock(now={self.now().isoformat()})"


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


def _mail() -> tuple[Any, tuple[str, str]]:
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
    from dk2020flow.service import Service
    from dk2020flow.store.db import require_current_schema
    from dk2020flow.store.repository import SqlStore

    settings = settings_for(db)
    configure_logging(log_format, secrets=_secrets(settings.database_url))
    instant = parse_now(now, TIMEZONE) if now is not None else None
    clock: Clock
    if instant is None:
        clock = SystemClock()
    elif once:
        clock = FixedClock(instant)
    else:
        clock = ShiftedClock(instant)
    store = SqlStore(settings.database_url)
    try:
        require_current_schema(store.engine)
        transport, sender = _mail()
        service = Service(store, clock=clock, settings=settings)
        daemon = Daemon(
            service,
            transport,
            clock=clock,
            settings=settings,
            once=once,
            sender=sender,
        )
        code = daemon.run()
    finally:
        store.close()
    raise typer.Exit(code)


# ----------------------------------------------------------------------------- status


class Health(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2


class _Label(StrEnum):
    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusReport:
    now: dt.datetime
    health: Health
    reasons: list[str]
    daemons_alive: list[DaemonInfo]
    daemons_recent: list[DaemonInfo]
    last_tick_at: dt.datetime | None
    due_now: int
    overdue: int
    overdue_minutes: float
    oldest_unfired: dt.datetime | None
    next_due: dt.datetime | None
    outbox: dict[str, int]


def _alive(info: DaemonInfo, wall_now: dt.datetime, stale: float) -> bool:
    return info.stopped_at is None and (wall_now - info.last_seen_at).total_seconds() <= stale


REHEARSAL_GAP = dt.timedelta(hours=1)
"""A scheduler run whose clock was this far from the machine's ran with ``--now``."""


def _instant_option(instant: dt.datetime) -> str:
    """An instant as a ``--now`` value in the programme's time zone (2020-09-01T10:00+02:00)."""
    from zoneinfo import ZoneInfo

    return instant.astimezone(ZoneInfo(TIMEZONE)).isoformat(timespec="minutes")


def rehearsal_instant(daemons: list[DaemonInfo]) -> dt.datetime | None:
    """The ``--now`` of the most recent scheduler run, if it was a rehearsal.

    A run records its clock (``stats.clock_now``) with each heartbeat; when that
    clock was more than :data:`REHEARSAL_GAP` away from the machine's time of the
    beat, the run was a rehearsal (``scheduler run --now …``).
    """
    if not daemons or daemons[0].last_tick_at is None:
        return None
    latest = daemons[0]
    text = latest.stats.get("clock_now")
    if not isinstance(text, str):
        return None
    try:
        clock_now = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if clock_now.tzinfo is None or latest.last_tick_at is None:
        return None
    return clock_now if abs(clock_now - latest.last_tick_at) > REHEARSAL_GAP else None


def build_status(
    store: Any,
    *,
    now: dt.datetime,
    wall_now: dt.datetime,
    stale_seconds: float,
    overdue_minutes: float,
) -> StatusReport:
    """Everything ``scheduler status`` shows, and the probe's verdict.

    ``now`` is the instant judged (``--now``, or the machine's clock ``wall_now``).
    The advice for timers nobody fires depends on it: as of a ``--now`` instant
    (a rehearsal), fire them with ``scheduler run --once --now`` at that instant;
    by the machine's clock, start a daemon — unless the last scheduler run was a
    rehearsal, whose timers are overdue only by the machine's clock: then the
    status says so and names the ``--now`` to judge it by (docs/time.md).
    """
    from dk2020flow.store.port import OutboxStatus
    from dk2020flow.store.stats import outbox_counts, timer_stats

    overdue_before = now - dt.timedelta(minutes=overdue_minutes)
    timers = timer_stats(store.engine, now, overdue_before=overdue_before)
    counts = outbox_counts(store.engine)
    with store.read() as tx:
        daemons: list[DaemonInfo] = tx.daemons()
    alive = [d for d in daemons if _alive(d, wall_now, stale_seconds)]
    crashed = [
        d
        for d in daemons
        if d.stopped_at is None
        and not _alive(d, wall_now, stale_seconds)
        and (wall_now - d.last_seen_at) <= dt.timedelta(days=1)
    ]
    ticks = [d.last_tick_at for d in daemons if d.last_tick_at is not None]
    reasons: list[str] = []
    health = Health.OK
    dead = counts[OutboxStatus.DEAD]
    rehearsal = rehearsal_instant(daemons) if now == wall_now else None
    if timers.overdue and not alive:
        health = Health.CRITICAL
        late = f"{timers.overdue} timer(s) overdue by more than {overdue_minutes:g} min"
        if now != wall_now:
            advice = (
                f" and no daemon alive: to rehearse, fire them with `dk2020flow scheduler run "
                f"--once --now {_instant_option(now)}`"
            )
        elif rehearsal is not None:
            advice = (
                " by the machine's clock, but the last scheduler run was a rehearsal as of "
                f"{local(rehearsal, TIMEZONE)}: judge it with `dk2020flow scheduler status "
                f"--now {_instant_option(rehearsal)}`; a daemon started on this database "
                "would fire these timers now"
            )
        else:
            advice = " and no daemon alive: start `dk2020flow scheduler run`"
        reasons.append(late + advice)
    elif timers.overdue:
        health = Health.WARNING
        reasons.append(
            f"{timers.overdue} timer(s) overdue by more than {overdue_minutes:g} min although "
            f"{len(alive)} daemon(s) are alive: they are behind or stuck (check their logs)"
        )
    elif timers.due_now and not alive:
        health = Health.WARNING
        reasons.append(
            f"{timers.due_now} timer(s) due and no daemon alive (fine between two cron runs "
            "of `scheduler run --once`)"
        )
    if dead:
        health = max(health, Health.WARNING)
        reasons.append(
            f"{dead} dead message(s): see `dk2020flow outbox list --status dead`, "
            "then `dk2020flow outbox retry`"
        )
    parked = counts[OutboxStatus.PARKED]
    if parked:
        health = max(health, Health.WARNING)
        reasons.append(
            f"{parked} parked message(s) with no recipient: add the contacts "
            "(`dk2020flow participants import`), then `dk2020flow outbox retry --all-parked`"
        )
    if crashed:
        health = max(health, Health.WARNING)
        names = ", ".join(d.id for d in crashed)
        reasons.append(f"daemon(s) stopped beating without stopping cleanly: {names}")
    return StatusReport(
        now=now,
        health=health,
        reasons=reasons,
        daemons_alive=alive,
        daemons_recent=daemons[:10],
        last_tick_at=max(ticks) if ticks else None,
        due_now=timers.due_now,
        overdue=timers.overdue,
        overdue_minutes=overdue_minutes,
        oldest_unfired=timers.oldest_unfired,
        next_due=timers.next_due,
        outbox={status.value: count for status, count in counts.items()},
    )


def _ago(then: dt.datetime | None, now: dt.datetime) -> str:
    if then is None:
        return "never"
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return f"{local(then, TIMEZONE)}"
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{local(then, TIMEZONE)} ({seconds // 3600} h ago)"


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
    from dk2020flow.store.db import require_current_schema
    from dk2020flow.store.repository import SqlStore

    settings = settings_for(db)
    wall_now = SystemClock().now()
    instant = parse_now(now, TIMEZONE) if now is not None else wall_now
    store = SqlStore(settings.database_url)
    try:
        require_current_schema(store.engine)
        report = build_status(
            store,
            now=instant,
            wall_now=wall_now,
            stale_seconds=settings.daemon_stale_seconds,
            overdue_minutes=overdue_minutes,
        )
    finally:
        store.close()
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
            }
        )
    else:
        _print_status(report, wall_now)
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


def _print_status(report: StatusReport, wall_now: dt.datetime) -> None:
    label = _Label[report.health.name].value
    style = {Health.OK: "green", Health.WARNING: "yellow", Health.CRITICAL: "red"}[report.health]
    out.print(f"[bold {style}]{label}[/]")
    for reason in report.reasons:
        out.print(f"  - {reason}", markup=False)
    if report.daemons_alive:
        out.print(f"Daemons alive: {len(report.daemons_alive)}")
        for d in report.daemons_alive:
            out.print(
                f"  {d.id}  seen {_ago(d.last_seen_at, wall_now)}, "
                f"last tick {_ago(d.last_tick_at, wall_now)}",
                markup=False,
            )
    else:
        last = report.daemons_recent[0] if report.daemons_recent else None
        seen = f" (last seen: {last.id}, {_ago(last.last_seen_at, wall_now)})" if last else ""
        out.print(f"Daemons alive: none{seen}", markup=False)
    out.print(f"Last tick:      {_ago(report.last_tick_at, wall_now)}", markup=False)
    out.print(f"Due now:        {report.due_now}")
    late = f"due more than {report.overdue_minutes:g} min ago"
    out.print(f"Overdue:        {report.overdue} ({late})")
    out.print(f"Oldest unfired: {local(report.oldest_unfired, TIMEZONE)}", markup=False)
    out.print(f"Next due:       {local(report.next_due, TIMEZONE)}", markup=False)
    mail = ", ".join(f"{status} {count}" for status, count in report.outbox.items())
    out.print(f"Outbox:         {mail}", markup=False)
    if report.now != wall_now:
        err.print(f"(as of {local(report.now, TIMEZONE)})", markup=False)
