"""``dk2020flow outbox …`` (the operator's view of mail) and ``dk2020flow mail preview``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dk2020flow.cli.common import (
    DbOption,
    JsonOption,
    NowOption,
    WorkflowOption,
    err,
    handle_errors,
    local,
    open_reader,
    open_service,
    out,
    parse_now,
    print_json,
)
from dk2020flow.store.port import OutboxStatus  # the type of `outbox list --status`

if TYPE_CHECKING:
    from dk2020flow.store.port import OutboxMessage


outbox_app = typer.Typer(
    no_args_is_help=True,
    help="The outbox: list, inspect, retry and purge outgoing mail.",
)
mail_app = typer.Typer(no_args_is_help=True, help="Preview the mail a case would get.")


def _addresses(pairs: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{name} <{email}>" if name else email for name, email in pairs) or "—"


def _message_json(msg: OutboxMessage, *, full: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": msg.id,
        "case_id": msg.case_id,
        "status": msg.status.value,
        "template": msg.template,
        "language": msg.language,
        "to": [{"name": n, "email": e} for n, e in msg.to],
        "cc": [{"name": n, "email": e} for n, e in msg.cc],
        "subject": msg.subject,
        "attempts": msg.attempts,
        "not_before": msg.not_before,
        "next_attempt_at": msg.next_attempt_at,
        "lease_until": msg.lease_until,
        "last_error": msg.last_error,
        "created_at": msg.created_at,
        "sent_at": msg.sent_at,
        "message_id": msg.message_id,
        "attachments": ["invitation.ics"] if msg.ics else [],
    }
    if full:
        data.update(text=msg.text, html=msg.html, ics=msg.ics)
    return data


_STYLE = {
    OutboxStatus.PENDING: "cyan",
    OutboxStatus.SENDING: "blue",
    OutboxStatus.SENT: "green",
    OutboxStatus.DEAD: "red",
    OutboxStatus.PARKED: "yellow",
}


@outbox_app.command("list")
@handle_errors
def list_command(
    status: Annotated[
        OutboxStatus | None, typer.Option("--status", "-s", help="Only messages in this status.")
    ] = None,
    case: Annotated[
        str | None,
        typer.Option(
            "--case", "-c", help="Only one case's messages (#NUMBER, organisation code or name)."
        ),
    ] = None,
    workflow: WorkflowOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 100,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List messages, newest first."""
    messages = open_reader(db).outbox(status=status, case_ref=case, workflow=workflow, limit=limit)
    if as_json:
        print_json([_message_json(m, full=False) for m in messages])
        return
    if not messages:
        out.print("No messages.")
        return
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for column in ("id", "status", "case", "template", "to", "subject", "tries", "when", "error"):
        table.add_column(column, overflow="fold")
    for m in messages:
        when = m.sent_at if m.status is OutboxStatus.SENT else m.next_attempt_at
        table.add_row(
            str(m.id),
            f"[{_STYLE[m.status]}]{m.status.value}[/]",
            str(m.case_id or "—"),
            f"{m.template}.{m.language}",
            _addresses(m.to),
            m.subject,
            str(m.attempts),
            local(when),
            (m.last_error or "")[:80],
        )
    out.print(table)


@outbox_app.command("show")
@handle_errors
def show_command(
    message_id: Annotated[int, typer.Argument(metavar="ID", help="The message's id.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one message: headers, both bodies, attachments and the last error."""
    msg = open_reader(db).outbox_message(message_id)
    if as_json:
        print_json(_message_json(msg, full=True))
        return
    rows = [
        ("Id", str(msg.id)),
        ("Status", msg.status.value),
        ("Case", str(msg.case_id or "—")),
        ("Message-ID", msg.message_id),
        ("To", _addresses(msg.to)),
        ("Cc", _addresses(msg.cc)),
        ("Subject", msg.subject),
        ("Template", f"{msg.template} ({msg.language})"),
        ("Created", local(msg.created_at)),
        ("Not before", local(msg.not_before)),
        ("Attempts", str(msg.attempts)),
        ("Next attempt", local(msg.next_attempt_at)),
        ("Lease until", local(msg.lease_until)),
        ("Sent", local(msg.sent_at)),
        ("Attachments", "invitation.ics (text/calendar)" if msg.ics else "—"),
        ("Last error", msg.last_error or "—"),
    ]
    for label, value in rows:
        out.print(f"{label + ':':<14}{value}", markup=False)
    out.print("\n--- text ---", markup=False)
    out.print(msg.text, markup=False)
    out.print("\n--- html ---", markup=False)
    out.print(msg.html or "(none)", markup=False)


@outbox_app.command("retry")
@handle_errors
def retry_command(
    message_id: Annotated[
        int | None, typer.Argument(metavar="[ID]", help="The dead or parked message to send again.")
    ] = None,
    all_dead: Annotated[
        bool, typer.Option("--all-dead", help="Send every dead message again.")
    ] = False,
    all_parked: Annotated[
        bool, typer.Option("--all-parked", help="Send every parked message again.")
    ] = False,
    now: NowOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put dead (or parked) messages back in the queue; their attempts start over.

    The running daemon picks them up at its next sweep.
    """
    if (message_id is None) == (not (all_dead or all_parked)):
        raise typer.BadParameter("give a message ID, or --all-dead / --all-parked (not both)")
    service = open_service(db, now)
    requeued: list[int] = []
    refused: list[tuple[int, str]] = []
    wanted = [message_id] if message_id is not None else []
    for status, chosen in ((OutboxStatus.DEAD, all_dead), (OutboxStatus.PARKED, all_parked)):
        if chosen:
            wanted.extend(m.id for m in service.outbox(status=status, limit=100_000))
    for row_id in wanted:
        done, why = service.retry_message(row_id)
        if done:
            requeued.append(row_id)
        else:
            refused.append((row_id, why))
    if as_json:
        print_json({"requeued": requeued, "refused": [{"id": i, "reason": s} for i, s in refused]})
    else:
        for row_id, why in refused:
            err.print(f"message {row_id} not retried: {why}", markup=False)
        if requeued:
            out.print(f"Requeued {len(requeued)} message(s): {_ids(requeued)}", markup=False)
        elif not refused:
            out.print("Nothing to retry.")
    if refused:
        raise typer.Exit(1)


def _ids(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:20])
    return shown + (f" … (+{len(ids) - 20})" if len(ids) > 20 else "")


@outbox_app.command("purge")
@handle_errors
def purge_command(
    sent_before: Annotated[
        str,
        typer.Option(
            "--sent-before",
            help="Delete sent messages sent before this date or instant (ISO 8601).",
        ),
    ],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete sent messages older than a date. Dead, parked and unsent mail is never purged."""
    parse_now(sent_before, "UTC", option="--sent-before")  # refused before the database
    service = open_service(db)
    before = parse_now(sent_before, option="--sent-before")  # local: the display zone
    count = service.purge_sent(before)
    if as_json:
        print_json({"purged": count, "sent_before": before})
    else:
        out.print(f"Purged {count} sent message(s) sent before {local(before)}.")


# ----------------------------------------------------------------------------- preview


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "case"


@mail_app.command("preview")
@handle_errors
def preview_command(
    case: Annotated[str, typer.Argument(help="The case: id, organisation code or name.")],
    template: Annotated[str, typer.Argument(help="The template's name, e.g. decision_reminder.")],
    lang: Annotated[
        str | None,
        typer.Option("--lang", "-l", help="Language (e.g. da, en); default: the recipient's."),
    ] = None,
    workflow: WorkflowOption = None,
    html: Annotated[bool, typer.Option("--html", help="Print the HTML body instead.")] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the HTML version into this folder."),
    ] = None,
    now: NowOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show exactly what a template would send to a case now (nothing is queued)."""
    service = open_service(db, now)
    previews = service.preview(case, template, language=lang, workflow=workflow)
    if as_json:
        print_json(
            [
                {
                    "to": [{"name": n, "email": e} for n, e in p.to],
                    "cc": [{"name": n, "email": e} for n, e in p.cc],
                    "language": p.language,
                    "subject": p.mail.subject,
                    "text": p.mail.text,
                    "html": p.mail.html,
                }
                for p in previews
            ]
        )
        return
    for number, preview in enumerate(previews):
        if number:
            out.print("\n" + "=" * 72 + "\n")
        if html:
            out.print(preview.mail.html, markup=False)
            continue
        out.print(f"To:       {_addresses(preview.to)}", markup=False)
        out.print(f"Cc:       {_addresses(preview.cc)}", markup=False)
        out.print(f"Subject:  {preview.mail.subject}", markup=False)
        out.print(f"Language: {preview.language}", markup=False)
        out.print("", markup=False)
        out.print(preview.mail.text, markup=False)
        # Written only where asked: never a fixed, shared folder such as /tmp (#15.20).
        if out_dir is None:
            out.print(
                "\n(HTML version: run with --html to print it, or --out DIR to write it to a file)",
                markup=False,
            )
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{_safe(case)}-{_safe(template)}.{preview.language}.html"
        path.write_text(preview.mail.html, encoding="utf-8")
        out.print(f"\n(HTML version: {path} — or run with --html to print it)", markup=False)
