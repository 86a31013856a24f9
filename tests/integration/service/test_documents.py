"""Documents handed to a case (service/documents.py), on SQLite and PostgreSQL, in each
storage: the database, a directory, and an S3-compatible store (moto's server on loopback).

A refused or failed upload leaves no row, no bytes, no file and no object behind.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dk2020flow.clock import ManualClock
from dk2020flow.definition.loader import LoadedWorkflow, load_workflow
from dk2020flow.engine.records import EventKind
from dk2020flow.errors import RefusalReason, RefusedError
from dk2020flow.service import Service
from dk2020flow.service.documents import (
    DocumentIntegrityError,
    DocumentRefusedError,
    DocumentStorageError,
)
from dk2020flow.service.filetypes import sample
from dk2020flow.settings import Settings
from dk2020flow.store import tables
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
DK2020 = ROOT / "workflows" / "dk2020.yaml"
START = dt.datetime(2020, 8, 20, 10, 0, tzinfo=dt.UTC)
CONTACT = {"actor": "Anna Jensen", "role": "contact_person", "workflow": "dk2020"}
APPLICATION_DATA = {"commitment_signed": True, "staff_hours_per_week": 30}
LIMIT = 20_000_000  # DK2020's application: max_size 20MB


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server on loopback (moto's server mode)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="eu-north-1")


@pytest.fixture(params=["database", "directory", "s3"])
def settings(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings of one storage over the test's database."""
    kind = str(request.param)
    if kind == "directory":
        (tmp_path / "documents").mkdir()
        return Settings(
            database_url=db_url,
            document_storage="directory",
            document_directory=tmp_path / "documents",
        )
    if kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
        bucket = f"dk2020-{uuid.uuid4().hex[:12]}"
        _s3_client(endpoint).create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"}
        )
        return Settings(
            database_url=db_url,
            document_storage="s3",
            document_s3_bucket=bucket,
            document_s3_endpoint_url=endpoint,
            document_s3_region="eu-north-1",
        )
    return Settings(database_url=db_url)


@functools.cache
def _dk2020() -> LoadedWorkflow:
    return load_workflow(DK2020)  # validated and rendered once: a second or two


def _service(store: SqlStore, settings: Settings) -> Service:
    service = Service(store, clock=ManualClock(START), settings=settings)
    loaded = _dk2020()
    with store.transaction() as tx:  # as `workflow load` stores it (its events not armed)
        tx.save_definition(
            name=loaded.workflow.workflow,
            version_label=loaded.workflow.version,
            content_hash=loaded.content_hash,
            source_text=loaded.source_text,
            templates=dict(loaded.templates),
            source_path=str(DK2020),
            now=START,
        )
    service.open_case("dk2020", "Aarhus", actor="KL", role="follow_up", now=START)
    service.fire(
        "Aarhus",
        "decide_participate",
        actor="Aarhus byråd",
        role="council",
        data={
            "cohort": "round1",
            "decision_date": "2020-08-20",
            "contact_person_name": "Anna Jensen",
            "contact_person_email": "anna@aarhus.example.dk",
        },
        now=START,
    )
    return service


@pytest.fixture
def service(store: SqlStore, settings: Settings) -> Service:
    """Aarhus's case in `decided`, where its application (a document) is next."""
    return _service(store, settings)


@pytest.fixture
def db_service(store: SqlStore, db_url: str) -> Service:
    """As ``service``, with the default (database) storage only."""
    return _service(store, Settings(database_url=db_url))


class Trickle:
    """An upload arriving as a stream fed by a generator, counting the bytes read from it."""

    def __init__(self, chunks: Iterator[bytes], at_end: Callable[[], None] | None = None) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._at_end = at_end
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                if self._at_end is not None:
                    self._at_end()
                    self._at_end = None
                break
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        self.read_bytes += len(data)
        return data


def endless_pdf() -> Iterator[bytes]:
    """A PDF-shaped upload that never ends (as far as the reader goes)."""
    yield b"%PDF-1.7\n"
    block = b"0" * 65_536
    while True:
        yield block


def leftovers(service: Service, settings: Settings) -> dict[str, int]:
    """What is stored anywhere: rows, bytes in the database, files, objects."""
    with service.store.read() as tx:
        conn = tx.connection  # type: ignore[attr-defined]
        rows = conn.execute(select(func.count()).select_from(tables.documents)).scalar_one()
        contents = conn.execute(
            select(func.count()).select_from(tables.document_contents)
        ).scalar_one()
    files = objects = 0
    if settings.document_storage == "directory":
        assert settings.document_directory is not None
        files = sum(1 for p in Path(settings.document_directory).rglob("*") if p.is_file())
    if settings.document_storage == "s3":
        listed = _s3_client(str(settings.document_s3_endpoint_url)).list_objects_v2(
            Bucket=settings.document_s3_bucket
        )
        objects = int(listed.get("KeyCount", 0))
    return {"rows": rows, "contents": contents, "files": files, "objects": objects}


NOTHING = {"rows": 0, "contents": 0, "files": 0, "objects": 0}


def attach(service: Service, data: bytes, filename: str = "ansøgning.pdf", **options: Any) -> Any:
    given = {**CONTACT, **options}
    document = given.pop("document", "application")
    return service.documents.attach(
        "Aarhus", document, io.BytesIO(data), filename=filename, **given
    )


# ----------------------------------------------------------------------------- uploads


def test_an_upload_is_stored_with_its_checksum_uploader_time_and_history(
    service: Service, settings: Settings
) -> None:
    data = sample("pdf", "Aarhus Kommunes ansøgning")
    at = START + dt.timedelta(days=3)
    stored = attach(service, data, filename="C:\\Users\\anna\\Ansøgning DK2020.pdf", now=at)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert stored.content_type == "application/pdf"
    assert stored.filename == "Ansøgning DK2020.pdf"  # the name only, never its path
    assert (stored.uploaded_by, stored.uploaded_role, stored.uploaded_at) == (
        "Anna Jensen",
        "contact_person",
        at,
    )
    assert stored.storage == settings.document_storage
    expected = {**NOTHING, "rows": 1}
    expected[{"database": "contents", "directory": "files", "s3": "objects"}[stored.storage]] = 1
    assert leftovers(service, settings) == expected

    _, events = service.history("Aarhus")
    event = events[-1].record
    assert event.kind is EventKind.DOCUMENT
    assert (event.actor, event.role, event.trigger, event.at) == (
        "Anna Jensen",
        "contact_person",
        "application",
        at,
    )
    assert event.data["document_id"] == stored.id
    assert event.data["sha256"] == stored.sha256
    assert all(check.ok for check in service.verify())  # chained and replayable

    listed = service.documents.case_documents("Aarhus", roles=["contact_person"])
    assert [d.id for d in listed.documents] == [stored.id]
    application = next(s for s in listed.slots if s.name == "application")
    assert application.needed_by == ("submit_application",)
    assert application.current == stored

    content = service.documents.content("Aarhus", stored.id, roles=["secretariat"])
    assert content.read() == data


def test_a_wrong_type_by_its_bytes_is_refused_and_leaves_nothing(
    service: Service, settings: Settings
) -> None:
    # A PNG named .pdf: the content decides.
    with pytest.raises(DocumentRefusedError) as refused:
        attach(service, sample("png"), filename="ansøgning.pdf")
    assert refused.value.problem == "type"
    assert refused.value.reason is RefusalReason.INVALID_DATA
    message = str(refused.value)
    assert "'ansøgning.pdf' is a PNG image" in message and "PDF, DOCX or ODT" in message
    assert "nothing was stored" in message
    # Text with a PDF's name, and an Excel workbook (a ZIP, as a docx is) named .docx, alike.
    with pytest.raises(DocumentRefusedError, match="not a PDF, DOCX or ODT file"):
        attach(service, b"Dear secretariat, here is our application.", filename="a.pdf")
    with pytest.raises(DocumentRefusedError, match=r"is an Excel workbook \(xlsx\)"):
        attach(service, sample("xlsx"), filename="a.docx")
    with pytest.raises(DocumentRefusedError, match="is empty"):
        attach(service, b"", filename="a.pdf")
    assert leftovers(service, settings) == NOTHING
    _, events = service.history("Aarhus")
    assert EventKind.DOCUMENT not in {e.record.kind for e in events}


def test_over_the_limit_and_failed_uploads_leave_nothing(
    service: Service, settings: Settings
) -> None:
    # Over the limit: refused while streaming, never reading past the limit and a byte.
    stream = Trickle(endless_pdf())
    with pytest.raises(DocumentRefusedError) as refused:
        service.documents.attach("Aarhus", "application", stream, filename="huge.pdf", **CONTACT)
    assert refused.value.problem == "size"
    assert "larger than 20 MB" in str(refused.value)
    assert LIMIT < stream.read_bytes <= LIMIT + 1
    assert leftovers(service, settings) == NOTHING

    # The stream breaks off (the browser went away).
    def broken() -> Iterator[bytes]:
        yield sample("pdf")
        raise ConnectionResetError("the browser went away")

    with pytest.raises(ConnectionResetError):
        service.documents.attach(
            "Aarhus", "application", Trickle(broken()), filename="a.pdf", **CONTACT
        )
    assert leftovers(service, settings) == NOTHING

    # The organisation withdraws while the file is still arriving: the row is refused, and
    # the bytes already put in place (the file, the object) are taken back.
    def withdraw() -> None:
        service.fire(
            "Aarhus",
            "withdraw",
            actor="KL",
            role="follow_up",
            data={"withdraw_reason": "the council changed its mind"},
        )

    stream = Trickle(iter([sample("pdf")]), at_end=withdraw)
    with pytest.raises(RefusedError, match="was closed meanwhile"):
        service.documents.attach("Aarhus", "application", stream, filename="a.pdf", **CONTACT)
    assert leftovers(service, settings) == NOTHING


def test_a_file_at_the_limit_is_taken(db_service: Service) -> None:
    data = sample("pdf")
    data += b"%" * (LIMIT - len(data))
    stored = attach(db_service, data)
    assert stored.size == LIMIT


def test_who_may_upload(db_service: Service) -> None:
    stream = Trickle(iter([sample("pdf")]))
    with pytest.raises(RefusedError) as refused:
        db_service.documents.attach(
            "Aarhus", "application", stream, filename="a.pdf", actor="Borgmester", role="mayor"
        )
    assert refused.value.reason is RefusalReason.ROLE
    assert "allowed roles: contact_person, secretariat" in str(refused.value)
    assert stream.read_bytes == 0  # refused before a byte was read
    _, events = db_service.history("Aarhus")
    assert events[-1].record.kind is EventKind.REFUSED  # acting without the role is logged
    assert events[-1].record.data == {"document": "application"}
    with pytest.raises(RefusedError, match="is not a document of dk2020"):
        attach(db_service, sample("pdf"), document="aplication")
    assert leftovers(db_service, Settings()) == NOTHING
    assert attach(db_service, sample("pdf"), actor="CONCITO", role="secretariat").id


def test_the_trigger_waits_for_its_document(db_service: Service) -> None:
    with pytest.raises(RefusedError) as refused:
        db_service.fire("Aarhus", "submit_application", data=APPLICATION_DATA, **CONTACT)
    assert refused.value.reason is RefusalReason.MISSING_DATA
    assert "needs the document application" in str(refused.value)
    assert db_service.case("Aarhus").state == "decided"
    attach(db_service, sample("docx", "Ansøgning"), filename="ansøgning.docx")
    moved = db_service.fire("Aarhus", "submit_application", data=APPLICATION_DATA, **CONTACT)
    assert moved.state == "application_submitted"


def test_a_document_counts_for_the_state_it_was_handed_in(db_service: Service) -> None:
    # Sent back for changes, the application must be handed in again: the first one was for
    # the first visit of `decided`.
    attach(db_service, sample("pdf"))
    db_service.fire("Aarhus", "submit_application", data=APPLICATION_DATA, **CONTACT)
    db_service.fire("Aarhus", "request_application_changes", actor="CONCITO", role="secretariat")
    with pytest.raises(RefusedError, match="needs the document application"):
        db_service.fire("Aarhus", "submit_application", data=APPLICATION_DATA, **CONTACT)
    slots = db_service.documents.case_documents("Aarhus", roles=["read_only"]).slots
    assert next(s for s in slots if s.name == "application").current is None
    attach(db_service, sample("odt"), filename="ansøgning v2.odt")
    assert (
        db_service.fire("Aarhus", "submit_application", data=APPLICATION_DATA, **CONTACT).state
        == "application_submitted"
    )


# ----------------------------------------------------------------------------- reading


def test_download_gives_the_same_bytes(db_service: Service) -> None:
    data = sample("pdf", "x") + bytes(range(256)) * 2000  # half a MB, every byte value
    stored = attach(db_service, data)
    content = db_service.documents.content("Aarhus", stored.id, roles=["contact_person"])
    assert content.document == stored
    chunks = list(content.chunks)
    assert len(chunks) > 1 and b"".join(chunks) == data


def test_who_may_read(db_service: Service) -> None:
    stored = attach(db_service, sample("pdf"))
    for roles in ([], ["emperor"]):
        with pytest.raises(RefusedError, match="may not read the documents of case") as refused:
            db_service.documents.case_documents("Aarhus", roles=roles)
        assert refused.value.reason is RefusalReason.ROLE
        with pytest.raises(RefusedError, match="may not read"):
            db_service.documents.content("Aarhus", stored.id, roles=roles)
    for roles in (["read_only"], ["admin"], ["mayor"], ["approver"]):
        assert db_service.documents.case_documents("Aarhus", roles=roles).documents


def test_a_document_of_another_case_is_not_found(db_service: Service) -> None:
    from dk2020flow.errors import NotFoundError

    stored = attach(db_service, sample("pdf"))
    db_service.open_case("dk2020", "Odense", actor="KL", role="follow_up")
    with pytest.raises(NotFoundError, match="has no document"):
        db_service.documents.content("Odense", stored.id, roles=["admin"])


def test_changed_bytes_are_detected_on_download(
    store: SqlStore, db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    settings = Settings(
        database_url=db_url, document_storage="directory", document_directory=folder
    )
    service = _service(store, settings)
    stored = attach(service, sample("pdf", "original"))
    (folder / stored.storage_key).write_bytes(sample("pdf", "forged!!"))
    with pytest.raises(DocumentIntegrityError, match="does not match the checksum"):
        service.documents.content("Aarhus", stored.id, roles=["admin"]).read()
    (folder / stored.storage_key).unlink()
    with pytest.raises(DocumentIntegrityError, match="is missing"):
        service.documents.content("Aarhus", stored.id, roles=["admin"]).read()


def test_a_storage_that_cannot_be_used_says_which_setting(
    store: SqlStore, db_url: str, tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = Settings(
        database_url=db_url, document_storage="directory", document_directory=tmp_path / "none"
    )
    service = _service(store, missing)
    with pytest.raises(DocumentStorageError, match="DK2020FLOW_DOCUMENT_DIRECTORY"):
        attach(service, sample("pdf"))
    service.settings = Settings(database_url=db_url, document_storage="directory")
    with pytest.raises(DocumentStorageError, match="DK2020FLOW_DOCUMENT_DIRECTORY"):
        attach(service, sample("pdf"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    service.settings = Settings(
        database_url=db_url,
        document_storage="s3",
        document_s3_bucket="no-such-bucket",
        document_s3_endpoint_url=s3_endpoint,
        document_s3_region="eu-north-1",
    )
    with pytest.raises(DocumentStorageError, match="bucket no-such-bucket"):
        attach(service, sample("pdf"))
    assert leftovers(service, missing) == NOTHING
