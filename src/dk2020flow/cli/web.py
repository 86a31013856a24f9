"""`dk2020flow serve`: the web console (and, later, the portal and the API) on uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from dk2020flow.cli.common import DbOption, NowOption, err, parse_now, settings_for
from dk2020flow.errors import Dk2020flowError


class ServeError(Dk2020flowError):
    exit_code = 2


def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8020,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes (several need PostgreSQL: SQLite has one writer).",
        ),
    ] = 1,
    threads: Annotated[
        int,
        typer.Option(
            min=1,
            max=200,
            help="Requests each worker works on at once (threads; docs/web.md#threads).",
        ),
    ] = 40,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="The public address behind a reverse proxy (https://…), used in sign-in mails.",
            show_default=False,
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="Proxies whose X-Forwarded-Proto/For headers are trusted (comma-separated).",
        ),
    ] = "127.0.0.1",
    now: NowOption = None,
) -> None:
    """Serve the web console at http://HOST:PORT/ (docs/web.md).

    It opens the same database as every other command; --now starts the console's clock
    at that instant (it runs on from there), for browsing a simulated programme such as
    `dk2020flow demo`'s.
    """
    import uvicorn

    from dk2020flow.service.database import database_status
    from dk2020flow.web.api.ratelimit import load_api_settings
    from dk2020flow.web.oidc import oidc_config

    settings = settings_for(db)
    load_api_settings()  # a bad DK2020FLOW_API_* value is one line here, not in each worker
    oidc_config(settings)  # and so is an incomplete DK2020FLOW_OIDC_* (single sign-on)
    if now is not None:
        parse_now(now)  # a bad --now is one line and exit 2, before anything starts
    status = database_status(settings.database_url)
    if not status.up_to_date:
        raise ServeError(
            f"the database {status.url} is at schema revision {status.current or 'none'}, "
            f"this release needs {status.head}: run `dk2020flow db upgrade` first"
        )
    if workers > 1 and settings.database_url.startswith("sqlite"):
        raise ServeError(
            "--workers above 1 needs PostgreSQL (DK2020FLOW_DATABASE_URL=postgresql+psycopg://…): "
            "SQLite lets one process write at a time"
        )
    os.environ["DK2020FLOW_DATABASE_URL"] = settings.database_url
    os.environ["DK2020FLOW_WEB_WORKERS"] = str(workers)  # each shares the API's rate limit
    os.environ["DK2020FLOW_WEB_THREADS"] = str(threads)
    if now is not None:
        os.environ["DK2020FLOW_WEB_NOW"] = now
    # Sign-in links always carry a configured address, never the request's Host header
    # (which a client may forge): --base-url behind a proxy, else where we listen.
    listen = f"[{host}]" if ":" in host else host
    os.environ["DK2020FLOW_BASE_URL"] = (base_url or f"http://{listen}:{port}").rstrip("/")
    err.print(f"dk2020flow: the console is at http://{host}:{port}/ (Ctrl-C stops it)")
    uvicorn.run(
        "dk2020flow.web.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level="warning",
        access_log=False,
    )
