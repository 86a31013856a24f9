"""Working days counted independently of dk2020flow's calendar code, for tests that check
armed deadlines: Monday to Friday, without a country's public holidays (the `holidays`
package) and any other closed days, with a plain loop."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import holidays


class WorkingDays:
    def __init__(
        self,
        country: str,
        subdivision: str | None = None,
        closed: Iterable[dt.date] = (),
        years: Iterable[int] = range(2020, 2027),
    ) -> None:
        self.public = holidays.country_holidays(country, subdiv=subdivision, years=list(years))
        self.closed = set(closed)

    def open(self, day: dt.date) -> bool:
        return day.weekday() < 5 and day not in self.public and day not in self.closed

    def add(self, day: dt.date, count: int) -> dt.date:
        """``count`` working days after ``day`` (before it when negative)."""
        step = 1 if count > 0 else -1
        for _ in range(abs(count)):
            day += dt.timedelta(step)
            while not self.open(day):
                day += dt.timedelta(step)
        return day

    def roll(self, day: dt.date) -> dt.date:
        """``day``, or the next working day when it is closed."""
        while not self.open(day):
            day += dt.timedelta(1)
        return day
