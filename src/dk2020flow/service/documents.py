"""Documents handed to a case: checked by their bytes, stored, listed, read back.

``Service.documents`` (``Documents``) is the one door for them. An upload

1. is refused before a byte is read when the workflow declares no such document, the
   case is closed, or the role may not upload it (a refusal for the role is logged in the
   case's history, as for a trigger);
2. is read from its stream in chunks into a staging file, never more than the document's
   ``max_size`` plus one byte, while its SHA-256 is computed;
3. has its type read from its bytes (``filetypes.sniff``: ``%PDF-``, the image signatures,
   the ZIP-based formats' ``[Content_Types].xml`` / ``mimetype`` entries), which must be
   one of the document's ``types`` whatever the file is called;
4. is stored with its checksum, uploader and time, and recorded in the case's history (a
   ``document`` event, hash-chained like every event) — all or nothing:

   - **database** (the default): the bytes go into ``document_contents`` in the same
     transaction as the row and the event;
   - **directory**: the bytes are written to a temporary file in the case's folder,
     fsynced, and renamed to their final name once checked; the row is committed after,
     and the file removed again if that fails;
   - **s3**: the bytes are put to the bucket once checked; the row is committed after,
     and the object deleted again if that fails.

   A refused or failed upload leaves no row, no bytes, no file and no object behind.

Reading (``case_documents``, ``content``) takes the roles the reader holds on the case:
the web's staff roles and the workflow's roles (the portal says which a participant holds
on which case; the command line reads as ``OPERATOR_ROLES``). docs/documents.md has the
settings and the rules.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import unicodedata
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from dk2020flow.definition.model import DOCUMENT_TYPES, DocumentDef, text_in
from dk2020flow.engine.decide import documents_needed
from dk2020flow.engine.records import CaseSnapshot, EventKind, EventRecord
from dk2020flow.errors import NotFoundError, RefusalReason, RefusedError, quoted
from dk2020flow.service import filetypes
from dk2020flow.service.document_storage import (
    CHUNK,
    DocumentIntegrityError,
    DocumentStorageError,
    Staged,
    storage_for,
)
from dk2020flow.service.roles import ADMIN, READ_ONLY
from dk2020flow.store.port import DocumentsTx, NewDocument, StoredDocument

if TYPE_CHECKING:
    from dk2020flow.engine.machine import CompiledWorkflow
    from dk2020flow.service.core import Service

__all__ = [
    "OPERATOR_ROLES",
    "CaseDocuments",
    "DocumentContent",
    "DocumentIntegrityError",
    "DocumentRefusedError",
    "DocumentSlot",
    "DocumentStorageError",
    "Documents",
    "StoredDocument",
    "handed_in",
]

OPERATOR_ROLES = (ADMIN,)
"""The roles the command line reads documents with: its user holds the database itself."""
READER_ROLES = frozenset({ADMIN, READ_ONLY})
"""Staff roles that read every case's documents besides the workflow's own roles."""
MAX_FILENAME = 255


class DocumentRefusedError(RefusedError):
    """An upload refused for its content: its type (by its bytes), its size, or nothing in
    it. Nothing was stored. ``problem`` says which (``type``, ``size``, ``empty``), so the
    web can answer 415 or 413."""

    def __init__(self, message: str, *, problem: Literal["type", "size", "empty"]) -> None:
        super().__init__(RefusalReason.INVALID_DATA, message)
        self.problem = problem


class Readable(Protocol):
    """What an upload is read from: a binary file or stream (``read(size)``)."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class DocumentSlot:
    """A document the case's workflow declares, as it stands on the case."""

    name: str
    title: str
    description: str
    types: tuple[str, ...]
    max_size: int
    upload_roles: tuple[str, ...]
    needed_by: tuple[str, ...]
    """Triggers from the case's current state that need it."""
    current: StoredDocument | None
    """The newest upload since the case entered its state (it counts for those triggers)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseDocuments:
    case: CaseSnapshot
    slots: tuple[DocumentSlot, ...]
    documents: tuple[StoredDocument, ...]
    """Every upload, newest first."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DocumentContent:
    """A document and its bytes, read in chunks; the last chunk is checked against the
    recorded SHA-256 (``DocumentIntegrityError`` when they differ)."""

    document: StoredDocument
    chunks: Iterator[bytes]

    def read(self) -> bytes:
        return b"".join(self.chunks)


def handed_in(
    tx: DocumentsTx, wf: CompiledWorkflow, case: CaseSnapshot, trigger: str
) -> frozenset[str]:
    """The documents the case was handed since it entered its state, for the engine's
    ``fire_trigger(documents=…)``; no query when the trigger needs none from this state."""
    if not documents_needed(wf, case.state, trigger):
        return frozenset()
    return frozenset(tx.documents_in_state(case.id or 0))


class Documents:
    """Upload, list and read the documents of cases (``Service.documents``)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.store = service.store

    # ------------------------------------------------------------------ upload

    def attach(
        self,
        ref: str,
        document: str,
        stream: Readable,
        *,
        filename: str,
        actor: str,
        role: str | None,
        workflow: str | None = None,
        now: dt.datetime | None = None,
    ) -> StoredDocument:
        """Upload ``stream`` as ``document`` of the case ``ref`` (see the module's text)."""
        now = now or self.service.clock.now()
        with self.store.read() as tx:
            case = self.service.resolve(tx, ref, workflow)
            wf = self.service.compiled(tx, case.definition_id)
        spec = _declared(wf, document)
        if case.closed:
            raise RefusedError(
                RefusalReason.INVALID_FROM_STATE,
                f"case {case.id} is closed (state {case.state!r}): it takes no more documents",
            )
        allowed = wf.workflow.upload_roles(document)
        if role not in allowed:
            refused = RefusedError(
                RefusalReason.ROLE,
                f"role {role!r} may not upload {document!r}; allowed roles: "
                f"{', '.join(allowed) or 'none'}",
            )
            self._log_refusal(case, document, actor, role, refused, now)
            raise refused
        storage = storage_for(self.service.settings)
        limit = spec.max_bytes
        staged = storage.stage(case.id or 0)
        try:
            size, digest = _spool(stream, staged, limit, document, filename)
            kind = filetypes.sniff(staged.file)
            if kind is None or kind not in spec.types:
                raise DocumentRefusedError(
                    _wrong_type(filename, document, kind, spec.types), problem="type"
                )
            media_type = DOCUMENT_TYPES[kind]
            key, content = staged.publish(media_type, digest)
            record = NewDocument(
                case_id=case.id or 0,
                slot=document,
                filename=_clean_filename(filename, document, kind),
                content_type=media_type,
                size=size,
                sha256=digest,
                storage=storage.name,
                storage_key=key,
                uploaded_by=actor,
                uploaded_role=role,
                uploaded_at=now,
            )
            try:
                return self._record(record, content)
            except BaseException:
                staged.withdraw()
                raise
        finally:
            staged.close()

    def _record(self, record: NewDocument, content: bytes | None) -> StoredDocument:
        """The row (and the bytes, for the database) and the case's event, in one transaction."""
        with self.store.transaction() as tx:
            case = tx.load_case(record.case_id)
            if case.closed:
                raise RefusedError(
                    RefusalReason.INVALID_FROM_STATE,
                    f"case {case.id} was closed meanwhile (state {case.state!r}); "
                    "nothing was stored",
                )
            stored = tx.insert_document(record, content)
            tx.append_event(
                record.case_id,
                EventRecord(
                    kind=EventKind.DOCUMENT,
                    at=record.uploaded_at,
                    actor=record.uploaded_by,
                    role=record.uploaded_role,
                    trigger=record.slot,
                    from_state=case.state,
                    to_state=case.state,
                    data={
                        "document_id": stored.id,
                        "document": stored.slot,
                        "filename": stored.filename,
                        "content_type": stored.content_type,
                        "size": stored.size,
                        "sha256": stored.sha256,
                    },
                ),
            )
            return stored

    def _log_refusal(
        self,
        case: CaseSnapshot,
        document: str,
        actor: str,
        role: str | None,
        refused: RefusedError,
        now: dt.datetime,
    ) -> None:
        """Acting without the role is security-relevant: the refusal stays in the history."""
        with self.store.transaction() as tx:
            tx.append_event(
                case.id or 0,
                EventRecord(
                    kind=EventKind.REFUSED,
                    at=now,
                    actor=actor,
                    role=role,
                    trigger="attach",
                    from_state=case.state,
                    to_state=case.state,
                    comment=str(refused),
                    data={"document": document},
                ),
            )

    # ------------------------------------------------------------------ reading

    def case_documents(
        self, ref: str, *, roles: Collection[str], workflow: str | None = None
    ) -> CaseDocuments:
        """The case's declared documents (with the upload that counts now) and every upload."""
        with self.store.read() as tx:
            case = self.service.resolve(tx, ref, workflow)
            wf = self.service.compiled(tx, case.definition_id)
            _may_read(wf, case, roles)
            documents = tuple(tx.documents_of(case.id or 0))
            current = tx.documents_in_state(case.id or 0)
        return CaseDocuments(
            case=case, slots=_slots(wf, case, documents, current), documents=documents
        )

    def content(
        self,
        ref: str,
        document_id: int,
        *,
        roles: Collection[str],
        workflow: str | None = None,
    ) -> DocumentContent:
        """A document of the case ``ref`` and its bytes (checked against its checksum)."""
        with self.store.read() as tx:
            case = self.service.resolve(tx, ref, workflow)
            wf = self.service.compiled(tx, case.definition_id)
            _may_read(wf, case, roles)
            document = tx.document(document_id)
            if document is None or document.case_id != case.id:
                raise NotFoundError(
                    f"case {case.id} has no document {document_id} "
                    f"(`dk2020flow case documents #{case.id}` lists them)"
                )
            data = tx.document_content(document_id) if document.storage == "database" else None
        if document.storage == "database":
            if data is None:
                raise DocumentIntegrityError(
                    f"the bytes of document {document_id} are missing from the database"
                )
            chunks: Iterator[bytes] = (
                data[start : start + CHUNK] for start in range(0, len(data), CHUNK)
            )
        else:
            chunks = storage_for(self.service.settings, document.storage).chunks(document)
        return DocumentContent(document=document, chunks=_verified(document, chunks))


# ----------------------------------------------------------------------------- checks


def _declared(wf: CompiledWorkflow, document: str) -> DocumentDef:
    spec = wf.workflow.documents.get(document)
    if spec is None:
        names = ", ".join(wf.workflow.documents) or "none"
        raise RefusedError(
            RefusalReason.INVALID_DATA,
            f"{quoted(document)} is not a document of {wf.workflow.workflow}; documents: {names}",
        )
    return spec


def _may_read(wf: CompiledWorkflow, case: CaseSnapshot, roles: Collection[str]) -> None:
    """Staff (``admin``, ``read_only``) and the workflow's roles read a case's documents;
    the caller vouches that the roles are held on this case (the portal checks whose)."""
    if not set(roles) & (READER_ROLES | set(wf.workflow.roles)):
        shown = ", ".join(sorted(roles)) or "none"
        raise RefusedError(
            RefusalReason.ROLE,
            f"roles {shown} may not read the documents of case {case.id}",
        )


def _slots(
    wf: CompiledWorkflow,
    case: CaseSnapshot,
    documents: Sequence[StoredDocument],
    current: Mapping[str, int],
) -> tuple[DocumentSlot, ...]:
    definition = wf.workflow
    language = definition.default_language
    needed: dict[str, list[str]] = {}
    for transition in definition.transitions:
        if not transition.automatic and case.state in definition.sources(transition):
            for name in transition.needs_documents:
                triggers = needed.setdefault(name, [])
                if transition.trigger not in triggers:
                    triggers.append(transition.trigger)
    by_id = {document.id: document for document in documents}
    return tuple(
        DocumentSlot(
            name=name,
            title=text_in(spec.title, language, name),
            description=spec.description,
            types=spec.types,
            max_size=spec.max_bytes,
            upload_roles=definition.upload_roles(name),
            needed_by=tuple(needed.get(name, ())),
            current=by_id.get(current.get(name, 0)),
        )
        for name, spec in definition.documents.items()
    )


def _wrong_type(filename: str, document: str, kind: str | None, types: Sequence[str]) -> str:
    allowed = _type_list(types)
    why = "(a file's type is read from its bytes, not its name); nothing was stored"
    if kind is None:
        return (
            f"{quoted(filename)} is not a {allowed} file by its content, which {document!r} "
            f"takes {why}"
        )
    return (
        f"{quoted(filename)} is {filetypes.describe(kind)} by its content, but {document!r} "
        f"takes {allowed} files {why}"
    )


def _type_list(types: Sequence[str]) -> str:
    names = [t.upper() if t != "jpeg" else "JPEG" for t in types]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _spool(
    stream: Readable, staged: Staged, limit: int, document: str, filename: str
) -> tuple[int, str]:
    """Copy ``stream`` into ``staged`` in chunks, reading at most ``limit + 1`` bytes;
    (size, SHA-256 in hex). Over the limit or empty: ``DocumentRefusedError``."""
    digest = hashlib.sha256()
    total = 0
    while total <= limit:
        chunk = stream.read(min(CHUNK, limit + 1 - total))
        if not chunk:
            break
        total += len(chunk)
        digest.update(chunk)
        staged.write(chunk)
    if total > limit:
        raise DocumentRefusedError(
            f"{quoted(filename)} is larger than {_size(limit)}, the limit for {document!r}; "
            "nothing was stored",
            problem="size",
        )
    if total == 0:
        raise DocumentRefusedError(
            f"{quoted(filename)} is empty; nothing was stored", problem="empty"
        )
    return total, digest.hexdigest()


def _size(count: int) -> str:
    for unit, scale in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{count} bytes"


def _clean_filename(filename: str, document: str, kind: str) -> str:
    """The name to keep: its last part only, no control characters, at most 255 characters;
    ``<document>.<ext>`` when nothing is left."""
    name = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if not name:
        return f"{document}.{filetypes.EXTENSIONS[kind]}"
    if len(name) > MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 10:
            return stem[: MAX_FILENAME - len(extension) - 1] + "." + extension
        return name[:MAX_FILENAME]
    return name


def _verified(document: StoredDocument, chunks: Iterator[bytes]) -> Iterator[bytes]:
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    if size != document.size or digest.hexdigest() != document.sha256:
        raise DocumentIntegrityError(
            f"document {document.id} ({document.filename}) does not match the checksum taken "
            f"when it was uploaded (size {size}, recorded {document.size}): its stored bytes "
            "changed"
        )
