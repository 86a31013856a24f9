"""One definition of late (#15.5): `case list --overdue` and `report` name the same cases.

Late: a deadline passed without the transition it waits for. The case is still in
the state whose deadline timer is due, whether or not the deadline's own firing or
its escalation went out already.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from dk2020flow.clock import FixedClock, parse_instant
from dk2020flow.service import Service
from dk2020flow.store.port import Contact
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[2]
DK2020 = ROOT / "workflows" / "dk2020.yaml"
TZ = "Europe/Copenhagen"
CITIES = ("Aarhus", "Odense", "Aalborg")


def _cli(db_url: str, cwd: Path, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DK2020FLOW_")}
    env.update(
        DK2020FLOW_DATABASE_URL=db_url,
        DK2020FLOW_MAIL_TRANSPORT="folder",
        DK2020FLOW_MAIL_FOLDER=str(cwd / "mail"),
    )
    done = subprocess.run(
        ["dk2020flow", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


def _programme(db_url: str) -> None:
    """Three organisations invited in June 2020; Odense decides in time."""
    store = SqlStore(db_url)
    try:
        service = Service(store, clock=FixedClock(parse_instant("2020-06-15T10:00+02:00", TZ)))
        with store.transaction() as tx:
            codes = {city: tx.find_organisation(city).code for city in CITIES}  # type: ignore[union-attr]
            tx.replace_participants(
                [],
                [
                    Contact(
                        organisation_code=codes[city],
                        role=role,
                        name=f"{role} {city}",
                        email=f"{role}@{city.lower()}.example.dk",
                    )
                    for city in CITIES
                    for role in ("mayor", "contact_person")
                ],
            )
        service.load_workflow(DK2020)
        for city in CITIES:
            service.open_case("dk2020", city, actor="test", role="follow_up")
        service.fire(
            "Odense",
            "decide_participate",
            actor="byrådet",
            role="council",
            data={
                "cohort": "round1",
                "decision_date": "2020-08-20",
                "contact_person_name": "Ole Hansen",
                "contact_person_email": "ole@odense.example.dk",
            },
            now=parse_instant("2020-08-20T15:00+02:00", TZ),
        )
        # The reply deadline (31 August) passes; its firing and the escalation go out.
        result = service.fire_due(parse_instant("2020-09-01T10:00+02:00", TZ))
        assert result.fired > 0
    finally:
        store.close()


def test_case_list_overdue_and_the_report_agree(sqlite_url: str, tmp_path: Path) -> None:
    _programme(sqlite_url)
    store = SqlStore(sqlite_url)
    try:
        with store.read() as tx:
            escalations = [m for m in tx.outbox(limit=1000) if m.template == "escalation"]
    finally:
        store.close()
    assert len(escalations) == 2  # Aarhus and Aalborg: the escalation has fired

    listed = _cli(
        sqlite_url,
        tmp_path,
        "case",
        "list",
        "--overdue",
        "--now",
        "2020-09-01T23:59:59+02:00",
        "--json",
    )
    report = _cli(sqlite_url, tmp_path, "report", "--at", "2020-09-01", "--format", "json")
    late_in_list = sorted(c["organisation"] for c in listed)
    late_in_report = sorted(r["organisation"] for r in report["overdue"])
    assert late_in_list == late_in_report == ["Aalborg", "Aarhus"]
