"""The report's numbers against a small programme moved by hand through the Service."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.report import Report, render_html, to_csv, to_json
from dk2020flow.service import Service
from dk2020flow.service.filetypes import sample
from dk2020flow.store.db import upgrade
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
TZ = ZoneInfo("Europe/Copenhagen")
ALL_MET = dict.fromkeys(
    [
        "P1.1",
        "P1.2",
        "P1.3",
        "P1.4",
        "P1.5",
        "P2.1",
        "P2.2",
        "P2.3",
        "P2.4",
        "P2.5",
        "P3.1",
        "P3.2",
        "P3.3",
        "P3.4",
        "P3.5",
        "P3.6",
    ],
    ("met", ""),
)


def at(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=TZ)


def joins(cohort: str, day: str) -> dict[str, object]:
    return {
        "cohort": cohort,
        "decision_date": day,
        "contact_person_name": "Klimakoordinator",
        "contact_person_email": "klima@example.dk",
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    """Six organisations, moved by hand from June to September 2020."""
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'report.db'}"
    upgrade(url)
    store = SqlStore(url)
    clock = ManualClock(at("2020-06-01"))
    service = Service(store, clock=clock)
    service.load_workflow(ROOT / "workflows" / "dk2020.yaml")
    kl = {"actor": "KL", "role": "follow_up"}
    service.open_case(
        "dk2020",
        "Aarhus",
        state="drafting",
        cohort="pilot",
        reason="pilot since 2019",
        data={"contact_person_name": "K", "contact_person_email": "k@aarhus.example.dk"},
        **kl,
    )
    for name in ("Odense", "København", "Vejle", "Aalborg", "Frederiksberg"):
        service.open_case("dk2020", name, **kl)
    council = {"actor": "council", "role": "council", "workflow": "dk2020"}
    service.fire(
        "Frederiksberg",
        "withdraw",
        data={"withdraw_reason": "no staff"},
        now=at("2020-07-01"),
        **council,
    )
    service.fire(
        "Odense",
        "decide_participate",
        data=joins("round1", "2020-08-20"),
        now=at("2020-08-20"),
        **council,
    )
    service.fire(
        "Vejle",
        "decide_participate",
        data=joins("round2", "2020-08-20"),
        now=at("2020-08-20"),
        **council,
    )
    service.fire(
        "København",
        "decide_decline",
        data={"decision_date": "2020-08-21"},
        now=at("2020-08-21"),
        **council,
    )
    contact = {"actor": "contact", "role": "contact_person", "workflow": "dk2020"}
    for ref, document, day in (
        ("Aarhus", "draft_plan", "2020-09-01"),
        ("Odense", "application", "2020-09-10"),
    ):
        service.documents.attach(
            ref,
            document,
            io.BytesIO(sample("pdf")),
            filename=f"{document}.pdf",
            now=at(day),
            **contact,
        )
    service.fire(
        "Aarhus",
        "submit_plan",
        data={"plan_url": "https://x.example.dk/p.pdf"},
        now=at("2020-09-01"),
        **contact,
    )
    service.fire(
        "Odense",
        "submit_application",
        data={"commitment_signed": True, "staff_hours_per_week": 20},
        now=at("2020-09-10"),
        **contact,
    )
    secretariat = {"actor": "CONCITO", "role": "secretariat", "workflow": "dk2020"}
    service.fire("Odense", "accept_application", now=at("2020-09-20"), **secretariat)
    screening = {**ALL_MET, "P3.5": ("not_met", "no CO2e"), "P2.5": ("partly_met", "no scenarios")}
    service.check("Aarhus", "capf", screening, now=at("2020-09-15"), **secretariat)
    service.fire("Aarhus", "request_revision", now=at("2020-09-16"), **secretariat)
    for day in ("2020-08-18", "2020-08-28", "2020-09-01", "2020-09-15", "2020-09-30"):
        while service.fire_due(at(day, 12)).total:
            pass
    yield store
    store.close()


@pytest.fixture(scope="module")
def report(store: SqlStore) -> Report:
    return Service(store, clock=ManualClock(at("2020-09-30", 12))).report()


def test_sign_ups_and_decisions_per_round_and_region(report: Report) -> None:
    assert report.workflow == "dk2020"
    assert report.cases == 6
    assert report.signups == {"pilot": 1, "round1": 1, "round2": 1}
    regions = {r.region: r for r in report.regions}
    assert set(regions) == {"Hovedstaden", "Midtjylland", "Nordjylland", "Syddanmark"}
    assert regions["Syddanmark"].cases == 2
    assert regions["Syddanmark"].by_round == {"pilot": 0, "round1": 1, "round2": 1}
    assert report.region_states == [
        "invited", "declined", "not_participating", "approved", "withdrawn"
    ]  # fmt: skip
    assert regions["Hovedstaden"].by_state == {
        "invited": 0, "declined": 1, "not_participating": 0, "approved": 0, "withdrawn": 1
    }  # fmt: skip
    assert regions["Nordjylland"].by_state["invited"] == 1  # still deciding
    assert regions["Midtjylland"].by_round["pilot"] == 1
    assert report.completed_states == ["approved"]


def test_cases_per_state(report: Report) -> None:
    assert report.by_state == {
        "invited": 1,
        "declined": 1,
        "decided": 1,
        "awaiting_start": 1,
        "revising": 1,
        "withdrawn": 1,
    }
    cells = {(c.state, c.cohort, c.region): c.cases for c in report.states}
    assert cells[("revising", "pilot", "Midtjylland")] == 1
    assert cells[("awaiting_start", "round1", "Syddanmark")] == 1
    assert sum(cells.values()) == 6


def test_overdue_cases_with_deadline_and_owner(report: Report) -> None:
    assert [(o.organisation, o.deadline) for o in report.overdue] == [("Aalborg", "reply_deadline")]
    late = report.overdue[0]
    assert late.due_at == at("2020-08-31", 23).replace(minute=59)
    assert late.days_overdue == 29
    assert late.owners == ("Borgmester",)


def test_capf_status_per_requirement(report: Report) -> None:
    assert report.screened_cases == 1
    by_item = {r.item: r for r in report.requirements}
    assert len(by_item) == 16
    assert by_item["P3.5"].by_status["not_met"] == 1
    assert by_item["P2.5"].by_status["partly_met"] == 1
    assert by_item["P1.1"].by_status == {
        "met": 1,
        "partly_met": 0,
        "not_met": 0,
        "not_applicable": 0,
    }
    assert {r.item for r in report.requirements if r.holding_back} == {"P3.5", "P2.5"}
    assert {r.item for r in report.requirements if r.needed_revision} == {"P3.5", "P2.5"}


def test_mail_counts_cover_the_outbox(report: Report, store: SqlStore) -> None:
    with store.read() as tx:
        rows = tx.outbox(limit=10_000)
    assert sum(report.mail.values()) == len(rows) > 0


def test_the_report_as_of_an_earlier_day_replays_the_logs(store: SqlStore) -> None:
    early = Service(store, clock=ManualClock(at("2020-08-01"))).report()
    assert early.signups == {"pilot": 1, "round1": 0, "round2": 0}
    assert early.by_state == {"invited": 4, "drafting": 1, "withdrawn": 1}
    assert early.overdue == []
    assert early.screened_cases == 0


def test_cases_per_state_by_month(report: Report) -> None:
    over = report.over_time
    assert over.months[0] == dt.date(2020, 6, 1)
    assert over.months[-1] == dt.date(2020, 9, 30)
    september = over.months.index(dt.date(2020, 9, 1))
    counts = dict(zip(over.states, over.counts[september], strict=True))
    assert counts["drafting"] == 1  # Aarhus, before its plan went in
    assert counts["invited"] == 1  # Aalborg
    assert sum(over.counts[-1]) == 6


def test_csv_and_json_carry_the_same_numbers(report: Report) -> None:
    csv_text = to_csv(report)
    assert csv_text.startswith("section,group,category,value\n")
    assert "signups,round1,,1" in csv_text
    assert '"signups": {' in to_json(report)
    assert "regions,Hovedstaden,declined,1" in csv_text
    assert "regions,Hovedstaden,withdrawn,1" in csv_text


def test_the_html_report_is_one_self_contained_file(report: Report) -> None:
    html = render_html(report)
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") >= 3
    assert "DK2020 – klimaplaner i hele Danmark" in html
    for outside in ("<script src", "<link ", 'src="http', "url(http"):
        assert outside not in html


@pytest.mark.browser
def test_the_html_report_renders_in_headless_chromium(
    report: Report, tmp_path: Path, chromium: str
) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file()
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] >= 1000
    assert pixels.shape[1] >= 1200
    assert float(pixels[..., :3].std()) > 0.05, "the screenshot is blank"
