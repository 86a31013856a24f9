"""The Operations pages: outbox retry, scheduler health, workflow versions, migration."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dk2020_data import DK2020_STAFF_ROLES as STAFF_ROLES
from dk2020flow.bundled import workflow_path
from dk2020flow.service.core import Service
from dk2020flow.store.port import CaseFilter, OutboxStatus

from .conftest import NOW, post_form, web_service

PAGES = (
    "/operations",
    "/operations/outbox",
    "/operations/scheduler",
    "/operations/workflows",
    "/operations/migrate",
)


def _page_first(client: TestClient) -> None:
    """Open a page first, as a browser does before it posts a form (sets the CSRF cookie)."""
    assert client.get("/operations").status_code == 200


def _dead_message(service: Service) -> int:
    """A message the transport gave up on, as delivery marks it."""
    with service.store.transaction() as tx:
        message = tx.outbox(limit=1)[0]
        tx.mark_dead(message.id, "550 5.1.1 <x@example.dk>: no such user", NOW)
    found = service.outbox_message(message.id)
    assert found.status is OutboxStatus.DEAD
    return message.id


def _new_version(tmp_path: Path, version: str = "2021.9") -> Path:
    """The DK2020 workflow again with another version label (a new definition)."""
    bundled = workflow_path("dk2020")
    folder = tmp_path / "v2"
    (folder / "workflows").mkdir(parents=True)
    (folder / "notifications").mkdir()
    (folder / "notifications" / "dk2020").symlink_to(
        bundled.parents[1] / "notifications" / "dk2020"
    )
    (folder / "workflows" / "data").symlink_to(bundled.parent / "data")  # its data set
    text = bundled.read_text(encoding="utf-8").replace('version: "2020.1"', f'version: "{version}"')
    path = folder / "workflows" / "dk2020.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("role", STAFF_ROLES)
@pytest.mark.parametrize("url", PAGES)
def test_every_staff_role_sees_the_operations_pages(
    client_as: Callable[..., TestClient], role: str, url: str
) -> None:
    page = client_as(role).get(url)
    assert page.status_code == 200, page.text
    assert page.text.count("<h1") == 1


def test_anonymous_is_sent_to_sign_in(client: TestClient) -> None:
    for url in PAGES:
        assert client.get(url).status_code == 303


def test_the_outbox_lists_dead_mail_with_its_error(client_as: Callable[..., TestClient]) -> None:
    client = client_as("read_only")
    dead = _dead_message(web_service(client))
    html = client.get("/operations/outbox").text
    section = html.split('id="dead"')[1].split('id="parked"')[0]
    assert "550 5.1.1 &lt;x@example.dk&gt;: no such user" in section
    assert f'action="/operations/outbox/{dead}/retry"' not in section  # read_only: no button


def test_the_secretariat_retries_a_dead_message(client_as: Callable[..., TestClient]) -> None:
    client = client_as("secretariat")
    service = web_service(client)
    dead = _dead_message(service)
    assert f'action="/operations/outbox/{dead}/retry"' in client.get("/operations/outbox").text
    answer = post_form(client, f"/operations/outbox/{dead}/retry")
    assert answer.status_code == 303
    assert service.outbox_message(dead).status is OutboxStatus.PENDING
    page = client.get(answer.headers["location"])
    assert f"Besked {dead} er sat i kø igen" in page.text


def test_read_only_may_not_retry(client_as: Callable[..., TestClient]) -> None:
    client = client_as("read_only")
    service = web_service(client)
    dead = _dead_message(service)
    _page_first(client)
    answer = post_form(client, f"/operations/outbox/{dead}/retry")
    assert answer.status_code == 403
    assert service.outbox_message(dead).status is OutboxStatus.DEAD


def test_a_retry_without_the_csrf_token_is_refused(client_as: Callable[..., TestClient]) -> None:
    client = client_as("secretariat")
    service = web_service(client)
    dead = _dead_message(service)
    assert client.post(f"/operations/outbox/{dead}/retry").status_code == 403
    assert service.outbox_message(dead).status is OutboxStatus.DEAD


def test_retrying_a_message_that_is_not_dead_says_why(
    client_as: Callable[..., TestClient],
) -> None:
    client = client_as("admin")
    service = web_service(client)
    dead = _dead_message(service)
    _page_first(client)
    post_form(client, f"/operations/outbox/{dead}/retry")
    again = post_form(client, f"/operations/outbox/{dead}/retry")
    assert again.status_code == 409
    assert "only dead or parked messages can be retried" in again.text


def test_the_scheduler_page_shows_health_and_next_due(
    client_as: Callable[..., TestClient],
) -> None:
    html = client_as("follow_up").get("/operations/scheduler").text
    assert "Ingen processer har meldt sig." in html
    assert "Næste forfald" in html
    assert re.search(r"Tilstand: (OK|ADVARSEL|KRITISK)", html)


def test_the_workflow_versions_show_diagram_and_source(
    client_as: Callable[..., TestClient],
) -> None:
    client = client_as("secretariat")
    definition = web_service(client).definitions()[0]
    listing = client.get("/operations/workflows").text
    assert f'href="/operations/workflows/{definition.id}"' in listing
    assert definition.content_hash[:12] in listing
    page = client.get(f"/operations/workflows/{definition.id}").text
    assert "<svg" in page or "<pre>stateDiagram" in page or "flowchart" in page
    assert "workflow: dk2020" in page  # the source as text
    assert client.get("/operations/workflows/999").status_code == 404


def test_a_migration_dry_run_changes_nothing_and_apply_moves_the_cases(
    client_as: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = client_as("secretariat")
    service = web_service(client)
    _page_first(client)
    old = {c.id: c.definition_id for c in service.cases(CaseFilter(workflow="dk2020"))}
    new, created = service.load_workflow(_new_version(tmp_path), now=NOW)
    assert created

    dry = post_form(client, "/operations/migrate", {"workflow": "dk2020", "state_map": ""})
    assert dry.status_code == 200, dry.text
    assert "Prøvekørsel: intet er ændret. 98 sager vil blive flyttet." in dry.text
    assert "2020.1 → 2021.9" in dry.text
    assert len(re.findall(r"<tr>\s*<td><a href=\"/cases/\d+\">", dry.text)) == 98
    after_dry = {c.id: c.definition_id for c in service.cases(CaseFilter(workflow="dk2020"))}
    assert after_dry == old

    confirm = re.search(r'name="target" value="(\d+)"', dry.text)
    assert confirm and int(confirm.group(1)) == new.id
    applied = post_form(
        client,
        "/operations/migrate/apply",
        {"workflow": "dk2020", "state_map": "", "target": confirm.group(1)},
    )
    assert applied.status_code == 200, applied.text
    assert "98 sager er flyttet til version 2021.9." in applied.text
    moved = service.cases(CaseFilter(workflow="dk2020", open_only=True))
    assert moved and {c.definition_id for c in moved} == {new.id}


def test_a_migration_refusal_is_shown_and_changes_nothing(
    client_as: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = client_as("admin")
    service = web_service(client)
    service.load_workflow(_new_version(tmp_path), now=NOW)
    _page_first(client)
    before = {c.id: c.definition_id for c in service.cases(CaseFilter(workflow="dk2020"))}
    refused = post_form(
        client, "/operations/migrate", {"workflow": "dk2020", "state_map": "invited=nowhere"}
    )
    assert refused.status_code == 409
    assert "Afvist:" in refused.text and "nowhere" in refused.text
    bad = post_form(client, "/operations/migrate", {"workflow": "dk2020", "state_map": "oops"})
    assert bad.status_code == 422
    assert "Omdøbte tilstande, linje 1" in bad.text
    stale = post_form(
        client, "/operations/migrate/apply", {"workflow": "dk2020", "state_map": "", "target": "1"}
    )
    assert stale.status_code == 422
    assert "En nyere version er indlæst" in stale.text
    after = {c.id: c.definition_id for c in service.cases(CaseFilter(workflow="dk2020"))}
    assert after == before


@pytest.mark.parametrize("role", ["read_only", "follow_up", "approver", "regional_advisor"])
def test_only_operations_roles_may_migrate(client_as: Callable[..., TestClient], role: str) -> None:
    client = client_as(role)
    _page_first(client)
    assert post_form(client, "/operations/migrate", {"workflow": "dk2020"}).status_code == 403
    answer = post_form(client, "/operations/migrate/apply", {"workflow": "dk2020", "target": "1"})
    assert answer.status_code == 403
