"""`dk2020flow webhooks add|list|remove|deliveries|retry`: notices of changes POSTed to
other systems (docs/webhooks.md)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from dk2020flow.cli.common import (
    ActorOption,
    DbOption,
    JsonOption,
    NowOption,
    actor_name,
    handle_errors,
    local,
    open_service,
    out,
    print_json,
    to_jsonable,
)
from dk2020flow.store.port import WEBHOOK_EVENT_TYPES, WebhookStatus

if TYPE_CHECKING:
    from dk2020flow.service.webhooks import Webhook
    from dk2020flow.store.port import WebhookDelivery

ERROR_SHOWN = 80

webhooks_app = typer.Typer(
    no_args_is_help=True,
    help="Webhooks: POST a signed notice to a URL when a case changes.",
)


def _webhook_json(webhook: Webhook) -> dict[str, object]:
    shown = to_jsonable(webhook)
    shown["status"] = "active" if webhook.active else "removed"
    return dict(shown)


def _state(delivery: WebhookDelivery, now: dt.datetime) -> str:
    leased = delivery.lease_until is not None and delivery.lease_until > now
    if delivery.status is WebhookStatus.PENDING and leased:
        return "sending"
    return delivery.status.value


@webhooks_app.command("add")
@handle_errors
def add(
    url: Annotated[str, typer.Argument(help="The receiver's URL (http:// or https://).")],
    events: Annotated[
        str,
        typer.Option(
            "--events",
            "-e",
            help=f"Comma-separated event types: {', '.join(WEBHOOK_EVENT_TYPES)}.",
            show_default=False,
        ),
    ],
    description: Annotated[
        str, typer.Option("--description", "-d", help="What the receiver is (one line).")
    ] = "",
    actor: ActorOption = None,
    db: DbOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Subscribe a URL to event types and print its signing secret, once."""
    service = open_service(db, now)
    created = service.webhooks.add(
        url,
        events,
        description=description,
        created_by=actor_name(actor),
        now=service.clock.now(),
    )
    hook = created.webhook
    if as_json:
        print_json({**_webhook_json(hook), "secret": created.secret})
        return
    out.print(f"webhook {hook.id} added: {hook.url} for {', '.join(hook.events)}", markup=False)
    out.print(created.secret, markup=False)
    out.print(
        "Copy the secret now: it is not shown again. The receiver checks each notice's "
        "webhook-signature header with it (docs/webhooks.md).",
        markup=False,
    )


@webhooks_app.command("list")
@handle_errors
def list_webhooks(
    include_removed: Annotated[
        bool, typer.Option("--all", help="Also the removed subscriptions.")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the subscriptions (never their secrets)."""
    service = open_service(db)
    hooks = service.webhooks.list(include_removed=include_removed)
    if as_json:
        print_json([_webhook_json(h) for h in hooks])
        return
    from rich.table import Table

    table = Table(title=f"{len(hooks)} webhooks")
    for column in ("id", "url", "events", "secret starts", "status", "description", "created"):
        table.add_column(column)
    for h in hooks:
        status = "active" if h.active else f"removed {local(h.disabled_at)}"
        table.add_row(
            str(h.id),
            h.url,
            ", ".join(h.events),
            f"{h.secret_hint}…",
            status,
            h.description,
            f"{local(h.created_at)} by {h.created_by}",
        )
    out.print(table)


@webhooks_app.command("remove")
@handle_errors
def remove(
    subscription_id: Annotated[int, typer.Argument(metavar="ID", help="The subscription's id.")],
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Stop a subscription: nothing more is sent to it; its pending deliveries become dead."""
    service = open_service(db, now)
    done = service.webhooks.remove(subscription_id, now=service.clock.now())
    hook = done.webhook
    if not done.removed:
        out.print(f"webhook {hook.id} was removed already, {local(hook.disabled_at)}")
        return
    extra = f"; {done.given_up} pending delivery(ies) given up" if done.given_up else ""
    out.print(f"webhook {hook.id} removed ({hook.url}){extra}", markup=False)


@webhooks_app.command("deliveries")
@handle_errors
def deliveries(
    status: Annotated[
        WebhookStatus | None,
        typer.Option("--status", "-s", help="Only deliveries in this status.", show_default=False),
    ] = None,
    subscription: Annotated[
        int | None,
        typer.Option("--webhook", help="Only those of this subscription id.", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    db: DbOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """List deliveries, newest first: pending (the backlog), sent, dead (the dead letters)."""
    service = open_service(db, now)
    at = service.clock.now()
    found = service.webhooks.deliveries(status=status, subscription_id=subscription, limit=limit)
    if as_json:
        print_json([{**to_jsonable(d), "state": _state(d, at)} for d in found])
        return
    from rich.table import Table

    table = Table(title=f"{len(found)} webhook deliveries")
    for column in ("delivery id", "webhook", "type", "case", "status", "attempts", "when", "last"):
        table.add_column(column)
    for d in found:
        state = _state(d, at)
        if d.status is WebhookStatus.SENT:
            when = f"sent {local(d.sent_at)}"
        elif d.status is WebhookStatus.DEAD:
            when = f"dead {local(d.dead_at)}"
        elif state == "sending":
            when = f"lease until {local(d.lease_until)}"
        else:
            when = f"next {local(d.next_attempt_at)}"
        last = d.last_error if len(d.last_error) <= ERROR_SHOWN else d.last_error[:79] + "…"
        if d.last_status is not None and not last:
            last = f"HTTP {d.last_status}"
        table.add_row(
            d.delivery_id,
            str(d.subscription_id),
            d.event_type,
            f"#{d.case_id}" if d.case_id is not None else "",
            state,
            str(d.attempts),
            when,
            last,
        )
    out.print(table)


@webhooks_app.command("retry")
@handle_errors
def retry(
    delivery_id: Annotated[
        str, typer.Argument(metavar="DELIVERY_ID", help="The delivery's id (msg_…).")
    ],
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Send a dead delivery again (same id and body; its attempts start over)."""
    service = open_service(db, now)
    delivery = service.webhooks.retry(delivery_id, now=service.clock.now())
    out.print(
        f"webhook delivery {delivery.delivery_id} is pending again: the scheduler sends it "
        "on its next pass",
        markup=False,
    )
