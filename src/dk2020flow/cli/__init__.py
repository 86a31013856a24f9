"""The dk2020flow command line: one typer app with a sub-app per concern."""

from __future__ import annotations

import os
import sys

import typer

from dk2020flow import __version__
from dk2020flow.cli.admin import db_app, participants_app, workflow_list, workflow_load
from dk2020flow.cli.case import case_app
from dk2020flow.cli.common import err, handle_errors
from dk2020flow.cli.outbox import mail_app, outbox_app
from dk2020flow.cli.process import register as register_process
from dk2020flow.cli.scheduler import scheduler_app
from dk2020flow.cli.users import users_app
from dk2020flow.cli.web import serve
from dk2020flow.cli.workflow import workflow_app
from dk2020flow.errors import quoted

app = typer.Typer(
    no_args_is_help=True,
    help="dk2020flow: workflows and cases for long guidance programmes such as DK2020.",
    pretty_exceptions_enable=False,
)
workflow_app.command("load")(handle_errors(workflow_load))
workflow_app.command("list")(handle_errors(workflow_list))
app.add_typer(workflow_app, name="workflow")
app.add_typer(case_app, name="case")
app.add_typer(db_app, name="db")
app.add_typer(participants_app, name="participants")
app.add_typer(scheduler_app, name="scheduler")
app.add_typer(outbox_app, name="outbox")
app.add_typer(mail_app, name="mail")
app.add_typer(users_app, name="users")
register_process(app)  # simulate, report, demo
app.command("serve")(handle_errors(serve))


@app.command("version")
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def _undecodable_argument(argv: list[str]) -> str | None:
    """The first argument that was not valid UTF-8 (Python keeps such bytes as lone
    surrogates, which no database, log or mail can store), shown with U+FFFD for the bad bytes."""
    for position, argument in enumerate(argv[1:], start=1):
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            shown = argument.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            return f"argument {position} ({quoted(shown)}) is not valid UTF-8 text"
    return None


def main() -> None:
    """Entry point: any error dk2020flow did not foresee still ends in one line, not a traceback."""
    bad = _undecodable_argument(sys.argv)
    if bad is not None:
        err.print(
            f"error: {bad}: run the command from a UTF-8 terminal or script (nothing was changed)",
            markup=False,
            style="red",
        )
        sys.exit(2)
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("DK2020FLOW_DEBUG"):
            raise
        err.print(
            f"internal error: {type(exc).__name__}: {exc} "
            "(this is a bug; run again with DK2020FLOW_DEBUG=1 for the traceback and report it)",
            markup=False,
            style="red",
        )
        sys.exit(70)
