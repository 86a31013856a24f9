"""Reading a file's type from its bytes (service/filetypes.py): never from its name."""

from __future__ import annotations

import io
import time
import zipfile

import pytest

from dk2020flow.definition.model import DOCUMENT_TYPES
from dk2020flow.service.filetypes import ENTRY_LIMIT, describe, sample, sniff


def _sniff(data: bytes) -> str | None:
    return sniff(io.BytesIO(data))


def _zip(entries: dict[str, bytes], *, stored_first: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            kind = zipfile.ZIP_STORED if name == stored_first else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=kind)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", list(DOCUMENT_TYPES))
def test_every_declared_type_is_recognised(kind: str) -> None:
    assert _sniff(sample(kind, "Aarhus Kommune: klimaplan æøå")) == kind
    assert describe(kind)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, I am a text file named plan.pdf",
        b"%PDX-1.4",
        b"GIF89a\x01\x00\x01\x00",
        b"PK\x03\x04 a broken zip",
        b"\x89PNG\r\n",  # a cut signature
    ],
)
def test_other_content_is_no_known_type(data: bytes) -> None:
    assert _sniff(data) is None


def test_a_zip_is_not_an_office_file_by_its_entries_names_alone() -> None:
    # A plain ZIP with the Word part's name but no content type naming it is no docx.
    assert _sniff(_zip({"word/document.xml": b"<w:document/>"})) is None
    # A macro-enabled Word file (docm) names another main content type: refused as docx.
    docm = _zip(
        {
            "[Content_Types].xml": b'<Types><Override PartName="/word/document.xml" '
            b'ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/></Types>',
            "word/document.xml": b"<w:document/>",
        }
    )
    assert _sniff(docm) is None


def test_an_opendocument_template_is_not_a_document() -> None:
    ott = _zip(
        {"mimetype": b"application/vnd.oasis.opendocument.text-template", "content.xml": b"<x/>"},
        stored_first="mimetype",
    )
    assert _sniff(ott) is None


def test_a_zip_bomb_costs_nothing() -> None:
    # [Content_Types].xml that inflates to 30 MB: read no further than ENTRY_LIMIT.
    bomb = _zip({"[Content_Types].xml": b"\0" * 30_000_000, "word/document.xml": b"<x/>"})
    assert len(bomb) < 100_000
    start = time.perf_counter()
    assert _sniff(bomb) is None
    assert time.perf_counter() - start < 5  # generous: it stops after ENTRY_LIMIT bytes
    assert ENTRY_LIMIT < 30_000_000
