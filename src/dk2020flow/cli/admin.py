"""`dk2020flow db …`, `orgs …` (also called `participants …`) and `workflow load|list`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dk2020flow.cli.common import (
    DbOption,
    JsonOption,
    NowOption,
    handle_errors,
    local,
    open_reader,
    open_service,
    out,
    print_json,
    settings_for,
)

db_app = typer.Typer(no_args_is_help=True, help="Create and migrate the database.")
orgs_app = typer.Typer(
    no_args_is_help=True,
    help="Organisations (the programme's participants) and their contacts; "
    "`participants` is the same group.",
)


@db_app.command("upgrade")
@handle_errors
def upgrade(db: DbOption = None) -> None:
    """Bring the database to the newest schema (creates it if needed; `workflow load` adds a programme's organisations)."""
    from dk2020flow.service.database import upgrade_database

    done = upgrade_database(settings_for(db).database_url)
    out.print(f"database {done.url} is at revision {done.head}")


@db_app.command("status")
@handle_errors
def status(db: DbOption = None) -> None:
    """Show the schema revision of the database and of this release (exit 5 when behind)."""
    from dk2020flow.service.database import database_status

    found = database_status(settings_for(db).database_url)
    out.print(f"{found.url}: revision {found.current or 'none'}; this release needs {found.head}")
    if not found.up_to_date:
        out.print("run `dk2020flow db upgrade`")
        raise typer.Exit(5)


@orgs_app.command("import")
@handle_errors
def import_(
    file: Annotated[Path, typer.Argument(help="CSV of organisations and/or contacts.")],
    db: DbOption = None,
) -> None:
    """Import organisations and contacts from CSV: every row is checked; a bad file imports nothing."""
    done = open_service(db).import_participants(file)
    out.print(
        f"imported {done.organisations} organisations and {done.contacts} contacts from {file}"
    )


@orgs_app.command("list")
@handle_errors
def list_participants(
    region: Annotated[str | None, typer.Option("--region", help="Only this region.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the organisations the database knows."""
    rows = open_reader(db).organisations(region)
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} organisations")
    for column in ("code", "name", "kind", "country", "region", "group"):
        table.add_column(column)
    for m in rows:
        table.add_row(m.code, m.name, m.kind, m.country, m.region, m.group)
    out.print(table)


@orgs_app.command("forget")
@handle_errors
def forget(
    email: Annotated[str, typer.Argument(help="The person's e-mail address.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Remove it (without: only show what would go).")
    ] = False,
    db: DbOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Forget a person (GDPR): delete their contact rows, participant account and sessions,
    redact the mail to them; the case history shows "(forgotten person)" in their place.

    A dry run by default: it shows what would be removed and changes nothing; --yes
    removes it, in one transaction (docs/portal.md "Your data (GDPR)")."""
    from dk2020flow.service.privacy import counts_summary
    from dk2020flow.service.privacy import forget as forget_person

    plan = forget_person(open_service(db, now), email, apply=yes)
    if as_json:
        print_json(
            {
                "email": plan.email,
                "applied": plan.applied,
                "organisations": list(plan.organisations),
                "removed": dict(counts_summary(plan.counts)),
            }
        )
        return
    where = f" (contact of {', '.join(plan.organisations)})" if plan.organisations else ""
    head = "forgot" if plan.applied else "would forget"
    out.print(f"{head} {plan.email}{where}:", markup=False)
    for line in plan.lines():
        out.print(f"  {line}", markup=False)
    if not plan.applied:
        out.print("dry run: nothing changed; add --yes to remove it", markup=False)


@orgs_app.command("purge-access-log")
@handle_errors
def purge_access_log(
    older_than: Annotated[
        int,
        typer.Option("--older-than", help="Delete access log entries older than this many days."),
    ] = 730,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Delete access log entries (who read whose data) older than --older-than days."""
    from dk2020flow.service.privacy import purge_access_log as purge

    gone = purge(open_service(db, now), older_than)
    out.print(f"deleted {gone} access log entries older than {older_than} days")


def workflow_load(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Workflow files to store as definition versions, or the name of a shipped "
            "workflow (dk2020, eu_mission, status_reports)."
        ),
    ],
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Store workflow files in the database; an unchanged file is a no-op, a changed one a new version.

    Programme events are armed as of --now (default: the machine's clock): give a
    rehearsal's --now here too, or its event reminders count as past (docs/time.md).
    """
    from dk2020flow.bundled import workflow_path

    service = open_service(db, now)
    for given in paths:
        known = len(service.organisations())
        stored, created = service.load_workflow(workflow_path(given))
        verb = "loaded as a new version" if created else "unchanged (already loaded)"
        added = len(service.organisations()) - known
        data = f"; {added} organisation(s) added from its data set" if added else ""
        out.print(
            f"{stored.name} {stored.version_label} ({stored.content_hash[:12]}) {verb}: "
            f"id {stored.id}{data}"
        )


def workflow_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the stored definition versions."""
    stored = open_reader(db).definitions()
    if as_json:
        print_json(
            [
                {k: v for k, v in vars_of(d).items() if k not in {"source_text", "templates"}}
                for d in stored
            ]
        )
        return
    from rich.table import Table

    table = Table(title=f"{len(stored)} definition version(s)")
    for column in ("id", "workflow", "version", "hash", "loaded", "from"):
        table.add_column(column)
    for d in stored:
        table.add_row(
            str(d.id),
            d.name,
            d.version_label,
            d.content_hash[:12],
            local(d.loaded_at),
            d.source_path,
        )
    out.print(table)


def vars_of(value: object) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(value)  # type: ignore[call-overload, no-any-return]
