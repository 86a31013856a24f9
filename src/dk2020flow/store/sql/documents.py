"""``DocumentsTx``: the documents uploaded to cases, and their bytes when the database keeps them.

A document's row says where its bytes are (``storage``, ``storage_key``); with the database
storage (the default) they are in ``document_contents``, written in the same transaction as
the row and the case's ``document`` event (``service/documents.py``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, select

from dk2020flow.engine.records import EventKind
from dk2020flow.store import tables as t
from dk2020flow.store.port import NewDocument, StoredDocument
from dk2020flow.store.sql.base import SqlBase

_d = t.documents.c

DOCUMENTS_OF_CASE = (
    select(t.documents).where(_d.case_id == bindparam("case_id")).order_by(_d.id.desc())
)
DOCUMENT_BY_ID = select(t.documents).where(_d.id == bindparam("id"))
CONTENT_BY_ID = select(t.document_contents.c.content).where(
    t.document_contents.c.document_id == bindparam("id")
)
INSERT_DOCUMENT = insert(t.documents).returning(_d.id)
INSERT_CONTENT = insert(t.document_contents)

_e = t.events.c
ENTRIES_AND_DOCUMENTS = (
    select(_e.kind, _e.from_state, _e.to_state, _e.trigger, _e.data)
    .where(
        _e.case_id == bindparam("case_id"),
        _e.kind.in_(
            [EventKind.OPENED, EventKind.TRANSITION, EventKind.MIGRATED, EventKind.DOCUMENT]
        ),
    )
    .order_by(_e.seq)
)
"""A case's events that enter a state or hand in a document, in order (``(case_id, seq)``)."""


def _to_document(row: Any) -> StoredDocument:
    return StoredDocument(
        id=int(row.id),
        case_id=int(row.case_id),
        slot=row.slot,
        filename=row.filename,
        content_type=row.content_type,
        size=int(row.size),
        sha256=row.sha256,
        storage=row.storage,
        storage_key=row.storage_key,
        uploaded_by=row.uploaded_by,
        uploaded_role=row.uploaded_role,
        uploaded_at=row.uploaded_at,
    )


class SqlDocumentsTx(SqlBase):
    """``port.DocumentsTx`` over the transaction's connection."""

    def insert_document(
        self, document: NewDocument, content: bytes | None = None
    ) -> StoredDocument:
        fields = _fields(document)
        document_id = self._conn.execute(INSERT_DOCUMENT, fields).scalar_one()
        if content is not None:
            self._conn.execute(INSERT_CONTENT, {"document_id": document_id, "content": content})
        return StoredDocument(id=int(document_id), **fields)

    def documents_of(self, case_id: int) -> list[StoredDocument]:
        return [
            _to_document(row) for row in self._conn.execute(DOCUMENTS_OF_CASE, {"case_id": case_id})
        ]

    def document(self, document_id: int) -> StoredDocument | None:
        row = self._conn.execute(DOCUMENT_BY_ID, {"id": document_id}).first()
        return None if row is None else _to_document(row)

    def document_content(self, document_id: int) -> bytes | None:
        content = self._conn.execute(CONTENT_BY_ID, {"id": document_id}).scalar()
        return None if content is None else bytes(content)

    def documents_in_state(self, case_id: int) -> dict[str, int]:
        """Read from the log, not from the upload times: an upload and a transition at the
        same instant (a rehearsal's ``--now``) are still in the order they happened."""
        current: dict[str, int] = {}
        for row in self._conn.execute(ENTRIES_AND_DOCUMENTS, {"case_id": case_id}):
            if row.kind == EventKind.DOCUMENT:
                document_id = (row.data or {}).get("document_id")
                if isinstance(document_id, int) and row.trigger:
                    current[str(row.trigger)] = document_id
            elif row.kind == EventKind.OPENED or row.to_state != row.from_state:
                current = {}
        return current


def _fields(document: NewDocument) -> dict[str, Any]:
    return {name: getattr(document, name) for name in NewDocument.__dataclass_fields__}
