"""Reading cases: the list's filters (as the console's table), keyset pages walked to the
end, one case with its ETag, its history; workflows, organisations, report, health."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dk2020flow.report import to_json
from dk2020flow.service.core import Service
from dk2020flow.store.port import CaseFilter

from .conftest import NOW, ROUND1, ROUND2_SYDDANMARK, case_id

SORTS = ("organisation", "region", "round", "state", "since", "deadline")


def _walk(client: TestClient, query: str, limit: int) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor: str | None = None
    for _ in range(200):
        url = f"/api/v1/cases?{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the pages never ended")


@pytest.mark.parametrize("sort", [*SORTS, *(f"-{s}" for s in SORTS)])
def test_walking_the_pages_meets_every_case_exactly_once_in_order(
    api_as: Callable[..., TestClient], service: Service, sort: str
) -> None:
    client = api_as("read_only")
    items = _walk(client, f"sort={sort}", limit=7)
    ids = [item["id"] for item in items]
    every = {c.id for c in service.cases(CaseFilter())}
    assert len(ids) == len(set(ids)) == len(every) == 98
    assert set(ids) == every
    # Each page continues the order of the one before: one page of everything agrees.
    whole = client.get(f"/api/v1/cases?sort={sort}&limit=200").json()
    assert [i["id"] for i in whole["items"]] == ids
    assert whole["next_cursor"] is None


def test_the_filters_are_the_consoles(api_as: Callable[..., TestClient], service: Service) -> None:
    client = api_as("read_only")
    late = _walk(client, "round=round2&region=Syddanmark&late=true&sort=-since", limit=2)
    # Round 2's application deadline passed before the tests' clock: all three are late.
    assert sorted(i["organisation"]["name"] for i in late) == sorted(ROUND2_SYDDANMARK)  # type: ignore[index]
    assert all(i["late"] and i["deadline_at"] for i in late)
    decided = _walk(client, "state=decided&round=round1", limit=50)
    assert sorted(i["organisation"]["name"] for i in decided) == sorted(ROUND1)  # type: ignore[index]
    found = client.get("/api/v1/cases?q=aar").json()["items"]
    assert {i["organisation"]["name"] for i in found} >= {"Aarhus"}
    console = service.console
    options, query = console.parse([("state", "invited"), ("late", "0"), ("size", "100")])
    table = console.table(options, query)
    api_ids = [i["id"] for i in _walk(client, "state=invited&late=false", limit=30)]
    assert sorted(api_ids) == sorted(r.case.id for r in table.rows)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("state=nowhere", "state"),
        ("round=round9", "round"),
        ("region=Atlantis", "region"),
        ("limit=0", "limit"),
        ("sort=colour", "sort"),
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
    ],
)
def test_a_bad_parameter_is_a_problem_naming_it(
    api_as: Callable[..., TestClient], query: str, field: str
) -> None:
    answer = api_as("read_only").get(f"/api/v1/cases?{query}")
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_a_cursor_only_serves_the_query_it_was_made_for(
    api_as: Callable[..., TestClient],
) -> None:
    client = api_as("read_only")
    cursor = client.get("/api/v1/cases?limit=5&state=invited").json()["next_cursor"]
    assert cursor
    other = client.get(f"/api/v1/cases?limit=5&state=decided&cursor={cursor}")
    assert other.status_code == 422
    assert "another filter or sort" in other.json()["detail"]


def test_one_case_with_its_etag_fields_deadlines_and_actions(
    api_as: Callable[..., TestClient], service: Service
) -> None:
    aarhus = case_id(service, "Aarhus")
    answer = api_as("secretariat").get(f"/api/v1/cases/{aarhus}")
    assert answer.status_code == 200
    body = answer.json()
    case = service.case(f"#{aarhus}")
    assert answer.headers["etag"] == f'"{case.version}"'
    assert body["state"] == "decided" and body["version"] == case.version
    assert body["data"]["cohort"] == "round1"
    assert {d["timer"] for d in body["deadlines"]} == {"application_deadline"}
    assert [c["name"] for c in body["checklists"]] == ["capf"]
    assert body["documents"] == []
    # The secretariat may not submit the application (the contact person does).
    assert "submit_application" not in {a["trigger"] for a in body["actions"]}
    missing = api_as("secretariat").get("/api/v1/cases/99999")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/not-found")


def test_a_cases_history_oldest_first(api_as: Callable[..., TestClient], service: Service) -> None:
    aarhus = case_id(service, "Aarhus")
    body = api_as("read_only").get(f"/api/v1/cases/{aarhus}/history").json()
    assert [e["kind"] for e in body["items"]] == ["opened", "transition"]
    assert body["items"][1]["trigger"] == "decide_participate"
    assert body["items"][1]["actor"] == "kl@example.dk"


def test_workflows_versions_diagram_and_schema(api_as: Callable[..., TestClient]) -> None:
    client = api_as("read_only")
    listed = client.get("/api/v1/workflows").json()["items"]
    assert [w["name"] for w in listed] == ["dk2020"]
    version_id = listed[0]["latest"]["id"]
    version = client.get(f"/api/v1/workflows/dk2020/versions/{version_id}?lang=da").json()
    assert version["initial_state"] == "invited"
    assert "decide_participate" in {t["trigger"] for t in version["transitions"]}
    assert version["diagram"].startswith("/api/v1/")
    diagram = client.get(version["diagram"])
    assert diagram.status_code == 200
    assert diagram.headers["content-type"].startswith("image/svg+xml")
    assert diagram.text.lstrip().startswith("<svg")
    schema = client.get(version["json_schema"])
    assert schema.json()["$id"].endswith("workflow.schema.json")
    assert client.get("/api/v1/workflows/nothing").status_code == 404


def test_organisations_and_scheduler_health(api_as: Callable[..., TestClient]) -> None:
    client = api_as("read_only")
    everyone = client.get("/api/v1/organisations").json()["items"]
    assert len(everyone) == 98
    south = client.get("/api/v1/organisations?region=Syddanmark").json()["items"]
    assert {m["region"] for m in south} == {"Syddanmark"}
    health = client.get("/api/v1/scheduler/health").json()
    # Timers are overdue by the tests' clock and no daemon runs: critical, as the CLI says.
    assert health["health"] == "CRITICAL" and health["code"] == 2
    assert health["reasons"]


def test_the_report_is_the_one_of_the_command_line(
    api_as: Callable[..., TestClient], service: Service, programme_url: str, tmp_path: Path
) -> None:
    body = api_as("read_only").get("/api/v1/report").json()
    assert body == json.loads(to_json(service.report(at=NOW)))
    # And the installed command prints the same numbers, as of the end of that day.
    done = subprocess.run(
        ["dk2020flow", "report", "--format", "json", "--db", programme_url, "--at", "2021-12-01"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    printed = json.loads(done.stdout)
    for key in ("cases", "by_state", "signups", "regions", "states", "requirements", "mail"):
        assert body[key] == printed[key], key
