"""Read-only questions for ``dk2020flow scheduler status`` (a monitoring probe).

Every query here reads through the indexes on ``(status, due_at)`` and
``(status, next_attempt_at)``; none scans the cases. Case timers and
programme timers (a cohort's events and their reminders) count together.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from dk2020flow.engine.records import TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.db import READ_ONLY_OPTION, translated_errors
from dk2020flow.store.port import OutboxStatus

PENDING = TimerStatus.PENDING.value


@dataclass(frozen=True, kw_only=True, slots=True)
class TimerStats:
    due_now: int
    """Pending timers due at or before ``now``."""
    overdue: int
    """Pending timers due before ``overdue_before`` (late by more than the probe's grace)."""
    oldest_unfired: dt.datetime | None
    """The due time of the oldest pending timer that is due (None when nothing is due)."""
    next_due: dt.datetime | None
    """The earliest pending timer due after ``now``."""


def timer_stats(
    engine: Engine, now: dt.datetime, *, overdue_before: dt.datetime | None = None
) -> TimerStats:
    """Counts and instants of pending timers (case and programme timers) as of ``now``."""
    overdue_before = overdue_before or now
    url = engine.url.render_as_string(hide_password=False)
    due_now = overdue = 0
    oldest: list[dt.datetime] = []
    upcoming: list[dt.datetime] = []
    with translated_errors(url), engine.connect() as raw:
        conn = raw.execution_options(**{READ_ONLY_OPTION: True})
        with conn.begin() as trans:
            for table in (t.timers, t.programme_timers):
                c = table.c
                pending = c.status == PENDING
                count, first = conn.execute(
                    select(func.count(), func.min(c.due_at)).where(pending, c.due_at <= now)
                ).one()
                due_now += int(count)
                if first is not None:
                    oldest.append(first)
                overdue += int(
                    conn.execute(
                        select(func.count()).where(pending, c.due_at < overdue_before)
                    ).scalar_one()
                )
                later = conn.execute(
                    select(func.min(c.due_at)).where(pending, c.due_at > now)
                ).scalar()
                if later is not None:
                    upcoming.append(later)
            trans.rollback()
    return TimerStats(
        due_now=due_now,
        overdue=overdue,
        oldest_unfired=min(oldest) if oldest else None,
        next_due=min(upcoming) if upcoming else None,
    )


def outbox_counts(engine: Engine) -> dict[OutboxStatus, int]:
    """How many messages are in each outbox status (every status present, zero or more)."""
    url = engine.url.render_as_string(hide_password=False)
    counts = dict.fromkeys(OutboxStatus, 0)
    o = t.outbox.c
    with translated_errors(url), engine.connect() as raw:
        conn = raw.execution_options(**{READ_ONLY_OPTION: True})
        with conn.begin() as trans:
            for status, count in conn.execute(select(o.status, func.count()).group_by(o.status)):
                counts[OutboxStatus(status)] = int(count)
            trans.rollback()
    return counts
