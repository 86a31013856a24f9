"""`dk2020flow users add|list|disable|renew-link-key`: the web console's staff accounts,
and the key of the case links in mail."""

from __future__ import annotations

from typing import Annotated

import typer

from dk2020flow.cli.common import (
    ActorOption,
    DbOption,
    JsonOption,
    actor_name,
    err,
    handle_errors,
    local,
    open_service,
    out,
    print_json,
)

users_app = typer.Typer(
    no_args_is_help=True,
    help="Staff accounts of the web console (they sign in with a link sent by e-mail).",
)


@users_app.command("add")
@handle_errors
def add(
    email: Annotated[str, typer.Argument(help="The address the sign-in links go to.")],
    name: Annotated[str, typer.Option("--name", help="The person's name.")],
    roles: Annotated[
        list[str],
        typer.Option(
            "--role",
            "-r",
            help="A role (repeat for more): a role of a loaded workflow (the secretariat, "
            "a reviewer …), admin (manages accounts) or read_only.",
        ),
    ],
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            help="The language of their pages and mail, e.g. da or en (another, e.g. de: "
            "English texts, its dates); default: the loaded workflow's first language "
            "(English before a workflow is loaded).",
            show_default=False,
        ),
    ] = None,
    actor: ActorOption = None,
    db: DbOption = None,
) -> None:
    """Add a staff account (an address once disabled is enabled again with these roles)."""
    accounts = open_service(db).accounts
    user = accounts.add_user(email, name, roles, actor=actor_name(actor), language=language)
    out.print(f"user {user.email} ({user.name}) added with roles {', '.join(user.roles)}")
    if accounts.staff_roles() is None:
        err.print(
            "note: no workflow is loaded yet, so the roles were checked only to be role "
            "names, not against a workflow's roles (after `dk2020flow workflow load` they are)",
            markup=False,
        )


@users_app.command("list")
@handle_errors
def list_users(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List the staff accounts."""
    users = open_service(db).accounts.list_users()
    if as_json:
        print_json(users)
        return
    from rich.table import Table

    table = Table(title=f"{len(users)} users")
    for column in ("email", "name", "roles", "language", "status", "created"):
        table.add_column(column)
    for u in users:
        status = "active" if u.active else f"disabled {local(u.disabled_at)}"
        table.add_row(u.email, u.name, ", ".join(u.roles), u.language, status, local(u.created_at))
    out.print(table)


@users_app.command("disable")
@handle_errors
def disable(
    email: Annotated[str, typer.Argument(help="The account's address.")],
    actor: ActorOption = None,
    db: DbOption = None,
) -> None:
    """Disable an account: it cannot sign in, and its sessions end at once."""
    user = open_service(db).accounts.disable_user(email, actor=actor_name(actor))
    out.print(f"user {user.email} disabled; their sessions are signed out")


@users_app.command("renew-link-key")
@handle_errors
def renew_link_key(
    yes: Annotated[
        bool, typer.Option("--yes", help="Renew it (without: only say what it would do).")
    ] = False,
    db: DbOption = None,
) -> None:
    """Renew the key of the case links in mail: every case link in mail already sent stops
    working (sign-in by a one-time link or by single sign-on still works).

    A dry run by default: it says what renewing would do and changes nothing; --yes makes
    the new key (docs/portal.md "Links in mail")."""
    from dk2020flow.service.links import renew_key

    effect = (
        "every case link in mail already sent stops working (it leads to the sign-in "
        "page); sign-in by a one-time link still works, and mail sent from now on carries "
        "links made with the new key"
    )
    if not yes:
        out.print(f"would renew the case-link key: {effect}", markup=False)
        out.print("dry run: nothing changed; add --yes to renew it", markup=False)
        return
    key_id = renew_key(open_service(db))
    out.print(f"renewed the case-link key (key {key_id}): {effect}", markup=False)
