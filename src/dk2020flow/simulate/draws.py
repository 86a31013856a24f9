"""Drawing instants, counts and values from a behaviour profile: pure functions of a seeded RNG.

Every function takes the ``random.Random`` it draws from; the simulation
gives each case its own generator, derived from the seed and the
organisation's code, so a case's draws do not depend on what other cases did
(the same seed gives the same timeline; adding a case leaves the others
alone).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import re
import unicodedata
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.model import Cohort
from dk2020flow.localtime import to_local, to_utc
from dk2020flow.simulate.profile import Count, Delay, Window

DAY = dt.timedelta(days=1)
ACT_FROM = dt.time(9, 0)
ACT_MINUTES = 7 * 60  # 09:00 - 16:00
_TRANSLITERATION = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "Æ": "ae", "Ø": "oe", "Å": "aa"})


def case_rng(seed: int, key: str) -> random.Random:
    """A generator for one participant, stable for (seed, key) across runs and platforms."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def slug(text: str) -> str:
    """``Høje-Taastrup`` → ``hoeje-taastrup``: a name as it would appear in a domain."""
    folded = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATION))
    ascii_text = folded.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


def days(delay: Delay, rng: random.Random) -> float:
    """A number of days drawn from ``delay`` (may be negative for a cohort anchor)."""
    kind = delay.distribution
    if kind == "fixed":
        value = float(delay.days or 0.0)
    elif kind == "uniform":
        value = rng.uniform(float(delay.min or 0.0), float(delay.max or 0.0))
    elif kind == "triangular":
        value = rng.triangular(
            float(delay.min or 0.0), float(delay.max or 0.0), float(delay.mode or 0.0)
        )
    elif kind == "lognormal":
        value = rng.lognormvariate(math.log(float(delay.median or 1.0)), float(delay.sigma or 0.0))
    else:
        value = rng.expovariate(1.0 / float(delay.mean or 1.0))
    if delay.min is not None and kind in {"lognormal", "exponential"}:
        value = max(value, delay.min)
    if delay.max is not None and kind in {"lognormal", "exponential"}:
        value = min(value, delay.max)
    return value


def window_day(window: Window, rng: random.Random) -> dt.date:
    first, last = window.between
    span = (last - first).days
    if window.distribution == "triangular" and window.mode is not None:
        offset = rng.triangular(0, span, (window.mode - first).days)
    else:
        offset = rng.uniform(0, span)
    return first + dt.timedelta(days=min(span, round(offset)))


def count(spec: Count, rng: random.Random) -> int:
    if spec.distribution == "fixed":
        value = spec.n or 0
    elif spec.distribution == "uniform":
        value = rng.randint(spec.min, spec.max)
    else:
        p = spec.p or 1.0
        value = spec.min
        while value < spec.max and rng.random() >= p:
            value += 1
    return max(spec.min, min(spec.max, value))


def anchor_instant(
    anchor: str, *, entered_at: dt.datetime, cohort: Cohort | None, tz: ZoneInfo
) -> dt.datetime | None:
    """The instant a delay counts from; None when the case has no cohort for a cohort anchor."""
    if anchor == "entered":
        return entered_at
    if cohort is None:
        return None
    value: dt.date | dt.datetime = getattr(cohort, anchor.split(".", 1)[1])
    if isinstance(value, dt.datetime):
        return (
            to_utc(value.replace(tzinfo=None), tz)
            if value.tzinfo is None
            else value.astimezone(dt.UTC)
        )
    return to_utc(dt.datetime.combine(value, dt.time()), tz)


def office_instant(
    instant: dt.datetime, rng: random.Random, calendar: BusinessCalendar, tz: ZoneInfo
) -> dt.datetime:
    """``instant`` moved to a business day, at a random time between 09:00 and 16:00 local."""
    day = calendar.next_business_day(to_local(instant, tz).date(), inclusive=True)
    minutes = rng.randrange(ACT_MINUTES)
    local = dt.datetime.combine(day, ACT_FROM) + dt.timedelta(minutes=minutes)
    return to_utc(local, tz)


def data_values(
    data: Mapping[str, Any], variables: Mapping[str, str], rng: random.Random
) -> dict[str, Any]:
    """The data an action carries: text templates filled in, ``{choice: [...]}`` drawn."""
    return {name: _value(value, variables, rng) for name, value in data.items()}


def _value(value: Any, variables: Mapping[str, str], rng: random.Random) -> Any:
    if isinstance(value, str):
        return fill(value, variables)
    if isinstance(value, dict) and set(value) == {"choice"} and isinstance(value["choice"], list):
        return _value(rng.choice(value["choice"]), variables, rng)
    return value


_FIELD = re.compile(r"\{([a-z_]+)\}")


def fill(template: str, variables: Mapping[str, str]) -> str:
    """``{name}`` replaced by its variable; an unknown name is left as written."""
    return _FIELD.sub(lambda m: variables.get(m.group(1), m.group(0)), template)
