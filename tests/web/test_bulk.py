"""Bulk runs over HTTP: the confirmation shows the count and changes nothing; the run
fires each case through the service (audit events as ``case fire``) and records
refusals; large runs go on in the background; a stopped run can be resumed by its
actor; read_only (and admin alone) are refused."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from dk2020flow.service.console import BulkPlan
from dk2020flow.service.core import Service
from dk2020flow.store.port import BulkItemStatus, CaseFilter

from .conftest import NOW, post_form, web_service

Signed = Callable[..., TestClient]

DECLINERS = ("Ærø", "Tønder", "Fanø", "Læsø")
FOLLOW_UP = "kl@staff.example.dk"


def decline(service: Service, names: tuple[str, ...]) -> dict[str, int]:
    """Move the organisations' cases to ``declined`` (through the service); their ids."""
    ids: dict[str, int] = {}
    for name in names:
        case = service.fire(
            name,
            "decide_decline",
            actor="setup",
            role="follow_up",
            data={"decision_date": "2021-11-20"},
            workflow="dk2020",
            now=NOW - dt.timedelta(days=1),
        )
        ids[name] = case.id or 0
    return ids


def case_ids(service: Service, *names: str) -> list[int]:
    return [service.case(name, "dk2020").id or 0 for name in names]


def bulk_runs(service: Service) -> int:
    from sqlalchemy import func, select

    from dk2020flow.store import tables as t

    store = service.store
    with store.read() as tx:
        conn = tx._conn  # type: ignore[attr-defined]
        return int(conn.execute(select(func.count()).select_from(t.bulk_runs)).scalar_one())


def states(service: Service) -> dict[str, str]:
    return {c.organisation_name: c.state for c in service.cases(CaseFilter(workflow="dk2020"))}


def test_confirmation_shows_the_count_and_changes_nothing(client_as: Signed) -> None:
    client = client_as("follow_up", email=FOLLOW_UP)
    service = web_service(client)
    ids = decline(service, DECLINERS)
    before = states(service)
    page = post_form(
        client,
        "/bulk",
        {
            "trigger": "close_without_participation",
            "scope": "selected",
            "case": [str(i) for i in ids.values()],
            "query": "state=declined",
        },
    )
    assert page.status_code == 200
    assert "på 4 sager. Intet er sket endnu." in page.text
    assert "Afslut uden deltagelse" in page.text or "close_without_participation" in page.text
    assert all(name in page.text for name in DECLINERS)
    assert 'action="/bulk/run"' in page.text
    assert states(service) == before
    assert bulk_runs(service) == 0

    every = post_form(
        client,
        "/bulk",
        {"trigger": "close_without_participation", "scope": "all", "query": "state=declined"},
    )
    assert "på 4 sager" in every.text
    assert '<input type="hidden" name="scope" value="all">' in every.text
    assert states(service) == before and bulk_runs(service) == 0


def test_the_run_fires_each_case_and_records_refusals(client_as: Signed) -> None:
    client = client_as("follow_up", email=FOLLOW_UP)
    service = web_service(client)
    declined = decline(service, DECLINERS)
    odense = case_ids(service, "Odense")[0]  # decided, not declined: refused
    chosen = [*declined.values(), odense]
    done = post_form(
        client,
        "/bulk/run",
        {
            "trigger": "close_without_participation",
            "scope": "selected",
            "case": [str(i) for i in chosen],
            "comment": "Samlet afslutning",
        },
    )
    assert done.status_code == 303
    run_id = int(done.headers["location"].rsplit("/", 1)[1])
    run = service.console.bulk_run(run_id)
    assert run.actor == FOLLOW_UP and run.role == "follow_up" and run.finished_at is not None
    assert run.counts[BulkItemStatus.DONE] == 4 and run.counts[BulkItemStatus.REFUSED] == 1
    now = states(service)
    assert all(now[name] == "not_participating" for name in DECLINERS)
    assert now["Odense"] == "decided"
    # the same audit event as `case fire`: the transition by the actor in their role
    last = service.history(f"#{declined['Ærø']}")[1][-1]
    assert last.record.trigger == "close_without_participation"
    assert last.record.actor == FOLLOW_UP and last.record.role == "follow_up"
    assert last.record.comment == "Samlet afslutning"

    page = client.get(f"/bulk/{run_id}")
    assert page.status_code == 200
    assert "4 gennemført, 1 afvist, 0 fejlet, 0 venter." in page.text
    odense_row = re.search(r'<tr data-status="refused">.*?</tr>', page.text, re.S)
    assert odense_row and "Odense" in odense_row.group(0)
    assert "cannot fire in state" in odense_row.group(0)
    assert "hx-trigger" not in page.text  # finished: no polling
    part = client.get(f"/bulk/{run_id}", headers={"HX-Request": "true"})
    assert part.status_code == 286 and "<html" not in part.text  # htmx stops polling


def test_a_large_run_goes_on_in_the_background(client_as: Signed) -> None:
    client = client_as("follow_up", email=FOLLOW_UP)
    service = web_service(client)
    names = (*DECLINERS, "Odder", "Samsø", "Skive", "Lemvig", "Struer", "Thisted", "Morsø")
    decline(service, names)
    started = post_form(
        client,
        "/bulk/run",
        {"trigger": "close_without_participation", "scope": "all", "query": "state=declined"},
    )
    assert started.status_code == 303
    run_id = int(started.headers["location"].rsplit("/", 1)[1])
    deadline = time.monotonic() + 60
    while service.console.bulk_run(run_id).finished_at is None:
        assert time.monotonic() < deadline, "the background run did not finish"
        time.sleep(0.05)
    run = service.console.bulk_run(run_id)
    assert run.total == len(names) and run.counts[BulkItemStatus.DONE] == len(names)
    assert run.query == "state=declined"
    assert all(states(service)[name] == "not_participating" for name in names)
    deadline = time.monotonic() + 10
    while service.console.is_running(run_id):  # the thread's last read
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_stopped_run_is_resumed_by_its_actor(client_as: Signed) -> None:
    client = client_as("follow_up", email=FOLLOW_UP)
    service = web_service(client)
    ids = decline(service, DECLINERS[:2])
    console = service.console
    plan = console.plan_bulk(
        roles=["follow_up"], trigger="close_without_participation", case_ids=list(ids.values())
    )
    assert isinstance(plan, BulkPlan)
    run_id = console.start_bulk(plan, actor=FOLLOW_UP)  # as if the process stopped here
    page = client.get(f"/bulk/{run_id}")
    assert "0 gennemført, 0 afvist, 0 fejlet, 2 venter." in page.text
    assert "Kørslen stoppede" in page.text and f'action="/bulk/{run_id}/resume"' in page.text

    other = client_as("follow_up", email="someone@staff.example.dk")
    assert f'action="/bulk/{run_id}/resume"' not in other.get(f"/bulk/{run_id}").text
    assert post_form(other, f"/bulk/{run_id}/resume").status_code == 409
    assert console.bulk_run(run_id).counts[BulkItemStatus.PENDING] == 2

    client = client_as("follow_up", email=FOLLOW_UP)
    assert post_form(client, f"/bulk/{run_id}/resume").status_code == 303
    deadline = time.monotonic() + 30
    while console.bulk_run(run_id).finished_at is None or console.is_running(run_id):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert console.bulk_run(run_id).counts[BulkItemStatus.DONE] == 2


def test_triggers_the_user_may_not_fire_or_that_need_data_are_refused(client_as: Signed) -> None:
    client = client_as("secretariat")
    service = web_service(client)
    ids = decline(service, DECLINERS[:1])
    before = states(service)
    wrong_role = post_form(
        client,
        "/bulk",
        {"trigger": "close_without_participation", "case": [str(i) for i in ids.values()]},
    )
    assert wrong_role.status_code == 409
    assert "may not fire" in wrong_role.text and "close_without_participation" in wrong_role.text
    needs_data = post_form(
        client,
        "/bulk/run",
        {"trigger": "record_c40_approval", "scope": "all", "query": "state=approval"},
    )
    assert needs_data.status_code == 409
    assert "needs c40_approval_date" in needs_data.text
    nothing = post_form(client, "/bulk", {"trigger": "pass_screening", "scope": "selected"})
    assert nothing.status_code == 409 and "at least one case" in nothing.text
    bad_filter = post_form(
        client, "/bulk", {"trigger": "pass_screening", "scope": "all", "query": "state=x"}
    )
    assert bad_filter.status_code == 400
    assert states(service) == before and bulk_runs(service) == 0


def test_read_only_and_admin_alone_cannot_run(client_as: Signed) -> None:
    for roles in (("read_only",), ("admin",)):
        client = client_as(*roles)
        service = web_service(client)
        odense = case_ids(service, "Odense")
        for url in ("/bulk", "/bulk/run"):
            response = post_form(
                client, url, {"trigger": "withdraw", "case": [str(i) for i in odense]}
            )
            assert response.status_code == 403, (roles, url)
        assert bulk_runs(service) == 0
