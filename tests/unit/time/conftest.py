"""Shared fixtures for the pure time tests (no I/O, no clock reads)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.model import Calendar


@pytest.fixture(scope="session")
def tz() -> ZoneInfo:
    return ZoneInfo("Europe/Copenhagen")


@pytest.fixture(scope="session")
def calendar() -> BusinessCalendar:
    """The DK2020 calendar: Constitution Day, 24 and 31 December closed; 1 May open."""
    return BusinessCalendar(Calendar(country="DK"))
