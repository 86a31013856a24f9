"""Where uploaded documents' bytes are kept: the database, a directory, an S3-compatible store.

``storage_for(settings)`` gives the storage the setting ``document_storage`` names (or the
one a stored document names, to read it). An upload is *staged* (``Storage.stage``): its
bytes are written as they are read, checked by ``service/documents.py``, then *published*
to their place — before the transaction that records the row, which *withdraws* them again
when it fails. ``close`` removes whatever staging is left, in every case, so a refused or
failed upload leaves nothing behind. docs/documents.md has the settings.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from dk2020flow.errors import Dk2020flowError
from dk2020flow.store.port import StoredDocument

if TYPE_CHECKING:
    from dk2020flow.settings import Settings

CHUNK = 64 * 1024
"""Bytes read from an upload's stream (and from a stored document) at a time."""
SPOOL_IN_MEMORY = 1024 * 1024
"""An upload staged for the database or S3 stays in memory up to this size, then on disk."""


class DocumentStorageError(Dk2020flowError):
    """The document storage cannot be used: a setting is missing or wrong, the directory or
    the S3 store refuses (nothing was stored)."""

    exit_code = 2


class DocumentIntegrityError(Dk2020flowError):
    """A stored document's bytes are missing or no longer match the checksum taken when it
    was uploaded."""


class Staged(Protocol):
    """The bytes of one upload on their way in."""

    @property
    def file(self) -> IO[bytes]:
        """The bytes written so far, seekable (``filetypes.sniff`` reads them)."""
        ...

    def write(self, chunk: bytes) -> None: ...
    def publish(self, media_type: str, sha256: str) -> tuple[str, bytes | None]:
        """Put the checked bytes in their place: (storage key, the bytes for the database
        row, or None when they are kept elsewhere)."""
        ...

    def withdraw(self) -> None:
        """Remove what ``publish`` put (its row did not commit)."""
        ...

    def close(self) -> None:
        """Remove what is left of the staging (always called; idempotent)."""
        ...


class Storage(Protocol):
    name: str

    def stage(self, case_id: int) -> Staged: ...
    def chunks(self, document: StoredDocument) -> Iterator[bytes]: ...


class _Spooled:
    """An upload in a spooled temporary file (memory up to ``SPOOL_IN_MEMORY``, then disk)."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed by close()

    @property
    def file(self) -> IO[bytes]:
        return self._file

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def read_all(self) -> bytes:
        self._file.seek(0)
        return self._file.read()

    def publish(self, media_type: str, sha256: str) -> tuple[str, bytes | None]:
        return "", self.read_all()

    def withdraw(self) -> None:
        return None

    def close(self) -> None:
        self._file.close()


class DatabaseStorage:
    """The bytes in ``document_contents``, written with the row (the default)."""

    name = "database"

    def stage(self, case_id: int) -> Staged:
        return _Spooled()

    def chunks(self, document: StoredDocument) -> Iterator[bytes]:
        raise DocumentStorageError("documents in the database are read with their row")


class _InDirectory:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        handle, name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
        self._file: IO[bytes] = os.fdopen(handle, "w+b")
        self._temporary: Path | None = Path(name)
        self._final: Path | None = None

    @property
    def file(self) -> IO[bytes]:
        return self._file

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def publish(self, media_type: str, sha256: str) -> tuple[str, bytes | None]:
        assert self._temporary is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self.folder / uuid.uuid4().hex
        os.replace(self._temporary, final)
        self._temporary, self._final = None, final
        _fsync_folder(self.folder)
        return f"{self.folder.name}/{final.name}", None

    def withdraw(self) -> None:
        if self._final is not None:
            self._final.unlink(missing_ok=True)
            self._final = None
            _fsync_folder(self.folder)

    def close(self) -> None:
        self._file.close()
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)
            self._temporary = None


def _fsync_folder(folder: Path) -> None:
    """Make a rename or removal in ``folder`` durable (the folder's own entry)."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class DirectoryStorage:
    """The bytes as files ``<directory>/<case id>/<random name>`` (the folder must exist)."""

    name = "directory"

    def __init__(self, root: Path) -> None:
        self.root = root

    def stage(self, case_id: int) -> Staged:
        if not self.root.is_dir():
            raise DocumentStorageError(
                f"the document directory {self.root} does not exist (DK2020FLOW_DOCUMENT_DIRECTORY): "
                "create it, or correct the setting; nothing was stored"
            )
        folder = self.root / str(case_id)
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            return _InDirectory(folder)
        except OSError as exc:
            raise DocumentStorageError(
                f"cannot write in the document directory {folder}: {exc.strerror or exc}; "
                "nothing was stored"
            ) from exc

    def chunks(self, document: StoredDocument) -> Iterator[bytes]:
        root = self.root.resolve()
        path = (root / document.storage_key).resolve()
        if not path.is_relative_to(root) or path == root:
            raise DocumentIntegrityError(
                f"document {document.id} names a file outside the document directory"
            )
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise DocumentIntegrityError(
                f"the file of document {document.id} is missing: {path}"
            ) from None
        except OSError as exc:
            raise DocumentStorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return _read_file(handle)


def _read_file(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


class _ToBucket(_Spooled):
    def __init__(self, storage: S3Storage, case_id: int) -> None:
        super().__init__()
        self.storage = storage
        self.case_id = case_id
        self._key: str | None = None

    def publish(self, media_type: str, sha256: str) -> tuple[str, bytes | None]:
        key = f"{self.storage.prefix}{self.case_id}/{uuid.uuid4().hex}"
        self._file.seek(0)
        with self.storage.errors("put"):
            self.storage.client.upload_fileobj(
                self._file,
                self.storage.bucket,
                key,
                ExtraArgs={"ContentType": media_type, "Metadata": {"sha256": sha256}},
            )
        self._key = key
        return key, None

    def withdraw(self) -> None:
        if self._key is not None:
            with self.storage.errors("delete"):
                self.storage.client.delete_object(Bucket=self.storage.bucket, Key=self._key)
            self._key = None


class S3Storage:
    """The bytes as objects ``<prefix><case id>/<random name>`` of an S3-compatible bucket.

    Credentials come from boto3's own chain (the environment's ``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``, a profile, an instance role), never from the settings."""

    name = "s3"

    def __init__(self, settings: Settings) -> None:
        if not settings.document_s3_bucket:
            raise DocumentStorageError(
                "the s3 document storage needs a bucket: set DK2020FLOW_DOCUMENT_S3_BUCKET"
            )
        self.bucket = settings.document_s3_bucket
        self.prefix = settings.document_s3_prefix
        self.endpoint = settings.document_s3_endpoint_url or "AWS S3"
        try:
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]
        except ImportError:
            raise DocumentStorageError(
                "the s3 document storage needs boto3: pip install 'dk2020flow[s3]'"
            ) from None

        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.document_s3_endpoint_url,
            region_name=settings.document_s3_region,
            config=Config(
                s3={"addressing_style": settings.document_s3_addressing_style},
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """boto3's errors as one ``DocumentStorageError`` naming the bucket."""
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
        )

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise DocumentStorageError(
                f"the S3 store ({self.endpoint}, bucket {self.bucket}) refused to {action}: "
                f"{error.get('Code', '?')} {error.get('Message', '')}".rstrip()
            ) from exc
        except BotoCoreError as exc:
            raise DocumentStorageError(
                f"the S3 store ({self.endpoint}, bucket {self.bucket}) cannot be used: {exc}"
            ) from exc

    def stage(self, case_id: int) -> Staged:
        return _ToBucket(self, case_id)

    def chunks(self, document: StoredDocument) -> Iterator[bytes]:
        with self.errors("get"):
            body = self.client.get_object(Bucket=self.bucket, Key=document.storage_key)["Body"]
        return self._read(body)

    def _read(self, body: Any) -> Iterator[bytes]:
        with contextlib.closing(body), self.errors("get"):
            yield from body.iter_chunks(CHUNK)


def storage_for(settings: Settings, kind: str | None = None) -> Storage:
    """The storage of ``kind`` (the setting ``document_storage`` when None)."""
    kind = kind or settings.document_storage
    if kind == "database":
        return DatabaseStorage()
    if kind == "directory":
        if settings.document_directory is None:
            raise DocumentStorageError(
                "the directory document storage needs a folder: set "
                "DK2020FLOW_DOCUMENT_DIRECTORY (or document_directory in the configuration)"
            )
        return DirectoryStorage(Path(settings.document_directory))
    if kind == "s3":
        return S3Storage(settings)
    raise DocumentStorageError(f"unknown document storage {kind!r}: database, directory or s3")
