"""`dk2020flow tokens create|list|revoke|purge-keys`: the REST API's tokens."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated

import typer

from dk2020flow.cli.common import (
    ActorOption,
    DbOption,
    InvalidOptionError,
    JsonOption,
    NowOption,
    actor_name,
    display_zone,
    handle_errors,
    local,
    open_service,
    out,
    print_json,
    to_jsonable,
)
from dk2020flow.clock import INSTANT_FORMATS, parse_instant
from dk2020flow.errors import quoted

if TYPE_CHECKING:
    from dk2020flow.service.tokens import ApiToken

_DAYS = re.compile(r"(\d{1,5})d")

tokens_app = typer.Typer(
    no_args_is_help=True,
    help="Tokens of the REST API (/api/v1): each acts with its roles only.",
)


def parse_expires(text: str, now: dt.datetime, option: str = "--expires") -> dt.datetime:
    """``90d`` (days from now) or an instant (``2027-06-01``, ``2027-06-01T00:00``, with
    an offset or local to the display zone, ``cli.common.display_zone``)."""
    given = text.strip()
    days = _DAYS.fullmatch(given)
    if days:
        return now + dt.timedelta(days=int(days.group(1)))
    try:
        return parse_instant(given, display_zone())
    except ValueError:
        raise InvalidOptionError(
            f"{option}: {quoted(text)} is neither a number of days (90d) nor {INSTANT_FORMATS}"
        ) from None


def status(token: ApiToken, now: dt.datetime) -> str:
    """``active``, ``revoked`` or ``expired`` at ``now``."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


@tokens_app.command("create")
@handle_errors
def create(
    name: Annotated[
        str, typer.Argument(help="The token's name (letters, digits, '.', '_', '-'), unique.")
    ],
    roles: Annotated[
        list[str],
        typer.Option(
            "--role",
            "-r",
            help="A role the token acts in (repeat for more): a staff role (secretariat, "
            "follow_up, approver, regional_advisor, admin, read_only) or a role of a loaded "
            "workflow (council, contact_person …).",
        ),
    ],
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="When it stops working: a number of days (90d) or an instant "
            "(2027-06-01, 2027-06-01T00:00); default: never.",
            show_default=False,
        ),
    ] = None,
    every_case: Annotated[
        bool,
        typer.Option(
            "--every-case",
            help="Allow a participant's role (contact_person, council …): the token acts in "
            "it on every organisation's case.",
        ),
    ] = False,
    actor: ActorOption = None,
    db: DbOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print its secret, once: only its hash is kept."""
    service = open_service(db, now)
    at = service.clock.now()
    expires_at = parse_expires(expires, at) if expires is not None else None
    created = service.tokens.create(
        name,
        roles,
        created_by=actor_name(actor),
        expires_at=expires_at,
        every_case=every_case,
        now=at,
    )
    token = created.token
    if as_json:
        print_json({**to_jsonable(token), "secret": created.secret})
        return
    until = f"until {local(token.expires_at)}" if token.expires_at else "without expiry"
    out.print(f"token {token.name} created with roles {', '.join(token.roles)}, {until}")
    out.print(created.secret, markup=False)
    out.print(
        "Copy the secret now: it is not shown again (the database keeps only its hash). "
        "Send it as `Authorization: Bearer <secret>`.",
        markup=False,
    )


@tokens_app.command("list")
@handle_errors
def list_tokens(db: DbOption = None, now: NowOption = None, as_json: JsonOption = False) -> None:
    """List the tokens (never their secrets): roles, status, expiry, last use."""
    service = open_service(db, now)
    at = service.clock.now()
    tokens = service.tokens.list()
    if as_json:
        print_json([{**to_jsonable(t), "status": status(t, at)} for t in tokens])
        return
    from rich.table import Table

    table = Table(title=f"{len(tokens)} tokens")
    for column in ("name", "roles", "secret starts", "status", "expires", "last used", "created"):
        table.add_column(column)
    for t in tokens:
        state = status(t, at)
        if t.revoked_at is not None:
            state = f"revoked {local(t.revoked_at)}"
        table.add_row(
            t.name,
            ", ".join(t.roles),
            f"{t.hint}…",
            state,
            local(t.expires_at) if t.expires_at else "never",
            local(t.last_used_at),
            f"{local(t.created_at)} by {t.created_by}",
        )
    out.print(table)


@tokens_app.command("revoke")
@handle_errors
def revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Revoke a token: it is refused from now on (its name stays taken)."""
    service = open_service(db, now)
    at = service.clock.now()
    token = service.tokens.revoke(name, now=at)
    if token.revoked_at is not None and token.revoked_at < at:
        out.print(f"token {token.name} was revoked already, {local(token.revoked_at)}")
    else:
        out.print(f"token {token.name} revoked: it is refused from now on")


@tokens_app.command("purge-keys")
@handle_errors
def purge_keys(
    older_than: Annotated[
        str,
        typer.Option("--older-than", help="Keep the keys younger than this many days (7d)."),
    ] = "7d",
    db: DbOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete Idempotency-Keys (and their answers) older than --older-than (7 days).

    A token's own old keys are deleted as it is used; this clears those of tokens no
    longer used."""
    days = _DAYS.fullmatch(older_than.strip())
    if days is None:
        raise InvalidOptionError(f"--older-than: {quoted(older_than)} is not a number of days (7d)")
    service = open_service(db, now)
    kept = dt.timedelta(days=int(days.group(1)))
    count = service.tokens.purge_idempotency_keys(kept=kept, now=service.clock.now())
    if as_json:
        print_json({"purged": count, "older_than_days": kept.days})
    else:
        out.print(f"Purged {count} idempotency key(s) older than {kept.days} days.")
