"""The second shipped programme, the EU Mission's Climate City Contract cycle
(workflows/eu_mission.yaml), as a process owner runs it with the installed command:
validate and graph it, simulate the programme's default period (the call of November 2021
to the first progress reports of 2024) and read what happened: cities reach the Mission
Label after reminders, peer reviews item by item and revisions; the mail is in English
from the workflow's sender; the Mission Platform's deadlines are counted on Belgian working
days and each city's own deadlines on its country's (both checked against the `holidays`
package directly); and the report reads a simulated programme. The cities are the
workflow's data set (workflows/data/eu_mission_cities.csv), which a fresh database gets
when the workflow is loaded."""

from __future__ import annotations

import csv
import datetime as dt
import email
import json
import re
from collections import Counter
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from ruamel.yaml import YAML

from working_days import WorkingDays

from .installed import InstalledCli

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "workflows" / "eu_mission.yaml"
PROFILE = ROOT / "workflows" / "behaviour" / "eu_mission.yaml"
CITIES = ROOT / "workflows" / "data" / "eu_mission_cities.csv"
BRUSSELS = ZoneInfo("Europe/Brussels")
SENDER = "EU Mission Platform <cities@mission-platform.example.eu>"
MOVE = re.compile(r"^(?P<trigger>\w+): (?P<source>\w+) → (?P<target>\w+)")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """`simulate eu_mission --json --out DIR` over the default period, by the shipped
    workflow's name and with its own profile (found beside it): (its JSON, the mail folder)."""
    folder = tmp_path_factory.mktemp("eu-mission")
    cli = InstalledCli(folder, timeout=300)
    done = cli("simulate", "eu_mission", "--out", "mail", "--json")
    return json.loads(done.stdout), folder / "mail"


@pytest.fixture(scope="module")
def mails(simulated: tuple[dict[str, Any], Path]) -> list[EmailMessage]:
    """Every mail of the simulation, as its .eml file."""
    return [
        email.message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in sorted(simulated[1].glob("*.eml"))
    ]


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def _at(entry: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(entry["at"])


# ----------------------------------------------------------------------------- validate, graph


def test_the_workflow_validates_clean_by_path_and_by_name(tmp_path: Path) -> None:
    cli = InstalledCli(tmp_path)
    report = cli.json("workflow", "validate", str(WORKFLOW))
    assert (report["errors"], report["warnings"]) == (0, 0), report
    (checked,) = report["files"]
    assert checked["valid"] and checked["workflow"] == "eu_mission"
    # Shipped with the package: found by its name from any folder.
    by_name = cli("workflow", "validate", "eu_mission")
    assert "eu_mission 2022.1" in by_name.stdout and "0 errors, 0 warnings" in by_name.stderr


def test_an_exported_copy_brings_its_profile_and_simulates_as_it_is(tmp_path: Path) -> None:
    cli = InstalledCli(tmp_path, timeout=300)
    cli("workflow", "export", "eu_mission", "mine")
    copied = tmp_path / "mine" / "workflows" / "behaviour" / "eu_mission.yaml"
    assert copied.read_text() == PROFILE.read_text()
    done = cli("simulate", "mine/workflows/eu_mission.yaml", "--to", "2022-03-31", "--json")
    assert json.loads(done.stdout)["problems"] == []


def test_the_graph_draws_the_whole_cycle(tmp_path: Path) -> None:
    graph = InstalledCli(tmp_path)("workflow", "graph", str(WORKFLOW)).stdout
    for edge in (
        "invited --> eoi_submitted : express_interest",
        "peer_review --> revising : request_revision",
        "revising --> peer_review : resubmit_ccc",
        "label_decision --> labelled : award_label",
        "labelled --> reporting : open_report (mission_platform) ⏰ first_report",
        "reported --> reporting : open_report (mission_platform) ⏰ next_report",
    ):
        assert edge in graph, edge


# ----------------------------------------------------------------------------- the simulation


def test_cities_reach_the_mission_label_and_report_yearly(
    simulated: tuple[dict[str, Any], Path],
) -> None:
    result, _ = simulated
    assert result["workflow"] == "eu_mission" and result["profile"] == "eu-mission-default"
    assert result["problems"] == []
    assert result["summary"]["refusals"] == 0
    moves = Counter(
        m["trigger"] for e in result["timeline"] if (m := MOVE.match(e["text"])) is not None
    )
    # Most of the fifteen cities express interest and are selected, as they were.
    assert result["summary"]["cases"] == 15
    assert moves["express_interest"] >= 10 and moves["close_call"] >= 1
    assert moves["select_city"] >= 5 and moves["confirm_participation"] >= 5
    # Every contract goes through at least one revision before the label.
    assert moves["request_revision"] >= moves["pass_review"] >= 5
    assert moves["resubmit_ccc"] >= moves["request_revision"] - 2
    assert moves["award_label"] >= 5
    # The yearly cycle: the first report opens by itself on the date recorded with the label.
    assert moves["open_report"] >= 5 and moves["accept_report"] >= 1
    states = result["summary"]["by_state"]
    assert states.get("reporting", 0) + states.get("reported", 0) >= 5


def test_reminders_and_the_peer_review_checklist_happened(
    simulated: tuple[dict[str, Any], Path],
) -> None:
    result, _ = simulated
    timers = Counter(
        e["text"].split(" ")[1] + " " + e["text"].split(" ")[2]
        for e in result["timeline"]
        if e["kind"] == "timer"
    )
    for fired in ("eoi_deadline reminder", "ccc_due reminder", "resubmission_due reminder"):
        assert timers[fired] >= 1, timers
    reviews = [
        e["text"]
        for e in result["timeline"]
        if e["kind"] == "checklist" and e["text"].startswith("ccc_review recorded")
    ]
    assert any("partly met" in text for text in reviews)  # a round that asks for revision
    assert any(text.endswith(": 9 met") for text in reviews)  # every item met: the review passes


def test_mail_is_english_from_the_workflows_sender(
    simulated: tuple[dict[str, Any], Path], mails: list[EmailMessage]
) -> None:
    result, _ = simulated
    assert len(mails) == result["summary"]["mail"]["sent"] > 250
    assert {str(m["From"]) for m in mails} == {SENDER}
    assert {m["Content-Language"] for m in mails} == {"en"}
    texts = [_text(m).replace("\r\n", "\n") for m in mails]
    for text in texts:
        assert "DK2020" not in text and "CONCITO" not in text
        assert "Kære" not in text and "Med venlig hilsen" not in text
    assert sum("Kind regards\nEU Mission Platform helpdesk" in t for t in texts) > 100
    assert all("helpdesk@mission-platform.example.eu" in t for t in texts if "Dear Mayor" in t)
    subjects = [str(m["Subject"]) for m in mails]
    assert any(s.endswith("is awarded the EU Mission Label") for s in subjects)
    assert any(s.startswith("Peer review of ") and s.endswith("please revise it") for s in subjects)
    # The calendar entries are organised by the same sender, in Brussels time.
    calendars = [
        part.get_content()
        for m in mails
        for part in m.iter_attachments()
        if part.get_content_type() == "text/calendar"
    ]
    assert calendars
    for ics in calendars:
        unfolded = ics.replace("\r\n ", "").replace("\n ", "")
        assert 'ORGANIZER;CN="EU Mission Platform":mailto:cities@mission-platform.example.eu' in (
            unfolded
        )
        assert "TZID:Europe/Brussels" in ics


# ----------------------------------------------------------------------------- working days


def _closures() -> set[dt.date]:
    """The office's own closed days, as the workflow file lists them."""
    calendar = YAML(typ="safe").load(WORKFLOW.read_text(encoding="utf-8"))["calendar"]
    assert calendar["country"] == "BE"
    days: set[dt.date] = set()
    for closure in calendar.get("closures", []):
        first, last = closure.get("from", closure.get("on")), closure.get("to", closure.get("on"))
        days.update(first + dt.timedelta(n) for n in range((last - first).days + 1))
    return days


def _places() -> dict[str, tuple[str, str | None]]:
    """Each city's country and subdivision, as the cities' file gives them."""
    with CITIES.open(encoding="utf-8", newline="") as rows:
        return {
            row["name"]: (row["country"], row["subdivision"] or None)
            for row in csv.DictReader(rows)
        }


def _local(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=BRUSSELS)


def _visits(timeline: list[dict[str, Any]], state: str) -> list[tuple[dt.datetime, list[Any]]]:
    """Each stay of a case in ``state``: (when it entered, the case's timer events there)."""
    visits: list[tuple[dt.datetime, list[Any]]] = []
    current: dict[int, list[Any]] = {}
    for entry in sorted(timeline, key=_at):
        move = MOVE.match(entry["text"]) if entry["kind"] == "transition" else None
        case = entry["case_id"]
        if move is not None and move["source"] != move["target"]:
            current.pop(case, None)
            if move["target"] == state:
                current[case] = []
                visits.append((_at(entry), current[case]))
        elif entry["kind"] == "timer" and case in current:
            current[case].append(entry)
    return visits


def test_the_platforms_deadlines_are_counted_on_belgian_working_days(
    simulated: tuple[dict[str, Any], Path],
) -> None:
    """The peer review (the panel's deadline: the programme's calendar) is due thirty
    working days after the contract arrives, at 16:00, its reminder five working days
    before and its escalation five after. Each expected instant is computed here from
    Belgian public holidays and the Mission Platform's closures; a Danish calendar would
    differ."""
    result, _ = simulated
    belgium = WorkingDays("BE", closed=_closures())
    denmark = WorkingDays("DK")
    checked = differs = 0
    for entered, timers in _visits(result["timeline"], "peer_review"):
        arrived = entered.astimezone(BRUSSELS).date()
        due = belgium.add(arrived, 30)
        expected = {
            "reminder": _local(belgium.add(due, -5), 16),
            "deadline": _local(due, 16),
            "escalation": _local(belgium.add(due, 5), 16),
        }
        differs += denmark.add(arrived, 30) != due
        for timer in timers:
            name, kind = timer["text"].split(" ")[1:3]
            if name == "review_due":
                assert _at(timer) == expected[kind], (timer, expected[kind])
                assert belgium.open(_at(timer).astimezone(BRUSSELS).date())
                checked += 1
    assert checked >= 3
    assert differs >= 1  # the Belgian calendar made a difference somewhere


def test_the_citys_own_deadlines_are_counted_on_its_working_days(
    simulated: tuple[dict[str, Any], Path],
) -> None:
    """The timers marked `calendar: organisation` count the city's working days: the
    public holidays of its country (and region), without the Mission Platform's closures.
    The mayor confirms within twenty working days of the selection (reminder five before,
    escalation five after); the revised contract is due six weeks after the request and a
    progress report two months after its cycle opens, each moved off the city's closed
    days. Kraków's confirmation falls on Ascension Day 2022, a Belgian holiday but a
    Polish working day."""
    result, _ = simulated
    places = _places()
    belgium = WorkingDays("BE", closed=_closures())
    cities = {name: WorkingDays(c, s) for name, (c, s) in places.items()}
    checked: Counter[str] = Counter()
    differs = 0
    for entered, timers in _visits(result["timeline"], "selected"):
        for timer in timers:
            name, kind = timer["text"].split(" ")[1:3]
            city = cities[timer["organisation"]]
            due = city.add(entered.astimezone(BRUSSELS).date(), 20)
            expected = {
                "reminder": _local(city.add(due, -5), 16),
                "deadline": _local(due, 16),
                "escalation": _local(city.add(due, 5), 16),
            }
            if name == "confirmation_due":
                assert _at(timer) == expected[kind], (timer, expected[kind])
                checked[name] += 1
                differs += kind == "deadline" and not belgium.open(due)
    for state, name, span in (
        ("revising", "resubmission_due", relativedelta(weeks=6)),
        ("reporting", "report_due", relativedelta(months=2)),
    ):
        for entered, timers in _visits(result["timeline"], state):
            for timer in timers:
                fired, kind, *index = timer["text"].split(" ")[1:4]
                city = cities[timer["organisation"]]
                due = city.roll(entered.astimezone(BRUSSELS).date() + span)
                instants = {
                    ("deadline", ()): _local(due, 16),
                    # Each first reminder is P14D before, in calendar days.
                    ("reminder", ("1",)): _local(due - dt.timedelta(14), 16),
                }
                instant = instants.get((kind, tuple(index)))
                if fired == name and instant is not None:
                    assert _at(timer) == instant, (timer, instant)
                    checked[name] += 1
    assert checked["confirmation_due"] >= 3 and checked["resubmission_due"] >= 5, checked
    assert checked["report_due"] >= 1, checked
    assert differs >= 1  # a city worked on a day the Mission Platform was closed


def test_a_report_due_on_a_sunday_moves_to_the_next_working_day(
    mails: list[EmailMessage],
) -> None:
    """The spring window's first progress reports open on Tuesday 2 April 2024 (the day after
    Easter Monday): two months later is Sunday 2 June, so the report is due Monday 3 June,
    a working day in every Mission city's country."""
    opened = dt.date(2024, 4, 2)
    assert not WorkingDays("BE", closed=_closures()).open(opened - dt.timedelta(1))  # Easter Monday
    for country, subdivision in _places().values():
        due = WorkingDays(country, subdivision).roll(opened + relativedelta(months=2))
        assert due == dt.date(2024, 6, 3), country
    subjects = {str(m["Subject"]) for m in mails}
    assert any(s.endswith("progress report is open, due 3 June 2024") for s in subjects), subjects


# ----------------------------------------------------------------------------- the report


def test_the_report_reads_a_simulated_programme(tmp_path: Path) -> None:
    """`simulate` keeps no database; the report is run on one simulated the way `dk2020flow
    demo` makes its own (run_simulation with a database), with the installed command."""
    from dk2020flow.simulate import run_simulation

    url = f"sqlite:///{tmp_path / 'eu_mission.db'}"
    simulated = run_simulation(
        WORKFLOW,
        start=dt.date(2021, 11, 1),
        end=dt.date(2023, 12, 31),
        behaviour=PROFILE,
        db_url=url,
    )
    assert simulated.problems == []
    cli = InstalledCli(tmp_path, db=url)
    report = json.loads(
        cli("report", "--workflow", "eu_mission", "--at", "2023-12-31", "--format", "json").stdout
    )
    assert report["workflow"] == "eu_mission" and report["timezone"] == "Europe/Brussels"
    assert report["cases"] == 15
    assert report["checklist_title"] == "Peer review of the Climate City Contract"
    items = {row["item"]: row for row in report["requirements"]}
    assert list(items) == ["C1", "C2", "A1", "A2", "A3", "A4", "I1", "I2", "I3"]
    assert report["screened_cases"] >= 5
    assert sum(row["needed_revision"] for row in items.values()) >= report["screened_cases"]
    assert set(report["signups"]) == {"spring_2023", "autumn_2023"}
    assert report["mail"]["sent"] == simulated.summary.mail["sent"]  # type: ignore[union-attr]
    table = cli("report", "--workflow", "eu_mission", "--at", "2023-12-31").stdout
    assert "Peer review of the Climate City Contract: status per requirement" in table
    assert "Mission Label awarded" in table
