"""Calendar attachments (iCalendar, RFC 5545/5546) for programme events and deadlines.

An event invitation is ``METHOD:REQUEST`` with an ORGANIZER (the programme's
sender) and an ATTENDEE for each recipient of the message (``PARTSTAT=NEEDS-ACTION``,
``RSVP=TRUE``), as RFC 5546 requires of a request, so calendar clients offer to
accept or decline; a deadline is a point in time with a reminder alarm, sent as
``METHOD:PUBLISH`` by its ORGANIZER (nothing to answer, so no ATTENDEE). An update
sends the same UID with a higher SEQUENCE; a cancellation sends
``METHOD:CANCEL`` and ``STATUS:CANCELLED`` with the same UID. Times carry the
workflow's timezone with its VTIMEZONE, so "26 November 10:00" stays right
in every client.

UIDs are stable and chosen by the caller (:func:`event_uid`,
:func:`deadline_uid`); ``stamp`` (DTSTAMP) is passed in, never read from a
clock.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import cast
from zoneinfo import ZoneInfo

import icalendar
from icalendar.timezone import tzp

from dk2020flow.definition.model import CalendarEvent, text_in

PRODID = "-//dk2020flow//dk2020flow//EN"
"""The product's identifier (RFC 5545 3.7.3): the last part is the language of the product
text ("dk2020flow"), not of a programme's calendar — English, as the convention is."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]")


class CalendarMethod(StrEnum):
    REQUEST = "REQUEST"
    PUBLISH = "PUBLISH"
    CANCEL = "CANCEL"


@dataclass(frozen=True)
class CalendarAttachment:
    """An ``.ics`` file ready to attach: ``text/calendar; method=…``."""

    content: str
    method: CalendarMethod
    filename: str = "invitation.ics"


def _part(value: str | int) -> str:
    return _UNSAFE.sub("_", str(value))


def event_uid(workflow: str, cohort: str, event: str, domain: str) -> str:
    """``event-dk2020-round1-start_conference@domain``: one per event, shared by all cases."""
    return f"event-{_part(workflow)}-{_part(cohort)}-{_part(event)}@{domain}"


def deadline_uid(case: str | int, timer: str, domain: str) -> str:
    """``deadline-751-reply_deadline@domain``: one per deadline of a case."""
    return f"deadline-{_part(case)}-{_part(timer)}@{domain}"


def _clean(text: str) -> str:
    return text.replace("\r", " ").strip()


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")
    return value


_CALENDAR_END = b"END:VCALENDAR\r\n"


@functools.lru_cache(maxsize=8)
def _calendar_head(method: CalendarMethod) -> bytes:
    """``BEGIN:VCALENDAR`` and the calendar's properties: the same for every file."""
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method.value)
    content: bytes = cal.to_ical()
    if not content.endswith(_CALENDAR_END):  # pragma: no cover - icalendar changed
        raise AssertionError("unexpected iCalendar serialisation")
    return content[: -len(_CALENDAR_END)]


@functools.lru_cache(maxsize=64)
def _vtimezone(tzid: str, provider: str, first: dt.date, last: dt.date) -> bytes | None:
    """The VTIMEZONE for ``tzid`` over the years given (None for an unknown zone).

    Building one walks every transition of the zone: a few hundred
    microseconds that each deadline would otherwise pay again.
    """
    try:
        timezone = icalendar.Timezone.from_tzid(tzid, first_date=first, last_date=last)
    except ValueError:
        return None
    content: bytes = timezone.to_ical()
    return content


def _missing_tzids(event: icalendar.Event) -> set[str]:
    """The TZIDs the event needs a VTIMEZONE for, as ``Calendar.get_missing_tzids``
    finds them (built the same way, so a set of several iterates the same)."""
    found: set[str | None] = set()
    for _name, value in event.property_items(sorted=False):
        if hasattr(value, "params"):
            found.add(value.params.get("TZID"))
    used = cast("set[str]", found - {None})
    return used - {"UTC"}


def _calendar(method: CalendarMethod, event: icalendar.Event, years: tuple[int, int]) -> str:
    """The calendar file: what ``Calendar.add_missing_timezones`` and ``to_ical`` give
    for these properties, this event and its zones, with the fixed parts made once."""
    first, last = dt.date(years[0] - 1, 1, 1), dt.date(years[1] + 1, 12, 31)
    provider = tzp.name
    zones = [_vtimezone(tzid, provider, first, last) for tzid in _missing_tzids(event)]
    content = b"".join(
        (
            _calendar_head(method),
            *(zone for zone in zones if zone is not None),
            event.to_ical(),
            _CALENDAR_END,
        )
    )
    return content.decode("utf-8")


def _add_organizer(event: icalendar.Event, organizer: tuple[str, str]) -> None:
    name, address = organizer
    event.add("organizer", f"mailto:{address}", parameters={"CN": _clean(name) or address})


def _base_event(
    *,
    uid: str,
    summary: str,
    stamp: dt.datetime,
    sequence: int,
    cancelled: bool,
    description: str,
    location: str,
    url: str,
) -> icalendar.Event:
    if not uid or any(c in uid for c in "\r\n"):
        raise ValueError("a calendar UID must be a non-empty single line")
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", _aware(stamp, "stamp").astimezone(dt.UTC))
    event.add("sequence", sequence)
    event.add("summary", _clean(summary))
    if description:
        event.add("description", description.replace("\r\n", "\n"))
    if location:
        event.add("location", _clean(location))
    if url:
        event.add("url", _clean(url))
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    return event


def event_calendar(
    *,
    uid: str,
    summary: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    timezone: str,
    stamp: dt.datetime,
    organizer: tuple[str, str] | None = None,
    attendees: tuple[tuple[str, str], ...] = (),
    location: str = "",
    description: str = "",
    url: str = "",
    sequence: int = 0,
    cancelled: bool = False,
) -> CalendarAttachment:
    """An invitation (or its cancellation) for a programme event.

    ``organizer`` and ``attendees`` are ``(name, address)`` pairs. With an
    organizer and attendees the file is a meeting request (``METHOD:REQUEST``);
    without either it is published (``METHOD:PUBLISH``, no ATTENDEE), as RFC 5546
    requires.
    """
    zone = ZoneInfo(timezone)
    start = _aware(starts_at, "starts_at").astimezone(zone)
    end = _aware(ends_at, "ends_at").astimezone(zone)
    if end <= start:
        raise ValueError("an event must end after it starts")
    event = _base_event(
        uid=uid,
        summary=summary,
        stamp=stamp,
        sequence=sequence,
        cancelled=cancelled,
        description=description,
        location=location,
        url=url,
    )
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("transp", "OPAQUE")
    request = organizer is not None and bool(attendees)
    if organizer is not None:
        _add_organizer(event, organizer)
    for attendee_name, attendee_address in attendees if request else ():
        event.add(
            "attendee",
            f"mailto:{attendee_address}",
            parameters={
                "CN": _clean(attendee_name) or attendee_address,
                "CUTYPE": "INDIVIDUAL",
                "ROLE": "REQ-PARTICIPANT",
                "PARTSTAT": "NEEDS-ACTION",
                "RSVP": "TRUE",
            },
        )
    if not cancelled:
        alarm = icalendar.Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", _clean(summary))
        alarm.add("trigger", -dt.timedelta(days=1))
        event.add_component(alarm)
    if cancelled:
        method = CalendarMethod.CANCEL
    else:
        method = CalendarMethod.REQUEST if request else CalendarMethod.PUBLISH
    content = _calendar(method, event, (start.year, end.year))
    return CalendarAttachment(content, method, "cancel.ics" if cancelled else "invitation.ics")


def deadline_calendar(
    *,
    uid: str,
    summary: str,
    due_at: dt.datetime,
    timezone: str,
    stamp: dt.datetime,
    description: str = "",
    url: str = "",
    alarm_before: dt.timedelta = dt.timedelta(days=3),
    sequence: int = 0,
    cancelled: bool = False,
    organizer: tuple[str, str] | None = None,
) -> CalendarAttachment:
    """A deadline as a calendar entry: a point in time that blocks nothing, with an alarm,
    published by ``organizer`` (``(name, address)``) when given."""
    zone = ZoneInfo(timezone)
    due = _aware(due_at, "due_at").astimezone(zone)
    event = _base_event(
        uid=uid,
        summary=summary,
        stamp=stamp,
        sequence=sequence,
        cancelled=cancelled,
        description=description,
        location="",
        url=url,
    )
    event.add("dtstart", due)
    event.add("dtend", due)
    event.add("transp", "TRANSPARENT")
    if organizer is not None:
        _add_organizer(event, organizer)
    if not cancelled:
        alarm = icalendar.Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", _clean(summary))
        alarm.add("trigger", -abs(alarm_before))
        event.add_component(alarm)
    method = CalendarMethod.CANCEL if cancelled else CalendarMethod.PUBLISH
    content = _calendar(method, event, (due.year, due.year))
    return CalendarAttachment(content, method, "cancel.ics" if cancelled else "deadline.ics")


# ----------------------------------------------------------------------------- from the workflow


def event_ics(
    spec: CalendarEvent,
    *,
    uid: str,
    timezone: str,
    language: str,
    stamp: dt.datetime | None = None,
    organizer: tuple[str, str] | None = None,
    attendees: tuple[tuple[str, str], ...] = (),
) -> str:
    """The ``.ics`` text for a programme event as the workflow file describes it.

    ``spec.sequence`` and ``spec.cancelled`` decide update and cancellation.
    ``stamp`` should be the injected ``now``; without it DTSTAMP is the event's
    start, so the same event always gives the same file. Without an
    ``organizer`` and ``attendees`` (the message's recipients) the calendar is
    published (``METHOD:PUBLISH``) rather than sent as a meeting request, which
    needs both.
    """
    zone = ZoneInfo(timezone)
    starts = spec.at.replace(tzinfo=zone)
    ends = (spec.at + spec.duration.delta).replace(tzinfo=zone)
    attachment = event_calendar(
        uid=uid,
        summary=text_in(spec.title, language),
        starts_at=starts,
        ends_at=ends,
        timezone=timezone,
        stamp=stamp or starts,
        organizer=organizer,
        attendees=attendees,
        location=spec.location,
        sequence=spec.sequence,
        cancelled=spec.cancelled,
    )
    return attachment.content


def deadline_ics(
    *,
    title: str,
    due_at: dt.datetime,
    uid: str,
    timezone: str,
    sequence: int = 0,
    cancelled: bool = False,
    stamp: dt.datetime | None = None,
    description: str = "",
    organizer: tuple[str, str] | None = None,
) -> str:
    """The ``.ics`` text for a deadline; ``stamp`` defaults to ``due_at``."""
    attachment = deadline_calendar(
        organizer=organizer,
        uid=uid,
        summary=title,
        due_at=due_at,
        timezone=timezone,
        stamp=stamp or due_at,
        description=description,
        sequence=sequence,
        cancelled=cancelled,
    )
    return attachment.content
