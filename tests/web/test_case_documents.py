"""The documents on the console's case page: listed with their checksum and uploader,
downloaded by staff, and uploaded by the staff roles the workflow lets upload a slot —
through ``Service.documents``, as the portal does (web/document_upload.py)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dk2020flow.service.core import Service
from dk2020flow.service.filetypes import sample
from dk2020flow.store.port import StoredDocument

from .conftest import csrf_of, web_service
from .portal_world import AARHUS, ANNA, ODENSE, add_contacts, case_id, sign_in_as_participant

FILENAME = "ansøgning 2021.pdf"


def _attach(service: Service, case: int, filename: str = FILENAME) -> StoredDocument:
    return service.documents.attach(
        f"#{case}",
        "application",
        io.BytesIO(sample("pdf")),
        filename=filename,
        actor=ANNA,
        role="contact_person",
    )


@pytest.fixture
def world(client: TestClient, programme_url: str) -> dict[str, Any]:
    add_contacts(programme_url)
    service = web_service(client)
    aarhus = case_id(programme_url, AARHUS)
    odense = case_id(programme_url, ODENSE)
    return {
        "service": service,
        "aarhus": aarhus,
        "odense": odense,
        "document": _attach(service, aarhus),
        "odense_document": _attach(service, odense, "odense.pdf"),
    }


def _upload(
    client: TestClient, url: str, content: bytes, filename: str, *, csrf: bool = True
) -> Any:
    data = {"csrf_token": csrf_of(client)} if csrf else {}
    return client.post(url, data=data, files={"file": (filename, content, "application/pdf")})


def _documents_of(service: Service, case: int) -> list[StoredDocument]:
    with service.store.read() as tx:
        return tx.documents_of(case)


def test_the_case_page_lists_the_documents(
    client_as: Callable[..., TestClient], world: dict[str, Any]
) -> None:
    document: StoredDocument = world["document"]
    page = client_as("read_only").get(f"/cases/{world['aarhus']}")
    assert page.status_code == 200, page.text
    text = page.text
    assert 'id="case-documents"' in text
    assert "Ansøgning med forpligtelseserklæring" in text  # the slot's title (Danish)
    assert f'href="/cases/{world["aarhus"]}/documents/{document.id}"' in text
    assert FILENAME in text
    assert "application/pdf" in text
    assert f'<code title="SHA-256: {document.sha256}">{document.sha256[:12]}</code>' in text
    assert f"{ANNA} (Kontaktperson)" in text
    assert "odense.pdf" not in text  # another case's document
    # read_only uploads nothing: no form
    assert "form-upload-" not in text


def test_the_upload_forms_are_those_the_roles_may_upload(
    client_as: Callable[..., TestClient], world: dict[str, Any]
) -> None:
    text = client_as("secretariat").get(f"/cases/{world['aarhus']}").text
    for slot in ("application", "draft_plan", "screening_note", "council_decision"):
        assert f'id="form-upload-{slot}"' in text, slot
    assert 'id="form-upload-emissions_inventory"' not in text  # contact person, advisor
    assert 'enctype="multipart/form-data"' in text
    # The limit as the workflow writes it (20MB, 50MB: 10^6 bytes) and the refusal says it.
    assert "Tilladte typer: pdf, docx, odt. Højst 20 MB." in text
    assert "Højst 50 MB." in text
    advisor = client_as("regional_advisor").get(f"/cases/{world['aarhus']}").text
    assert 'id="form-upload-emissions_inventory"' in advisor
    assert 'id="form-upload-application"' not in advisor


def test_staff_download_a_document(
    client_as: Callable[..., TestClient], world: dict[str, Any]
) -> None:
    document: StoredDocument = world["document"]
    for role in ("secretariat", "read_only", "admin", "follow_up"):
        response = client_as(role).get(f"/cases/{world['aarhus']}/documents/{document.id}")
        assert response.status_code == 200, (role, response.text)
        assert response.content == sample("pdf")
        assert response.headers["content-type"] == "application/pdf"
        assert (
            response.headers["content-disposition"]
            == "attachment; filename*=UTF-8''ans%C3%B8gning%202021.pdf"
        )
        assert response.headers["content-length"] == str(len(sample("pdf")))


def test_a_document_of_another_case_or_none_is_not_found(
    client_as: Callable[..., TestClient], world: dict[str, Any]
) -> None:
    staff = client_as("secretariat")
    other: StoredDocument = world["odense_document"]
    assert staff.get(f"/cases/{world['aarhus']}/documents/{other.id}").status_code == 404
    assert staff.get(f"/cases/{world['aarhus']}/documents/999999").status_code == 404
    assert staff.get(f"/cases/999999/documents/{other.id}").status_code == 404


def test_participants_and_nobody_do_not_download_from_the_console(
    client: TestClient, world: dict[str, Any]
) -> None:
    document: StoredDocument = world["document"]
    url = f"/cases/{world['aarhus']}/documents/{document.id}"
    anonymous = client.get(url)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/sign-in?next=")
    sign_in_as_participant(client, world["service"], ANNA)  # Aarhus's own contact person
    assert client.get(url).status_code == 403


def test_the_secretariat_uploads_a_document(
    client_as: Callable[..., TestClient], world: dict[str, Any]
) -> None:
    service: Service = world["service"]
    staff = client_as("secretariat", email="sekretariat@concito.example.dk")
    url = f"/cases/{world['aarhus']}"
    response = _upload(staff, f"{url}/documents/screening_note", sample("pdf"), "notat.pdf")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{url}?done=upload&what=screening_note"
    [stored, *_] = _documents_of(service, world["aarhus"])
    assert (stored.slot, stored.filename) == ("screening_note", "notat.pdf")
    assert (stored.uploaded_by, stored.uploaded_role) == (
        "sekretariat@concito.example.dk",
        "secretariat",
    )
    page = staff.get(response.headers["location"]).text
    assert "CAPF-screeningsnotat er uploadet." in page
    assert "notat.pdf" in page


def test_an_upload_of_a_wrong_type_is_refused_and_nothing_is_stored(
    client_as: Callable[..., TestClient], world: dict[str, Any]
) -> None:
    service: Service = world["service"]
    before = _documents_of(service, world["aarhus"])
    staff = client_as("secretariat")
    url = f"/cases/{world['aarhus']}/documents/application"
    response = _upload(staff, url, b"plain text, not a PDF", "letter.pdf")
    assert response.status_code == 422, response.text
    assert "by its content" in response.text and "nothing was stored" in response.text
    assert 'href="#form-upload-application"' in response.text  # the summary leads to the form
    assert _documents_of(service, world["aarhus"]) == before


def test_an_upload_without_a_file_or_the_role_or_the_token_is_refused(
    client_as: Callable[..., TestClient], world: dict[str, Any]
) -> None:
    service: Service = world["service"]
    before = _documents_of(service, world["aarhus"])
    url = f"/cases/{world['aarhus']}/documents/application"
    staff = client_as("secretariat")
    empty = staff.post(url, data={"csrf_token": csrf_of(staff)}, files={"other": ("x", b"")})
    assert empty.status_code == 422 and "Vælg en fil at uploade." in empty.text
    no_token = _upload(staff, url, sample("pdf"), "a.pdf", csrf=False)
    assert no_token.status_code == 403
    # The advisor may not upload the application: the service refuses (logged on the case).
    advisor = client_as("regional_advisor")
    refused = _upload(advisor, url, sample("pdf"), "a.pdf")
    assert refused.status_code == 409, refused.text
    assert "may not upload" in refused.text
    # read_only and participants never reach the handler.
    assert _upload(client_as("read_only"), url, sample("pdf"), "a.pdf").status_code == 403
    assert _documents_of(service, world["aarhus"]) == before


def test_a_staff_role_the_workflow_does_not_name_may_not_read_its_documents(
    client_as: Callable[..., TestClient], world: dict[str, Any]
) -> None:
    """The status reports' workflow has no role ``secretariat``: its documents are not
    the secretariat's to read (403 before the document is looked up), but ``admin``'s."""
    from dk2020flow.bundled import workflow_path

    service: Service = world["service"]
    service.load_workflow(workflow_path("status_reports"))
    [opened, *_] = service.open_cases(
        "status_reports", [("751", "Aarhus")], actor="setup", role=None
    ).opened
    document: StoredDocument = world["document"]
    url = f"/cases/{opened.id}/documents/{document.id}"
    assert client_as("secretariat").get(url).status_code == 403
    assert client_as("admin").get(url).status_code == 404  # Aarhus's dk2020 case's document
    page = client_as("secretariat").get(f"/cases/{opened.id}")
    assert page.status_code == 200 and 'id="case-documents"' in page.text
