"""Calendars for any country (issue 18): the cities of one programme, each in its own
country, each with its own holidays. A timer marked `calendar: organisation` counts the
business days of the case's organisation; the programme's timers count the workflow's
calendar (docs/workflow-format.md#calendars).

The cities come from the workflow's own data set (`organisations:`, a CSV that `workflow
load` imports) with their country and subdivision; the cases are opened, moved and
migrated through the service on a real database (SQLite and PostgreSQL), and every armed
instant is compared with dates computed here from `holidays.country_holidays` and a plain
weekday loop — never with dk2020flow's own calendar code.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.service import Service
from dk2020flow.store.port import StoredTimer
from dk2020flow.store.repository import SqlStore
from working_days import WorkingDays

ROOT = Path(__file__).resolve().parents[3]
NOTES = ROOT / "tests" / "data" / "mini" / "notifications" / "mini"
BRUSSELS = ZoneInfo("Europe/Brussels")
OPENED = dt.datetime(2025, 4, 16, 9, 0, tzinfo=BRUSSELS)
"""Wednesday before Easter 2025: Good Friday (DE), Easter Monday, 1 May, Victory Day (FR,
8 May), Ascension, Whit Monday and Corpus Christi (BY, 19 June) lie ahead."""
ANSWERED = dt.datetime(2025, 7, 10, 11, 0, tzinfo=BRUSSELS)
"""Thursday before Bastille Day (FR, 14 July) and the Belgian National Day (21 July)."""

# The programme office is Belgian and closes on two bridge days of its own.
BRIDGE_DAYS = {dt.date(2025, 5, 2), dt.date(2025, 5, 30)}

WORKFLOW = """\
workflow: cities
version: "{version}"
title: Cities
timezone: Europe/Brussels
languages: [en]
calendar:
  country: BE
  closures:
    - {{name: Bridge day, on: 2025-05-02}}
    - {{name: Bridge day, on: 2025-05-30}}
office_hours: {{days: every_day, opens: "00:00", closes: "23:59"}}
links: {{programme: "https://cities.example.eu", help_email: "help@cities.example.eu"}}
organisations: data/cities.csv
roles:
  city: {{title: City, receives_mail: true}}
  office:
    title: Office
    receives_mail: true
    name: The office
    email: office@cities.example.eu
states:
  asked:
    initial: true
    timers:
      answer_due:
        title: The city's answer
        due: {{business_days: 45, time: "16:00"}}
        calendar: organisation
        reminders:
          before: [{{business_days: 5}}]
          mail: {{template: note, to: city}}
        escalate:
          after: {{business_days: 3}}
          to: office
          mail: {{template: note, to: office}}
      city_meeting:
        due: {{at: 2025-06-19T10:00, roll: next_business_day}}
        calendar: organisation
      office_check:
        title: The office's check
        due: {{business_days: 45, time: "16:00"}}
        reminders:
          before: [{{business_days: 5}}]
          mail: {{template: note, to: office}}
      office_meeting:
        due: {{at: 2025-05-30T10:00, roll: next_business_day}}
  checking:
    timers:
      correction_due:
        due: {{business_days: {correction}, time: "12:00"}}
        calendar: organisation
        on_due:
          mail: {{template: note, to: city}}
  done:
    terminal: true
transitions:
  - {{trigger: answer, from: asked, to: checking, roles: [city]}}
  - {{trigger: close, from: checking, to: done, roles: [office]}}
"""

CITIES = """\
code,name,kind,country,subdivision,region,group,language,title_en
BE-LEU,Leuven,city,BE,,Belgium,,nl,City of Leuven
DE-MUC,München,city,DE,BY,Germany,,de,City of Munich
FR-LYO,Lyon,city,FR,,France,,fr,City of Lyon
XX-ATL,Atlantis,city,,,Nowhere,,en,Atlantis
"""

PLACES = {"Leuven": ("BE", None), "München": ("DE", "BY"), "Lyon": ("FR", None)}
"""The three cities' countries and subdivisions, as the CSV gives them."""


PROGRAMME = WorkingDays("BE", closed=BRIDGE_DAYS)


def _write(tmp_path: Path, version: str, correction: int) -> Path:
    folder = tmp_path / version
    path = folder / "workflows" / "cities.yaml"
    (folder / "workflows" / "data").mkdir(parents=True)
    (folder / "workflows" / "data" / "cities.csv").write_text(CITIES, encoding="utf-8")
    (folder / "notifications").mkdir()
    (folder / "notifications" / "cities").symlink_to(NOTES)
    path.write_text(WORKFLOW.format(version=version, correction=correction), encoding="utf-8")
    return path


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=BRUSSELS).astimezone(dt.UTC)


def _armed(store: SqlStore, case_id: int | None) -> dict[str, dt.datetime]:
    assert case_id is not None
    with store.read() as tx:
        rows: list[StoredTimer] = tx.timers_of(case_id)
    return {f"{row.timer}.{row.kind}": row.due_at for row in rows}


@pytest.fixture
def service(store: SqlStore, tmp_path: Path) -> Service:
    svc = Service(store, clock=ManualClock(OPENED.astimezone(dt.UTC)))
    svc.load_workflow(_write(tmp_path, "1", correction=10))
    return svc


def test_the_cities_are_imported_with_their_countries(service: Service, store: SqlStore) -> None:
    with store.read() as tx:
        found = {o.name: (o.country, o.subdivision) for o in tx.organisations()}
    assert found["München"] == ("DE", "BY")
    assert found["Lyon"] == ("FR", "") and found["Atlantis"] == ("", "")


def test_each_city_counts_its_own_holidays(service: Service, store: SqlStore) -> None:
    """Forty-five business days after Wednesday 16 April 2025: Leuven skips Easter Monday,
    1 May, Ascension and Whit Monday; Lyon also Victory Day; München also Good Friday and
    Corpus Christi. Three countries, three deadlines; the programme's timer is the
    office's (Belgian holidays and its two bridge days) for all of them."""
    opened = OPENED.date()
    deadlines: dict[str, dt.date] = {}
    for city, (country, subdivision) in PLACES.items():
        case = service.open_case("cities", city, actor="office", role="office")
        assert (case.country, case.subdivision) == (country, subdivision or "")
        armed = _armed(store, case.id)
        theirs = WorkingDays(country, subdivision)
        due = theirs.add(opened, 45)
        deadlines[city] = due
        assert armed["answer_due.deadline"] == _at(due, 16), city
        assert armed["answer_due.reminder"] == _at(theirs.add(due, -5), 16), city
        assert armed["answer_due.escalation"] == _at(theirs.add(due, 3), 16), city
        assert armed["city_meeting.deadline"] == _at(theirs.roll(dt.date(2025, 6, 19)), 10)
        # The programme's timers: Belgian holidays and the office's bridge days.
        ours = PROGRAMME.add(opened, 45)
        assert armed["office_check.deadline"] == _at(ours, 16), city
        assert armed["office_check.reminder"] == _at(PROGRAMME.add(ours, -5), 16), city
        assert armed["office_meeting.deadline"] == _at(dt.date(2025, 6, 2), 10), city
    assert deadlines == {
        "Leuven": dt.date(2025, 6, 24),
        "Lyon": dt.date(2025, 6, 25),
        "München": dt.date(2025, 6, 26),
    }
    # Leuven's own deadline ignores the office's bridge days: two days before the office's.
    assert PROGRAMME.add(opened, 45) == dt.date(2025, 6, 26)
    # Corpus Christi closes München only: its meeting rolls to Friday.
    assert not WorkingDays("DE", "BY").open(dt.date(2025, 6, 19))


def test_a_city_without_a_country_follows_the_programme(service: Service, store: SqlStore) -> None:
    case = service.open_case("cities", "Atlantis", actor="office", role="office")
    armed = _armed(store, case.id)
    assert armed["answer_due.deadline"] == armed["office_check.deadline"]
    assert armed["answer_due.deadline"] == _at(PROGRAMME.add(OPENED.date(), 45), 16)
    assert armed["answer_due.escalation"] == _at(PROGRAMME.add(dt.date(2025, 6, 26), 3), 16)


def test_a_loaded_case_moves_and_migrates_on_its_citys_calendar(
    service: Service, store: SqlStore, tmp_path: Path
) -> None:
    """The case read back from the database keeps counting its city's days: entering a
    state (ten business days from Thursday 10 July: Lyon skips Bastille Day, Leuven the
    National Day, München neither) and a migration to a version that gives twelve."""
    ids = {}
    for city in PLACES:
        ids[city] = service.open_case("cities", city, actor="office", role="office").id
        service.fire(city, "answer", actor=city, role="city", now=ANSWERED.astimezone(dt.UTC))
    answered = ANSWERED.date()
    corrections = {}
    for city, (country, subdivision) in PLACES.items():
        due = WorkingDays(country, subdivision).add(answered, 10)
        corrections[city] = due
        assert _armed(store, ids[city]) == {"correction_due.deadline": _at(due, 12)}, city
    assert corrections == {
        "München": dt.date(2025, 7, 24),
        "Lyon": dt.date(2025, 7, 25),
        "Leuven": dt.date(2025, 7, 25),
    }
    # Lyon and Leuven each lose a day, to holidays of their own (14 and 21 July).
    assert PROGRAMME.add(answered, 10) == dt.date(2025, 7, 25)

    service.load_workflow(_write(tmp_path, "2", correction=12))
    at = (ANSWERED + dt.timedelta(days=1)).astimezone(dt.UTC)
    plan = service.migrate("cities", state_map={}, actor="tester", dry_run=False, now=at)
    assert plan.applied and len(plan.items) == 3
    for city, (country, subdivision) in PLACES.items():
        due = WorkingDays(country, subdivision).add(answered, 12)
        assert _armed(store, ids[city]) == {"correction_due.deadline": _at(due, 12)}, city
