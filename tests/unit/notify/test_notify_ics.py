"""Calendar files: timezone, UID, SEQUENCE, cancellation, alarms."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import icalendar
import pytest

from dk2020flow.definition.model import Workflow
from dk2020flow.notify import (
    CalendarMethod,
    deadline_calendar,
    deadline_ics,
    deadline_uid,
    event_calendar,
    event_ics,
    event_uid,
)

CPH = ZoneInfo("Europe/Copenhagen")
STAMP = dt.datetime(2020, 11, 1, 8, 0, tzinfo=dt.UTC)
ORGANIZER = ("DK2020-sekretariatet", "dk2020@concito.example.dk")


def _event(**changes: object) -> icalendar.Calendar:
    kwargs: dict[str, object] = {
        "uid": event_uid("dk2020", "round1", "start_conference", "dk2020.example.dk"),
        "summary": "Startkonference for runde 1",
        "starts_at": dt.datetime(2020, 11, 26, 9, 0, tzinfo=dt.UTC),
        "ends_at": dt.datetime(2020, 11, 26, 15, 0, tzinfo=dt.UTC),
        "timezone": "Europe/Copenhagen",
        "stamp": STAMP,
        "organizer": ORGANIZER,
        "location": "Nyborg Strand, Nyborg",
        "attendees": (("Mette Lindholm", "mette@aarhus.example.dk"),),
    }
    kwargs.update(changes)
    attachment = event_calendar(**kwargs)  # type: ignore[arg-type]
    calendar = icalendar.Calendar.from_ical(attachment.content)
    assert calendar["METHOD"] == attachment.method.value
    return calendar


def test_without_an_organizer_the_event_is_published() -> None:
    assert _event(organizer=None)["METHOD"] == "PUBLISH"


def test_event_invitation_in_copenhagen_time_with_vtimezone() -> None:
    calendar = _event()
    assert calendar["METHOD"] == "REQUEST"
    [timezone] = calendar.walk("VTIMEZONE")
    assert timezone["TZID"] == "Europe/Copenhagen"
    [event] = calendar.walk("VEVENT")
    assert str(event["UID"]) == "event-dk2020-round1-start_conference@dk2020.example.dk"
    start = event.decoded("DTSTART")
    assert start == dt.datetime(2020, 11, 26, 10, 0, tzinfo=CPH)
    assert event["DTSTART"].params["TZID"] == "Europe/Copenhagen"
    assert event.decoded("DTEND") == dt.datetime(2020, 11, 26, 16, 0, tzinfo=CPH)
    assert event["SEQUENCE"] == 0
    assert event["STATUS"] == "CONFIRMED"
    assert str(event["ORGANIZER"]) == "mailto:dk2020@concito.example.dk"
    assert str(event["LOCATION"]) == "Nyborg Strand, Nyborg"
    assert event.walk("VALARM")


def test_the_product_identifier_names_the_product_in_english_not_a_programme() -> None:
    due = dt.datetime(2020, 10, 21, 21, 59, tzinfo=dt.UTC)
    deadline = icalendar.Calendar.from_ical(
        deadline_ics(title="Frist", due_at=due, uid="deadline-1-a@x.dk", timezone="UTC")
    )
    for calendar in (_event(), deadline):
        assert str(calendar["PRODID"]) == "-//dk2020flow//dk2020flow//EN"


def test_updated_event_keeps_the_uid_and_raises_the_sequence() -> None:
    first = _event().walk("VEVENT")[0]
    update = _event(sequence=2, location="Fredericia").walk("VEVENT")[0]
    assert str(update["UID"]) == str(first["UID"])
    assert update["SEQUENCE"] == 2


def test_cancellation_has_method_cancel_and_status_cancelled() -> None:
    calendar = _event(cancelled=True, sequence=3)
    assert calendar["METHOD"] == "CANCEL"
    [event] = calendar.walk("VEVENT")
    assert event["STATUS"] == "CANCELLED"
    assert event["SEQUENCE"] == 3
    assert not event.walk("VALARM")


def test_deadline_is_a_point_in_time_with_an_alarm_across_dst() -> None:
    # 31 August 23:59 local is 21:59 UTC (summer time).
    attachment = deadline_calendar(
        uid=deadline_uid(751, "reply_deadline", "dk2020.example.dk"),
        summary="Svarfrist: DK2020",
        due_at=dt.datetime(2020, 8, 31, 21, 59, tzinfo=dt.UTC),
        timezone="Europe/Copenhagen",
        stamp=STAMP,
    )
    assert attachment.method is CalendarMethod.PUBLISH
    assert attachment.filename == "deadline.ics"
    assert "\r\n" in attachment.content
    [event] = icalendar.Calendar.from_ical(attachment.content).walk("VEVENT")
    assert str(event["UID"]) == "deadline-751-reply_deadline@dk2020.example.dk"
    assert event.decoded("DTSTART") == dt.datetime(2020, 8, 31, 23, 59, tzinfo=CPH)
    assert event.decoded("DTSTART") == event.decoded("DTEND")
    assert event["TRANSP"] == "TRANSPARENT"
    [alarm] = event.walk("VALARM")
    assert alarm.decoded("TRIGGER") == -dt.timedelta(days=3)


def test_naive_times_and_bad_uids_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _event(starts_at=dt.datetime(2020, 11, 26, 10, 0))
    with pytest.raises(ValueError, match="single line"):
        _event(uid="x@y\r\nATTENDEE:mailto:evil@example.com")
    with pytest.raises(ValueError, match="end after it starts"):
        _event(ends_at=dt.datetime(2020, 11, 26, 8, 0, tzinfo=dt.UTC))


def test_uids_are_safe_single_tokens() -> None:
    assert event_uid("dk2020", "round 1", "x/y", "d.dk") == "event-dk2020-round_1-x_y@d.dk"
    assert deadline_uid("DK2020-751", "plan_due", "d.dk") == "deadline-DK2020-751-plan_due@d.dk"


def test_event_ics_from_the_workflow_file(workflow: Workflow) -> None:
    spec = workflow.cohorts["round1"].events["start_conference"]
    text = event_ics(
        spec,
        uid="event-dk2020-round1-start_conference@x.dk",
        timezone="Europe/Copenhagen",
        language="da",
    )
    assert text == event_ics(
        spec,
        uid="event-dk2020-round1-start_conference@x.dk",
        timezone="Europe/Copenhagen",
        language="da",
    )
    calendar = icalendar.Calendar.from_ical(text)
    assert calendar["METHOD"] == "PUBLISH"
    [event] = calendar.walk("VEVENT")
    assert str(event["SUMMARY"]) == "Startkonference for runde 1"
    assert event.decoded("DTSTART") == dt.datetime(2020, 11, 26, 10, 0, tzinfo=CPH)
    assert event.decoded("DTEND") == dt.datetime(2020, 11, 26, 16, 0, tzinfo=CPH)
    cancelled = spec.model_copy(update={"cancelled": True, "sequence": 1})
    again = icalendar.Calendar.from_ical(
        event_ics(
            cancelled,
            uid="event-dk2020-round1-start_conference@x.dk",
            timezone="Europe/Copenhagen",
            language="da",
            organizer=ORGANIZER,
        )
    )
    assert again["METHOD"] == "CANCEL"
    assert again.walk("VEVENT")[0]["SEQUENCE"] == 1


def test_deadline_ics_is_deterministic() -> None:
    due = dt.datetime(2020, 10, 21, 21, 59, tzinfo=dt.UTC)
    first = deadline_ics(
        title="Ansøgningsfrist", due_at=due, uid="deadline-751-a@x.dk", timezone="Europe/Copenhagen"
    )
    assert first == deadline_ics(
        title="Ansøgningsfrist", due_at=due, uid="deadline-751-a@x.dk", timezone="Europe/Copenhagen"
    )
    assert "METHOD:PUBLISH" in first


def _as_icalendar_writes_it(content: str) -> str:
    """The file icalendar itself makes for the same calendar and event
    (``add_missing_timezones`` and ``to_ical`` on the whole calendar)."""
    parsed = icalendar.Calendar.from_ical(content)
    calendar = icalendar.Calendar()
    for name in ("prodid", "version", "calscale", "method"):
        calendar.add(name, str(parsed[name]))
    [event] = parsed.walk("VEVENT")
    calendar.add_component(event)
    [timezone] = parsed.walk("VTIMEZONE") or [None]
    years = (event.decoded("DTSTART").year, event.decoded("DTEND").year)
    calendar.add_missing_timezones(
        first_date=dt.date(years[0] - 1, 1, 1), last_date=dt.date(years[1] + 1, 12, 31)
    )
    assert (timezone is None) == (not calendar.walk("VTIMEZONE"))
    return str(calendar.to_ical().decode("utf-8"))


@pytest.mark.parametrize("timezone", ["Europe/Copenhagen", "America/New_York", "UTC"])
@pytest.mark.parametrize("year", [2020, 2023])
def test_files_made_with_the_cached_vtimezone_are_what_icalendar_makes(
    timezone: str, year: int
) -> None:
    due = dt.datetime(year, 3, 28, 23, 30, tzinfo=dt.UTC)
    for cancelled in (False, True):
        deadline = deadline_ics(
            title="Frist: " + "lang tekst " * 12,
            due_at=due,
            uid="deadline-751-a@x.dk",
            timezone=timezone,
            cancelled=cancelled,
            description="første linje\r\nanden linje",
        )
        assert deadline == _as_icalendar_writes_it(deadline)
        event = event_calendar(
            uid="event-dk2020-round1-start_conference@x.dk",
            summary="Startkonference",
            starts_at=due,
            ends_at=due + dt.timedelta(days=300),
            timezone=timezone,
            stamp=STAMP,
            organizer=ORGANIZER,
            attendees=(("Mette Lindholm", "mette@aarhus.example.dk"),),
            cancelled=cancelled,
        )
        assert event.content == _as_icalendar_writes_it(event.content)


# ----------------------------------------------------------------------------- RFC 5546 (issue 15, point 13)


def test_a_request_names_its_organizer_and_every_attendee() -> None:
    attendees = (
        ("Mette Lindholm", "mette@aarhus.example.dk"),
        ("Søren Kjær", "soren@rm.example.dk"),
    )
    calendar = _event(attendees=attendees)
    assert calendar["METHOD"] == "REQUEST"
    [event] = calendar.walk("VEVENT")
    assert str(event["ORGANIZER"]) == "mailto:dk2020@concito.example.dk"
    assert event["ORGANIZER"].params["CN"] == "DK2020-sekretariatet"
    found = event["ATTENDEE"]
    assert [str(a) for a in found] == [f"mailto:{address}" for _, address in attendees]
    for attendee, (name, _) in zip(found, attendees, strict=True):
        assert attendee.params["CN"] == name
        assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
        assert attendee.params["RSVP"] == "TRUE"


def test_without_attendees_the_event_is_published_not_requested() -> None:
    calendar = _event(attendees=())
    assert calendar["METHOD"] == "PUBLISH"
    [event] = calendar.walk("VEVENT")
    assert "ATTENDEE" not in event


def test_a_deadline_is_published_by_its_organizer_without_attendees() -> None:
    attachment = deadline_calendar(
        uid=deadline_uid(751, "reply_deadline", "dk2020.example.dk"),
        summary="DK2020 – klimaplaner i hele Danmark: Kommunalbestyrelsens svar",
        due_at=dt.datetime(2020, 8, 31, 23, 59, tzinfo=CPH),
        timezone="Europe/Copenhagen",
        stamp=STAMP,
        organizer=ORGANIZER,
    )
    calendar = icalendar.Calendar.from_ical(attachment.content)
    assert calendar["METHOD"] == "PUBLISH"
    [event] = calendar.walk("VEVENT")
    assert str(event["ORGANIZER"]) == "mailto:dk2020@concito.example.dk"
    assert "ATTENDEE" not in event
