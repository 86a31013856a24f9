"""`dk2020flow case attach | documents | download`: the documents handed to a case.

Registered on `case` (``cli/case.py``); each command calls ``Service.documents`` and prints.
The command line reads documents as an administrator (``OPERATOR_ROLES``): whoever runs it
holds the database.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from dk2020flow.cli.common import (
    ActorOption,
    DbOption,
    InvalidOptionError,
    JsonOption,
    NowOption,
    RoleOption,
    WorkflowOption,
    actor_name,
    handle_errors,
    local,
    open_service,
    out,
    print_json,
)

if TYPE_CHECKING:
    from dk2020flow.store.port import StoredDocument

documents_app = typer.Typer()

CaseArgument = Annotated[
    str, typer.Argument(help="Case number (#12), or organisation code or name.")
]


def _document(document: StoredDocument) -> dict[str, object]:
    return {
        "id": document.id,
        "case_id": document.case_id,
        "document": document.slot,
        "filename": document.filename,
        "content_type": document.content_type,
        "size": document.size,
        "sha256": document.sha256,
        "storage": document.storage,
        "uploaded_by": document.uploaded_by,
        "uploaded_role": document.uploaded_role,
        "uploaded_at": document.uploaded_at,
    }


def _size(count: int) -> str:
    for unit, scale in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{count} B"


@documents_app.command("attach")
@handle_errors
def attach(
    case: CaseArgument,
    document: Annotated[str, typer.Argument(help="The document, e.g. draft_plan.")],
    file: Annotated[Path, typer.Argument(help="The file to upload (- reads standard input).")],
    role: RoleOption,
    name: Annotated[
        str | None,
        typer.Option("--name", help="The file name to keep (default: FILE's name)."),
    ] = None,
    actor: ActorOption = None,
    workflow: WorkflowOption = None,
    db: DbOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Upload a document to a case: its type is read from its content, its size checked.

    A refusal (the type, the size, the role) says why, exits 3 and stores nothing.
    """
    service = open_service(db, now)
    stdin = str(file) == "-"
    filename = name or ("" if stdin else file.name)
    with _opened(file, stdin) as stream:
        stored = service.documents.attach(
            case,
            document,
            stream,
            filename=filename,
            actor=actor_name(actor),
            role=role,
            workflow=workflow,
        )
    if as_json:
        print_json(_document(stored))
        return
    out.print(
        f"case {stored.case_id}: {stored.slot} uploaded as document {stored.id} "
        f"({stored.filename}, {_size(stored.size)}, sha256 {stored.sha256[:12]}…)",
        markup=False,
    )


@contextlib.contextmanager
def _opened(file: Path, stdin: bool) -> Iterator[BinaryIO]:
    if stdin:
        yield sys.stdin.buffer
        return
    try:
        stream = file.open("rb")
    except OSError as exc:
        raise InvalidOptionError(f"FILE: cannot read {file}: {exc.strerror or exc}") from None
    with stream:
        yield stream


@documents_app.command("documents")
@handle_errors
def documents(
    case: CaseArgument,
    workflow: WorkflowOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The case's documents: what the workflow asks for, and every upload.

    Each upload with its checksum, uploader and time; for each declared document, the
    triggers that need it now and the upload that counts for them.
    """
    from dk2020flow.service.documents import OPERATOR_ROLES

    service = open_service(db)
    found = service.documents.case_documents(case, roles=OPERATOR_ROLES, workflow=workflow)
    if as_json:
        print_json(
            {
                "case_id": found.case.id,
                "state": found.case.state,
                "declared": [
                    {
                        "document": slot.name,
                        "title": slot.title,
                        "types": list(slot.types),
                        "max_size": slot.max_size,
                        "upload_roles": list(slot.upload_roles),
                        "needed_by": list(slot.needed_by),
                        "current": slot.current.id if slot.current else None,
                    }
                    for slot in found.slots
                ],
                "documents": [_document(d) for d in found.documents],
            }
        )
        return
    from rich.table import Table

    c = found.case
    out.print(f"[bold]case {c.id}[/] {c.organisation_name}, state {c.state}")
    declared = Table(title="documents the workflow asks for")
    for column in ("document", "title", "types", "max", "who uploads", "needed now by", "current"):
        declared.add_column(column)
    for slot in found.slots:
        declared.add_row(
            slot.name,
            slot.title,
            ", ".join(slot.types),
            _size(slot.max_size),
            ", ".join(slot.upload_roles) or "—",
            ", ".join(slot.needed_by) or "—",
            f"#{slot.current.id}" if slot.current else "—",
        )
    out.print(declared)
    uploads = Table(title=f"{len(found.documents)} upload(s)")
    for column in ("id", "document", "file", "type", "size", "sha256", "by", "at"):
        uploads.add_column(column)
    for d in found.documents:
        uploads.add_row(
            str(d.id),
            d.slot,
            d.filename,
            d.content_type,
            _size(d.size),
            d.sha256[:12] + "…",
            f"{d.uploaded_by} ({d.uploaded_role})" if d.uploaded_role else d.uploaded_by,
            local(d.uploaded_at),
        )
    out.print(uploads)


@documents_app.command("download")
@handle_errors
def download(
    case: CaseArgument,
    document_id: Annotated[int, typer.Argument(help="The document's id (`case documents`).")],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write it (- for standard output); default: its name, here.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the output file if it exists.")
    ] = False,
    workflow: WorkflowOption = None,
    db: DbOption = None,
) -> None:
    """Write a document to a file, checked against the checksum taken at upload.

    A document whose bytes do not match is not written.
    """
    from dk2020flow.service.documents import OPERATOR_ROLES

    service = open_service(db)
    content = service.documents.content(case, document_id, roles=OPERATOR_ROLES, workflow=workflow)
    if output == "-":
        for chunk in content.chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    target = Path(output) if output else Path(content.document.filename)
    if target.exists() and not force:
        raise InvalidOptionError(
            f"--output: {target} exists; give another name with -o, or --force to replace it"
        )
    folder = target.parent if str(target.parent) else Path()
    try:
        handle, partial = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise InvalidOptionError(f"--output: cannot write in {folder}: {exc.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as sink:
            for chunk in content.chunks:
                sink.write(chunk)
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    out.print(
        f"document {content.document.id} ({content.document.slot}) written to {target} "
        f"({_size(content.document.size)}, sha256 checked)",
        markup=False,
    )
