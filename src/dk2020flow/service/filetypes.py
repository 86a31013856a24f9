"""What a file is, read from its bytes: the document types a workflow may allow.

``sniff`` looks at the first bytes (``%PDF-``, the PNG and JPEG signatures) and, for the
ZIP-based formats, into the archive with the standard library's ``zipfile``: an Office
Open XML document (docx, xlsx) names its main part in ``[Content_Types].xml``, an
OpenDocument file (odt, ods) says what it is in its ``mimetype`` entry. The file's name
plays no part. Only small entries are read, and never more than ``ENTRY_LIMIT`` bytes of
one, so a ZIP bomb costs nothing.

``sample`` makes a small file of each type (for the simulation, the tests and the bench).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from typing import IO

from dk2020flow.definition.model import DOCUMENT_TYPES

HEAD = 16
"""Bytes of the file's start the signatures need."""
ENTRY_LIMIT = 1_000_000
"""The most read of one entry of a ZIP-based file (``[Content_Types].xml`` is a few kB)."""

PDF = b"%PDF-"
PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"
ZIP = b"PK\x03\x04"

OOXML_MAIN = {
    "docx": (
        "word/document.xml",
        b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    ),
    "xlsx": (
        "xl/workbook.xml",
        b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
    ),
}
"""The main part of each Office Open XML type, and the content type that names it."""
ODF = ("odt", "ods")
"""OpenDocument types: the ``mimetype`` entry holds their media type exactly."""

LABELS = {
    "pdf": "a PDF document",
    "docx": "a Word document (docx)",
    "xlsx": "an Excel workbook (xlsx)",
    "odt": "an OpenDocument text (odt)",
    "ods": "an OpenDocument spreadsheet (ods)",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
}
EXTENSIONS = {"pdf": "pdf", "docx": "docx", "xlsx": "xlsx", "odt": "odt", "ods": "ods"}
EXTENSIONS.update({"png": "png", "jpeg": "jpg"})


def sniff(file: IO[bytes]) -> str | None:
    """The document type of the (seekable) ``file`` by its content, or None for none of them."""
    file.seek(0)
    head = file.read(HEAD)
    if head.startswith(PDF):
        return "pdf"
    if head.startswith(PNG):
        return "png"
    if head.startswith(JPEG):
        return "jpeg"
    if head.startswith(ZIP):
        return _zip_kind(file)
    return None


def describe(kind: str | None) -> str:
    """What a sniffed file is, for a message: ``a PNG image``; for None, what it is not."""
    if kind is None:
        return "not a file of a type dk2020flow recognises"
    return LABELS.get(kind, kind)


def _zip_kind(file: IO[bytes]) -> str | None:
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                mimetype = _entry(archive, "mimetype")
                for kind in ODF:
                    if mimetype is not None and mimetype.strip() == DOCUMENT_TYPES[kind].encode():
                        return kind
            if "[Content_Types].xml" in names:
                types = _entry(archive, "[Content_Types].xml")
                for kind, (part, content_type) in OOXML_MAIN.items():
                    if types is not None and part in names and content_type in types:
                        return kind
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError):
        return None  # not a ZIP after all, encrypted, or compressed in a way zipfile lacks
    except (OSError, EOFError, ValueError, zlib.error):
        return None  # a damaged archive
    return None


def _entry(archive: zipfile.ZipFile, name: str) -> bytes | None:
    """The entry's bytes, or None when it is larger than ``ENTRY_LIMIT``."""
    with archive.open(name) as entry:
        data = entry.read(ENTRY_LIMIT + 1)
    return None if len(data) > ENTRY_LIMIT else data


# ----------------------------------------------------------------------------- samples


def sample(kind: str, text: str = "dk2020flow") -> bytes:
    """A small, well-formed file of document type ``kind`` (``sniff`` recognises it)."""
    if kind == "pdf":
        return _pdf(text)
    if kind == "png":
        return _png()
    if kind == "jpeg":
        # The JPEG markers without image data: the shape of a JPEG, for the checks only.
        return JPEG + b"\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
    if kind in OOXML_MAIN:
        return _ooxml(kind, text)
    if kind in ODF:
        return _odf(kind, text)
    raise ValueError(f"no sample of document type {kind!r}")


def _pdf(text: str) -> bytes:
    safe = text.encode("latin-1", "replace").replace(b"\\", b"\\\\")
    safe = safe.replace(b"(", b"\\(").replace(b")", b"\\)")
    stream = b"BT /F1 12 Tf 72 770 Td (" + safe + b") Tj ET"
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R"
        b"/Resources<</Font<</F1 5 0 R>>>>>>",
        b"<</Length " + str(len(stream)).encode() + b">>stream\n" + stream + b"\nendstream",
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<</Size {len(objects) + 1}/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\x2e\x7d\x32")  # filter 0, one green pixel
    return PNG + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _ooxml(kind: str, text: str) -> bytes:
    part, content_type = OOXML_MAIN[kind]
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if kind == "docx":
        body = (
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            f"<w:body><w:p><w:r><w:t>{escaped}</w:t></w:r></w:p></w:body></w:document>"
        )
    else:
        body = (
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            '<sheets><sheet name="Ark1" sheetId="1"/></sheets></workbook>'
        )
    types = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        f'<Override PartName="/{part}" ContentType="{content_type.decode()}"/></Types>'
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        f'relationships/officeDocument" Target="{part}"/></Relationships>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr("_rels/.rels", rels)
        archive.writestr(part, body)
    return buffer.getvalue()


def _odf(kind: str, text: str) -> bytes:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    office = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
    body = (
        f'<office:document-content xmlns:office="{office}" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f"<office:body><office:text><text:p>{escaped}</text:p></office:text></office:body>"
        "</office:document-content>"
    )
    manifest = (
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{DOCUMENT_TYPES[kind]}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # The mimetype entry first and stored uncompressed, as the OpenDocument format asks.
        archive.writestr("mimetype", DOCUMENT_TYPES[kind], compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", body, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()
