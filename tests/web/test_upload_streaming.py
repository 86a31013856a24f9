"""Uploads stream into the documents' service (web/uploads.py): the limit is enforced
while the body arrives, the server stops reading past it, and a refused upload leaves
no row, no file and no temporary file.

The app runs under a real uvicorn on loopback, in this process, behind an ASGI wrapper
that counts the body bytes the server handed to the app; the client is ``http.client``
sending the body in chunks as a browser does, and it stops when the answer arrives.
The storage is a directory, so "no file" is a look at a folder; ``tempfile``'s folder is
the test's own, so "no temporary file" is one too.
"""

from __future__ import annotations

import http.client
import secrets
import select
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from api.served import free_port
from dk2020_data import DK2020_STAFF_ROLES as STAFF_ROLES
from dk2020flow.service.core import Service
from dk2020flow.service.filetypes import sample
from dk2020flow.web.app import create_app
from dk2020flow.web.config import CSRF_COOKIE, SESSION_COOKIE, WebConfig

from .portal_world import ANNA, add_contacts, participant_session

LIMIT = 20_000_000
"""The application's limit in workflows/dk2020.yaml (``max_size: 20MB``)."""
CHUNK = 64 * 1024
SLACK = 1_000_000
"""What the server may read past the limit: the form's fields and uvicorn's buffers."""


@dataclass
class Counted:
    """An ASGI wrapper: the body bytes the server handed to the app, per request."""

    app: Any
    received: list[int] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        index = len(self.received)
        self.received.append(0)

        async def counting() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.received[index] += len(message.get("body", b""))
            return message

        await self.app(scope, counting, send)


@dataclass
class Served:
    port: int
    app: FastAPI
    counted: Counted
    documents: Path
    temp: Path

    @property
    def service(self) -> Service:
        service: Service = self.app.state.web.service
        return service

    def leftovers(self) -> list[Path]:
        """Every file in the documents' folder and the temporary folder."""
        return sorted(p for d in (self.documents, self.temp) for p in d.rglob("*") if p.is_file())


@pytest.fixture
def served(
    app_config: WebConfig, programme_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    documents = tmp_path / "documents"
    temp = tmp_path / "tmp"
    documents.mkdir()
    temp.mkdir()
    monkeypatch.setenv("DK2020FLOW_DOCUMENT_STORAGE", "directory")
    monkeypatch.setenv("DK2020FLOW_DOCUMENT_DIRECTORY", str(documents))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    add_contacts(programme_url)
    app = create_app(app_config)
    counted = Counted(app)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(counted, host="127.0.0.1", port=port, log_level="warning", http="h11")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    # uvicorn sets ``started`` once it listens; wait on it without a guessed sleep.
    while not server.started and thread.is_alive():
        started.wait(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield Served(port, app, counted, documents, temp)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str
    sent: int
    """The bytes of the body the client sent before the answer came (or the server closed)."""


def _send(
    port: int,
    path: str,
    headers: dict[str, str],
    preamble: bytes,
    file_size: int,
    epilogue: bytes,
    *,
    content_length: int | None = None,
) -> Answer:
    """POST a body of ``preamble``, ``file_size`` bytes of a PDF and ``epilogue``, chunked
    (or with ``content_length`` declared), stopping as soon as the server answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.putrequest("POST", path)
    for name, value in headers.items():
        connection.putheader(name, value)
    chunked = content_length is None
    if chunked:
        connection.putheader("Transfer-Encoding", "chunked")
    else:
        connection.putheader("Content-Length", str(content_length))
    connection.endheaders()
    sock = connection.sock
    assert sock is not None

    def pieces() -> Iterator[bytes]:
        yield preamble
        head = sample("pdf")[:CHUNK]
        left = file_size
        first = True
        while left > 0:
            piece = head if first else b"\0" * min(CHUNK, left)
            piece = piece[:left]
            first = False
            left -= len(piece)
            yield piece
        yield epilogue

    sent = 0
    try:
        for piece in pieces():
            if not piece:
                continue  # (an empty chunk would end a chunked body)
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered: send no more
            data = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
            sock.sendall(data)
            sent += len(piece)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    response = connection.getresponse()
    body = response.read().decode()
    answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body, sent)
    connection.close()
    return answer


BOUNDARY = "----dk2020flowtestboundary"


def _form(token: str, filename: str) -> tuple[bytes, bytes]:
    """The multipart body around the file: (before its bytes, after them)."""
    before = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="csrf_token"\r\n\r\n'
        f"{token}\r\n"
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    return before, f"\r\n--{BOUNDARY}--\r\n".encode()


def _portal_upload(
    served: Served,
    size: int,
    *,
    filename: str = "plan.pdf",
    content_length: int | None = None,
    token: str | None = None,
    field_token: str | None = None,
    epilogue: bool = True,
) -> Answer:
    aarhus = _aarhus(served)
    session = participant_session(served.service, ANNA)
    token = token or secrets.token_urlsafe(32)
    before, after = _form(field_token or token, filename)
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Cookie": f"{SESSION_COOKIE}={session}; {CSRF_COOKIE}={token}",
    }
    return _send(
        served.port,
        f"/portal/cases/{aarhus}/documents/application",
        headers,
        before,
        size,
        after if epilogue else b"",
        content_length=content_length,
    )


def _aarhus(served: Served) -> int:
    return served.service.case("Aarhus", "dk2020").id or 0


def _documents(served: Served) -> list[Any]:
    with served.service.store.read() as tx:
        return list(tx.documents_of(_aarhus(served)))


def test_an_upload_over_the_limit_is_cut_off_at_the_limit_and_leaves_nothing(
    served: Served,
) -> None:
    answer = _portal_upload(served, 3 * LIMIT)
    assert answer.status == 413, answer.body
    assert "20 MB" in answer.body and "application" in answer.body
    assert "nothing was stored" in answer.body
    assert answer.headers.get("connection") == "close"
    # The server read the limit and little more; the client never sent the rest.
    assert LIMIT < served.counted.received[-1] <= LIMIT + SLACK
    assert answer.sent < 2 * LIMIT
    assert _documents(served) == []
    assert served.leftovers() == []


def test_a_declared_length_over_the_limit_is_refused_before_the_file_is_read(
    served: Served,
) -> None:
    # Only the form's fields are sent: the answer comes without a byte of the file.
    answer = _portal_upload(served, 0, content_length=5 * 1000**3, epilogue=False)
    assert answer.status == 413, answer.body
    assert "larger than 20 MB" in answer.body
    assert served.counted.received[-1] < SLACK
    assert _documents(served) == [] and served.leftovers() == []


def test_a_wrong_type_is_refused_with_its_message_and_leaves_nothing(served: Served) -> None:
    aarhus = _aarhus(served)
    session = participant_session(served.service, ANNA)
    token = secrets.token_urlsafe(32)
    before, after = _form(token, "letter.pdf")
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Cookie": f"{SESSION_COOKIE}={session}; {CSRF_COOKIE}={token}",
    }
    body = before + b"not a pdf at all" + after
    answer = _send(
        served.port,
        f"/portal/cases/{aarhus}/documents/application",
        headers,
        body,
        0,
        b"",
        content_length=len(body),
    )
    assert answer.status == 422, answer.body
    assert "letter.pdf" in answer.body and "PDF" in answer.body
    assert _documents(served) == [] and served.leftovers() == []


def test_a_normal_upload_streams_into_the_directory(served: Served) -> None:
    answer = _portal_upload(served, 2_000_000, filename="ansoegning.pdf")
    assert answer.status == 303, answer.body
    [document] = _documents(served)
    assert document.filename == "ansoegning.pdf" and document.size == 2_000_000
    files = sorted(p for p in served.documents.rglob("*") if p.is_file())
    assert len(files) == 1 and files[0].stat().st_size == 2_000_000
    assert not [p for p in served.temp.rglob("*") if p.is_file()]


def test_a_wrong_form_token_is_refused_before_the_file_is_read(served: Served) -> None:
    answer = _portal_upload(served, 2_000_000, field_token=secrets.token_urlsafe(32))
    assert answer.status == 403, answer.body
    assert _documents(served) == [] and served.leftovers() == []


def test_a_form_token_after_the_file_is_refused_before_the_file_is_read(
    served: Served,
) -> None:
    """The token must come before the file (as the page's form sends it): the file is
    read only once the form is known to come from the page."""
    session = participant_session(served.service, ANNA)
    token = secrets.token_urlsafe(32)
    before = _form(token, "plan.pdf")[0]
    file_first = before[
        before.index(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"'.encode()) :
    ]
    tail = (
        f"\r\n--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="csrf_token"\r\n\r\n'
        f"{token}\r\n--{BOUNDARY}--\r\n"
    ).encode()
    body = file_first + sample("pdf") + tail
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Cookie": f"{SESSION_COOKIE}={session}; {CSRF_COOKIE}={token}",
    }
    answer = _send(
        served.port,
        f"/portal/cases/{_aarhus(served)}/documents/application",
        headers,
        body,
        0,
        b"",
        content_length=len(body),
    )
    assert answer.status == 403, answer.body
    assert _documents(served) == [] and served.leftovers() == []


def test_a_body_cut_short_stores_nothing(served: Served) -> None:
    """A form whose closing boundary never comes is an error, not a shorter document."""
    aarhus = _aarhus(served)
    session = participant_session(served.service, ANNA)
    token = secrets.token_urlsafe(32)
    before, _after = _form(token, "plan.pdf")
    body = before + sample("pdf")
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Cookie": f"{SESSION_COOKIE}={session}; {CSRF_COOKIE}={token}",
    }
    answer = _send(
        served.port,
        f"/portal/cases/{aarhus}/documents/application",
        headers,
        body,
        0,
        b"",
        content_length=len(body),
    )
    assert answer.status == 422, answer.body
    assert "ended before" in answer.body
    assert _documents(served) == [] and served.leftovers() == []


# ----------------------------------------------------------------------------- the API


def _api_token(service: Service) -> str:
    assert "contact_person" not in STAFF_ROLES
    created = service.tokens.create(
        "test-uploads", ["contact_person"], created_by="test", every_case=True
    )
    return created.secret


def _api_upload(served: Served, size: int, *, content_length: int | None = None) -> Answer:
    headers = {
        "Authorization": f"Bearer {_api_token(served.service)}",
        "Content-Type": "application/octet-stream",
    }
    return _send(
        served.port,
        f"/api/v1/cases/{_aarhus(served)}/documents/application?filename=plan.pdf",
        headers,
        b"",
        size,
        b"",
        content_length=content_length,
    )


def test_the_api_cuts_an_upload_off_at_the_limit(served: Served) -> None:
    answer = _api_upload(served, 3 * LIMIT)
    assert answer.status == 413, answer.body
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert '"too-large"' in answer.body or "too-large" in answer.body
    assert "20 MB" in answer.body
    assert answer.headers.get("connection") == "close"
    assert LIMIT < served.counted.received[-1] <= LIMIT + SLACK
    assert answer.sent < 2 * LIMIT
    assert _documents(served) == [] and served.leftovers() == []


def test_the_api_refuses_a_declared_length_over_the_limit_at_once(served: Served) -> None:
    answer = _api_upload(served, 0, content_length=5 * 1000**3)  # the answer comes unsent
    assert answer.status == 413, answer.body
    assert "too-large" in answer.body and "20 MB" in answer.body
    assert served.counted.received[-1] == 0
    assert _documents(served) == [] and served.leftovers() == []


def test_the_api_stores_a_normal_upload(served: Served) -> None:
    answer = _api_upload(served, 2_000_000, content_length=2_000_000)
    assert answer.status == 201, answer.body
    [document] = _documents(served)
    assert document.size == 2_000_000
    assert len([p for p in served.documents.rglob("*") if p.is_file()]) == 1
