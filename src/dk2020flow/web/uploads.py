"""Uploads read from the request as it arrives: a document never waits on the server's disk.

Starlette's ``request.form()`` writes the whole multipart body into a temporary file
before the endpoint sees it, so a 5 GB upload would fill the temporary disk before the
documents' service refused it. These receivers hand ``Service.documents.attach`` a
``Readable`` that pulls the request's body chunk by chunk (one network chunk in memory):

- ``MultipartUpload`` (the portal's and the console's forms) feeds the body to
  python-multipart's streaming ``MultipartParser``; ``open()`` reads up to the start of
  the file part, keeping the small form fields (at most ``FIELDS_LIMIT`` bytes in all)
  and checking the form's CSRF token among them (``security.check_csrf`` leaves it to
  the receiver for an endpoint marked ``@streamed``, which must take the receiver from
  ``web.document_upload.Streamed``: that dependency opens it and checks the token); the
  receiver itself is then the ``Readable`` of the file part's bytes, which ends only at
  the part's closing boundary (a body cut short is an error, never a shorter document);
- ``BodyUpload`` (the API, whose body is the file) reads the body itself.

``attach`` reads at most the document's limit plus one byte and refuses past it; the
endpoint then answers 413 with ``Connection: close``, so the server reads no more of the
body. ``too_long`` refuses a declared ``Content-Length`` over the limit before a byte of
the file is read. ``attach`` runs in the endpoint's worker thread; ``read`` there waits
on the event loop for the next chunk (``anyio.from_thread``).
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio.from_thread
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from dk2020flow.web.config import CSRF_COOKIE
from dk2020flow.web.security import CSRF_FIELD, CSRF_HEADER, STREAMED_UPLOAD, CsrfRefused

FIELDS_LIMIT = 64 * 1024
"""The most bytes the form's fields (and parts' headers) other than the file may take."""

FILE_FIELD = "file"

F = TypeVar("F", bound=Callable[..., Any])


def streamed(endpoint: F) -> F:
    """Mark ``endpoint`` as reading its multipart body with ``MultipartUpload``: the
    app-wide CSRF check leaves the form's token to the receiver (the body is read once)."""
    setattr(endpoint, STREAMED_UPLOAD, True)
    return endpoint


class UploadError(Exception):
    """The body is not a well-formed upload (``str`` says why); nothing was stored."""


def declared_length(request: Request) -> int | None:
    """The body's declared ``Content-Length`` (None when absent or not a number)."""
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def too_long(request: Request, limit: int, overhead: int = 0) -> bool:
    """Whether the declared body is longer than ``limit`` plus ``overhead`` bytes."""
    length = declared_length(request)
    return length is not None and length > limit + overhead


def megabytes(count: int) -> str:
    """``count`` bytes in MB as the workflow file writes a limit (``20``, ``0.5``)."""
    return f"{count / 1000**2:g}"


class _Receiver:
    """The request's body as it arrives, with a count of the bytes read."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self._chunks: AsyncIterator[bytes] = request.stream().__aiter__()
        self.received = 0
        self.finished = False

    async def _next(self) -> bytes:
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self.finished = True
            return b""
        self.received += len(chunk)
        if not chunk:
            self.finished = True
        return chunk


class BodyUpload(_Receiver):
    """The request's body as a ``Readable`` for ``attach`` (called from the worker thread)."""

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self._buffer = b""

    async def aread(self, size: int = -1) -> bytes:
        while not self._buffer and not self.finished:
            self._buffer = await self._next()
        if size < 0 or size >= len(self._buffer):
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def read(self, size: int = -1, /) -> bytes:
        return anyio.from_thread.run(self.aread, size)


class MultipartUpload(_Receiver):
    """A ``multipart/form-data`` body read part by part (see the module's text)."""

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        content_type, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        self.error: str | None = None
        """Why the body could not be read (set by the endpoint's dependency)."""
        if content_type != b"multipart/form-data" or not boundary:
            self.error = "the form is not sent as multipart/form-data"
            boundary = b"-"
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )
        self._field = b""
        self._value = b""
        self._headers: dict[str, bytes] = {}
        self._name: str | None = None
        self._data = bytearray()
        self._meta = 0
        self._in_file = False
        self._file_started = False
        self._file_ended = False
        self._pending: deque[bytes] = deque()

    # -------------------------------------------------------------- the parser's callbacks

    def _count(self, size: int) -> None:
        self._meta += size
        if self._meta > FIELDS_LIMIT:
            raise UploadError(f"the form's fields are larger than {FIELDS_LIMIT // 1024} kB")

    def _part_begin(self) -> None:
        self._headers = {}
        self._name = None
        self._data = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        name = params.get(b"name")
        self._name = name.decode("utf-8", "replace") if name is not None else None
        filename = params.get(b"filename")
        if self._name == FILE_FIELD and filename is not None and not self._file_started:
            self._file_started = self._in_file = True
            self.filename = filename.decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._pending.append(bytes(data[start:end]))
        elif not self._file_ended:
            self._count(end - start)
            self._data += data[start:end]

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self._file_ended = True
        elif self._name is not None and not self._file_started:
            self.fields[self._name] = self._data.decode("utf-8", "replace")

    # -------------------------------------------------------------- reading

    async def _pump(self) -> None:
        """Feed the parser the next chunk of the body (the end: an error if the form is
        not complete)."""
        chunk = await self._next()
        if not chunk:
            if not self._file_ended:
                raise UploadError("the upload ended before the form did")
            return
        self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except UploadError:
            raise
        except Exception as error:  # python-multipart's own errors: a malformed body
            raise UploadError(f"the form is not well-formed multipart ({error})") from None

    async def open(self) -> None:
        """Read the body up to the start of the file part (or to its end when the form
        has none), keeping the fields before it."""
        if self.error is not None:
            return
        while not self._file_started and not self.finished:
            chunk = await self._next()
            if chunk:
                self._feed(chunk)

    def check_csrf(self) -> None:
        """The form's token (a field before the file) must be the CSRF cookie's (a token
        in the header was checked by ``security.check_csrf`` already)."""
        if self.request.headers.get(CSRF_HEADER) is not None:
            return
        expected = self.request.cookies.get(CSRF_COOKIE) or ""
        given = self.fields.get(CSRF_FIELD)
        if given is None:
            raise CsrfRefused("the form is missing its security token")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise CsrfRefused("the form's security token does not match")

    @property
    def has_file(self) -> bool:
        """Whether the form carries a chosen file (a part named ``file`` with a name)."""
        return self._file_started and bool(self.filename)

    async def aread(self, size: int = -1) -> bytes:
        while not self._pending and not self._file_ended:
            await self._pump()
        if not self._pending:
            return b""
        chunk = self._pending.popleft()
        if 0 <= size < len(chunk):
            self._pending.appendleft(chunk[size:])
            chunk = chunk[:size]
        return chunk

    def read(self, size: int = -1, /) -> bytes:
        """The file part's next bytes (``b""`` once its closing boundary is read)."""
        return anyio.from_thread.run(self.aread, size)
