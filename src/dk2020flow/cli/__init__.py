"""The dk2020flow command line: one typer app with a sub-app per concern.

The sub-apps are imported only when a command needs them (``dk2020flow case list``
imports ``cli/case.py`` and nothing of ``workflow``, ``serve`` or ``simulate``):
start-up is what every script call pays (bench/startup.py measures it). ``--help``
at the top imports them all, so it lists every command with its own help.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

import typer
from typer.core import TyperGroup

from dk2020flow import __version__
from dk2020flow.cli.common import err, handle_errors
from dk2020flow.errors import quoted

# The commands, in the order `dk2020flow --help` lists them: name -> "module:attribute",
# where the attribute is a typer.Typer (a group of commands, e.g. `case …`) or a function
# (one command, e.g. `serve`; it gets handle_errors here). To add a command, add ONE line
# here, e.g. `"tokens": "dk2020flow.cli.tokens:tokens_app",`; do not import it at the top
# of this module, or every command pays for importing it.
COMMANDS: dict[str, str] = {
    "simulate": "dk2020flow.cli.process:simulate",
    "report": "dk2020flow.cli.process:report",
    "demo": "dk2020flow.cli.process:demo",
    "serve": "dk2020flow.cli.web:serve",
    "version": "dk2020flow.cli:version",
    "workflow": "dk2020flow.cli.workflow:workflow_app",
    "case": "dk2020flow.cli.case:case_app",
    "db": "dk2020flow.cli.admin:db_app",
    "orgs": "dk2020flow.cli.admin:orgs_app",
    "participants": "dk2020flow.cli.admin:orgs_app",
    "scheduler": "dk2020flow.cli.scheduler:scheduler_app",
    "outbox": "dk2020flow.cli.outbox:outbox_app",
    "mail": "dk2020flow.cli.outbox:mail_app",
    "users": "dk2020flow.cli.users:users_app",
    "tokens": "dk2020flow.cli.tokens:tokens_app",
    "webhooks": "dk2020flow.cli.webhooks:webhooks_app",
}


class LazyGroup(TyperGroup):
    """The top-level group: lists every name in ``COMMANDS`` and imports one when asked for it."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = self.commands.get(cmd_name)
        if found is None and cmd_name in COMMANDS:
            found = self.commands[cmd_name] = _load(cmd_name)
        return found

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and self.get_command(ctx, args[0]) is None:
            # A typo: load them all, so that "Did you mean …?" knows every name.
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


def _load(name: str) -> Any:
    """The click command for ``COMMANDS[name]``, built as ``add_typer``/``command`` would."""
    module, _, attribute = COMMANDS[name].partition(":")
    target = getattr(import_module(module), attribute)
    holder = typer.Typer()
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(handle_errors(target))
    return typer.main.get_group(holder).commands[name]


app = typer.Typer(
    cls=LazyGroup,
    no_args_is_help=True,
    help="dk2020flow: workflows and cases for long guidance programmes in any country, such as "
    "the shipped DK2020 and EU Mission programmes.",
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """Makes ``app`` a group although it registers no command up front (typer would run an
    app of one command as that command)."""


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
