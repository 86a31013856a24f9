"""Done when: Aarhus goes from its invitation to an approved plan through the API alone,
with a token per role, and its history is the one the same run through the command line
(`dk2020flow case fire …`) gives — the same events, triggers, states and roles; only the
actor differs (``token:<name>`` against the CLI's ``--actor``).

Both runs start from a fresh database where Aarhus's case was opened (the invitation:
``case open``, which the API does not do) and take each step at the same instant (the
API's clock, the CLI's ``--now``): the decision, the application with its document, the
secretariat's acceptance and the round's start, onboarding, the evidence, the plan with
its document, the CAPF screening item by item, the C40 approval and the council's
adoption with its minutes — after which the plan is approved by itself.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from dk2020flow.bundled import workflow_path
from dk2020flow.clock import ManualClock
from dk2020flow.definition.loader import load_workflow
from dk2020flow.service.core import open_service
from dk2020flow.settings import load_settings
from dk2020flow.store.db import upgrade
from dk2020flow.web.app import create_app
from dk2020flow.web.config import WebConfig

from .served import environment

OPENED = dt.datetime(2020, 8, 3, 9, 0, tzinfo=dt.UTC)
PDF = b"%PDF-1.4\n1 0 obj\n<</Type/Catalog>>\nendobj\ntrailer\n<</Root 1 0 R>>\n%%EOF\n"
CAPF = tuple(load_workflow(workflow_path("dk2020")).workflow.checklists["capf"].items)
ROLES = ("follow_up", "contact_person", "secretariat", "regional_advisor", "approver")

# (days after the invitation, role, what, name, data)
STEPS: list[tuple[int, str, str, str, dict[str, Any]]] = [
    (
        10,
        "follow_up",
        "fire",
        "decide_participate",
        {
            "cohort": "round1",
            "decision_date": "2020-08-12",
            "contact_person_name": "Anna Aarhus",
            "contact_person_email": "anna@aarhus.example.dk",
        },
    ),
    (40, "contact_person", "attach", "application", {}),
    (
        41,
        "contact_person",
        "fire",
        "submit_application",
        {"commitment_signed": True, "staff_hours_per_week": 20},
    ),
    (60, "secretariat", "fire", "accept_application", {}),
    (115, "secretariat", "fire", "start_round", {}),
    (130, "regional_advisor", "fire", "complete_onboarding", {"advisor_name": "Rita Region"}),
    (250, "contact_person", "fire", "complete_evidence", {"inventory_base_year": 2018}),
    (400, "contact_person", "attach", "draft_plan", {}),
    (401, "contact_person", "fire", "submit_plan", {"plan_url": "https://aarhus.dk/plan"}),
    (430, "secretariat", "check", "capf", dict.fromkeys(CAPF, "met")),
    (431, "secretariat", "fire", "pass_screening", {}),
    (460, "approver", "fire", "record_c40_approval", {"c40_approval_date": "2021-11-05"}),
    (470, "contact_person", "attach", "council_decision", {}),
    (
        471,
        "contact_person",
        "fire",
        "record_council_adoption",
        {"adoption_date": "2021-11-17"},
    ),
]


def _fresh(url: str) -> None:
    upgrade(url)
    with open_service(url, clock=ManualClock(OPENED), settings=load_settings()) as service:
        service.load_workflow(workflow_path("dk2020"), now=OPENED)
        service.open_case("dk2020", "Aarhus", actor="setup", role="secretariat", now=OPENED)


def _history(url: str) -> list[tuple[Any, ...]]:
    with open_service(url, clock=ManualClock(OPENED), settings=load_settings()) as service:
        case, events = service.history("Aarhus", workflow="dk2020")
        assert case.state == "approved", case.state
        return [
            (
                e.record.kind.value,
                e.record.trigger,
                e.record.from_state,
                e.record.to_state,
                e.record.role,
            )
            for e in events
        ]


def _through_the_api(url: str) -> list[str]:
    clock = ManualClock(OPENED)
    app = create_app(WebConfig(database_url=url, clock=clock, threads=2))
    actors: set[str] = set()
    with TestClient(app) as console:
        service = app.state.web.service
        clients = {}
        for role in ROLES:
            secret = service.tokens.create(
                f"aarhus-{role}", [role], created_by="test", every_case=True
            ).secret
            clients[role] = TestClient(app, headers={"Authorization": f"Bearer {secret}"})
        found = clients["follow_up"].get("/api/v1/cases?q=Aarhus").json()["items"]
        assert [c["organisation"]["name"] for c in found] == ["Aarhus"]
        case = found[0]["id"]
        etag = clients["follow_up"].get(f"/api/v1/cases/{case}").headers["etag"]
        for days, role, what, name, data in STEPS:
            clock.set(OPENED + dt.timedelta(days=days))
            api = clients[role]
            headers = {"If-Match": etag, "Idempotency-Key": f"journey-{days}"}
            if what == "attach":
                answer = api.post(
                    f"/api/v1/cases/{case}/documents/{name}",
                    params={"filename": f"{name}.pdf"},
                    content=PDF,
                )
                assert answer.status_code == 201, answer.text
                etag = api.get(f"/api/v1/cases/{case}").headers["etag"]
                continue
            if what == "check":
                url_ = f"/api/v1/cases/{case}/checklists/{name}"
                body: dict[str, Any] = {"items": {k: {"status": v} for k, v in data.items()}}
            else:
                url_ = f"/api/v1/cases/{case}/triggers/{name}"
                body = {"data": data}
            answer = api.post(url_, json=body, headers=headers)
            assert answer.status_code == 200, (name, answer.text)
            etag = answer.headers["etag"]
        final = clients["secretariat"].get(f"/api/v1/cases/{case}").json()
        assert final["state"] == "approved" and final["closed"]
        assert {d["slot"] for d in final["documents"]} == {
            "application",
            "draft_plan",
            "council_decision",
        }
        history = clients["approver"].get(f"/api/v1/cases/{case}/history").json()["items"]
        actors = {e["actor"] for e in history}
        assert console.get("/healthz").text == "ok"
    return sorted(actors)


def _cli(cwd: Path, url: str, *args: str) -> None:
    done = subprocess.run(
        ["dk2020flow", *args, "--db", url],
        cwd=cwd,
        env=environment({"DK2020FLOW_ACTOR": "cli@example.dk"}),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)


def _through_the_cli(url: str, cwd: Path) -> None:
    document = cwd / "document.pdf"
    document.write_bytes(PDF)
    for days, role, what, name, data in STEPS:
        now = (OPENED + dt.timedelta(days=days)).isoformat()
        common = ("--role", role, "--now", now)
        if what == "attach":
            _cli(cwd, url, "case", "attach", "Aarhus", name, str(document), *common)
        elif what == "check":
            items = [f"{k}={v}" for k, v in data.items()]
            _cli(cwd, url, "case", "check", "Aarhus", name, *items, *common)
        else:
            pairs = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in data.items()]
            options = [part for pair in pairs for part in ("--data", pair)]
            _cli(cwd, url, "case", "fire", "Aarhus", name, *options, *common)


def test_aarhus_from_invitation_to_approval_through_the_api_as_through_the_cli(
    tmp_path: Path,
) -> None:
    api_url = f"sqlite:///{tmp_path / 'api.db'}"
    cli_url = f"sqlite:///{tmp_path / 'cli.db'}"
    _fresh(api_url)
    _fresh(cli_url)
    actors = _through_the_api(api_url)
    _through_the_cli(cli_url, tmp_path)
    by_api, by_cli = _history(api_url), _history(cli_url)
    assert by_api == by_cli
    assert by_api[-1][:4] == ("transition", "approve", "approval", "approved")
    # The opening's actor, a token per role, and the engine's own automatic approval.
    tokens = {f"token:aarhus-{role}" for role in ROLES}
    assert actors == sorted({"setup", "dk2020flow", *tokens}), actors
