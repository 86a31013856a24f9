"""Local wall-clock time and UTC instants: the one low module for time conversion.

Every conversion between a workflow's local time and a stored UTC instant goes
through here (the DST rule is stated once, in :func:`to_utc`); it imports
nothing of dk2020flow, so the clock, the definition layer and the engine can
all use it. Where ``now`` comes from is :mod:`dk2020flow.clock`'s business.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def require_aware(value: dt.datetime, what: str) -> dt.datetime:
    """``value`` unchanged when it is timezone-aware; a ValueError naming ``what`` when naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{what} must be timezone-aware (UTC), got the naive time {value.isoformat()}"
        )
    return value


def to_utc(local: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """Convert a naive local wall-clock time in ``tz`` to an aware UTC instant.

    The DST rule (stated in docs/time.md and pinned by tests):

    - A local time that does not exist, because the clocks jump forward over
      it (2021-03-28 02:30 in Europe/Copenhagen), is moved forward by the
      length of the gap: 02:30 becomes 03:30 CEST, i.e. 01:30 UTC. (It is
      read with the offset in force before the jump, as RFC 5545, java.time
      and Python's ``fold=0`` do.)
    - A local time that exists twice, because the clocks fall back over it
      (2021-10-31 02:30), means its first occurrence: 02:30 CEST, 00:30 UTC.

    ``local.fold`` is ignored: the rule decides. Give an explicit offset (see
    :func:`dk2020flow.clock.parse_instant`) to mean the second occurrence.

    A consequence: within the hour after a gap the conversion is not
    monotonic (02:30 -> 01:30 UTC, but 03:00 -> 01:00 UTC). Outside gaps a
    later wall-clock time never gives an earlier instant.
    """
    if local.tzinfo is not None:
        raise ValueError(f"to_utc takes a local time without an offset, got {local.isoformat()}")
    return local.replace(tzinfo=tz, fold=0).astimezone(dt.UTC)


def to_local(instant: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The naive local wall-clock time of an aware instant in ``tz``."""
    return require_aware(instant, "instant").astimezone(tz).replace(tzinfo=None, fold=0)


def is_local_gap(local: dt.datetime, tz: ZoneInfo) -> bool:
    """True when the naive local time does not exist in ``tz`` (a spring-forward gap)."""
    return to_local(to_utc(local, tz), tz) != local.replace(fold=0)


def is_local_fold(local: dt.datetime, tz: ZoneInfo) -> bool:
    """True when the naive local time exists twice in ``tz`` (an autumn fold)."""
    first = local.replace(tzinfo=tz, fold=0)
    second = local.replace(tzinfo=tz, fold=1)
    return first.utcoffset() != second.utcoffset() and not is_local_gap(local, tz)
