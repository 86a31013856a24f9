"""Is the scheduler healthy? The judgement ``scheduler status`` (and a console) shows.

Exit codes of a monitoring probe (Nagios/Icinga conventions), as ``Health``:
0 OK, 1 WARNING (dead or parked mail, dead webhook deliveries; timers overdue while a daemon is alive;
timers due and no daemon alive yet), 2 CRITICAL (timers overdue by more than
the limit and no daemon alive). The numbers come from the store's read
transaction (``ReportsTx.timer_stats``, ``OutboxTx.outbox_counts``,
``DaemonsTx.daemons``, ``WebhooksTx.webhook_counts``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from dk2020flow.store.port import DaemonInfo, OutboxStatus, TimerStats, WebhookStatus


class HealthTx(Protocol):
    """What the judgement reads: a read transaction of the store."""

    def timer_stats(
        self, now: dt.datetime, *, overdue_before: dt.datetime | None = None
    ) -> TimerStats: ...

    def outbox_counts(self) -> dict[OutboxStatus, int]: ...

    def daemons(self) -> list[DaemonInfo]: ...

    def webhook_counts(self) -> dict[WebhookStatus, int]: ...


def _local(instant: dt.datetime, timezone: str) -> str:
    return instant.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %z")


class Health(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True, kw_only=True, slots=True)
class SchedulerHealth:
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
    webhooks: dict[str, int] = field(default_factory=dict)
    """Webhook deliveries per status: ``pending`` is the backlog, ``dead`` the dead letters."""


def _alive(info: DaemonInfo, wall_now: dt.datetime, stale: float) -> bool:
    return info.stopped_at is None and (wall_now - info.last_seen_at).total_seconds() <= stale


REHEARSAL_GAP = dt.timedelta(hours=1)
"""A scheduler run whose clock was this far from the machine's ran with ``--now``."""


def _instant_option(instant: dt.datetime, timezone: str) -> str:
    """An instant as a ``--now`` value in the display zone (2020-09-01T10:00+02:00)."""
    return instant.astimezone(ZoneInfo(timezone)).isoformat(timespec="minutes")


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


def scheduler_health(
    tx: HealthTx,
    *,
    now: dt.datetime,
    wall_now: dt.datetime,
    stale_seconds: float,
    overdue_minutes: float,
    timezone: str = "UTC",
) -> SchedulerHealth:
    """Everything ``scheduler status`` shows, and the probe's verdict.

    The instants in its advice are shown in ``timezone`` (the display zone,
    ``service/timezone.py``), with their offset.

    ``now`` is the instant judged (``--now``, or the machine's clock ``wall_now``).
    The advice for timers nobody fires depends on it: as of a ``--now`` instant
    (a rehearsal), fire them with ``scheduler run --once --now`` at that instant;
    by the machine's clock, start a daemon — unless the last scheduler run was a
    rehearsal, whose timers are overdue only by the machine's clock: then the
    status says so and names the ``--now`` to judge it by (docs/time.md).
    """
    overdue_before = now - dt.timedelta(minutes=overdue_minutes)
    timers = tx.timer_stats(now, overdue_before=overdue_before)
    counts = tx.outbox_counts()
    daemons = tx.daemons()
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
                f"--once --now {_instant_option(now, timezone)}`"
            )
        elif rehearsal is not None:
            advice = (
                " by the machine's clock, but the last scheduler run was a rehearsal as of "
                f"{_local(rehearsal, timezone)}: judge it with `dk2020flow scheduler status "
                f"--now {_instant_option(rehearsal, timezone)}`; a daemon started on this database "
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
            "(`dk2020flow orgs import`), then `dk2020flow outbox retry --all-parked`"
        )
    hooks = tx.webhook_counts()
    if hooks[WebhookStatus.DEAD]:
        health = max(health, Health.WARNING)
        reasons.append(
            f"{hooks[WebhookStatus.DEAD]} dead webhook delivery(ies): see `dk2020flow webhooks "
            "deliveries --status dead`, then `dk2020flow webhooks retry DELIVERY_ID`"
        )
    if crashed:
        health = max(health, Health.WARNING)
        names = ", ".join(d.id for d in crashed)
        reasons.append(f"daemon(s) stopped beating without stopping cleanly: {names}")
    return SchedulerHealth(
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
        webhooks={status.value: count for status, count in hooks.items()},
    )
