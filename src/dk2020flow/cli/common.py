"""What every command shares: the database option, `--now`, JSON output, errors."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from functools import wraps
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from dk2020flow.clock import INSTANT_FORMATS, FixedClock, SystemClock, parse_instant
from dk2020flow.errors import Dk2020flowError, quoted

if TYPE_CHECKING:
    from rich.console import Console

    from dk2020flow.service.core import Service
    from dk2020flow.service.reads import Reader
    from dk2020flow.settings import Settings

# Rich and the settings (pydantic) are imported when a command first needs them, so that
# `--help`, `version` and light commands start fast.
_consoles: dict[bool, Console] = {}


# Output that is not a terminal (a pipe, a file, a log) is never cut or wrapped to fit a
# width: rich would assume 80 columns there and shorten table cells to `decide_pa…`.
UNLIMITED_WIDTH = 1_000_000


def console(*, stderr: bool = False) -> Console:
    """The rich console for stdout (or stderr), made on first use."""
    made = _consoles.get(stderr)
    if made is None:
        from rich.console import Console

        stream = sys.stderr if stderr else sys.stdout
        width = None if stream is not None and stream.isatty() else UNLIMITED_WIDTH
        made = _consoles[stderr] = Console(
            stderr=stderr, highlight=False, soft_wrap=True, width=width
        )
    return made


class _LazyConsole:
    """Stands for `console(stderr=...)`: `out.print(...)` without importing rich up front."""

    __slots__ = ("_stderr",)

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr

    def __getattr__(self, name: str) -> Any:
        return getattr(console(stderr=self._stderr), name)


out = cast("Console", _LazyConsole(stderr=False))
err = cast("Console", _LazyConsole(stderr=True))

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite:///FILE or postgresql+psycopg://…); "
        "default: $DK2020FLOW_DATABASE_URL or sqlite:///dk2020flow.db",
        show_default=False,
    ),
]
NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Act as of this instant (ISO 8601, e.g. 2020-08-19T12:00+02:00); default: the clock.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ActorOption = Annotated[
    str | None, typer.Option("--as", help="Who acts (recorded in the log); default: your login.")
]
RoleOption = Annotated[str, typer.Option("--role", "-r", help="The role you act in.")]
WorkflowOption = Annotated[
    str | None, typer.Option("--workflow", "-w", help="The workflow, when a name is ambiguous.")
]

F = TypeVar("F", bound=Callable[..., Any])


def settings_for(db: str | None) -> Settings:
    from dk2020flow.settings import load_settings

    settings = load_settings()
    if db:
        settings = settings.model_copy(update={"database_url": db})
    return settings


class _DisplayZone:
    """The command's display timezone: how to find it (set by the last ``open_service``
    or ``open_reader``, from the database it opened) and, once asked, the answer."""

    __slots__ = ("source", "zone")

    def __init__(self) -> None:
        self.source: Callable[[], str] | None = None
        self.zone: str | None = None

    def find_with(self, source: Callable[[], str]) -> None:
        self.source, self.zone = source, None


_display = _DisplayZone()


def display_zone() -> str:
    """The IANA zone this command shows times in and reads a local ``--now`` in: the
    setting ``timezone``, else the one programme's of the database it opened, else UTC
    (``service/timezone.py``; docs/time.md)."""
    if _display.zone is None:
        source = _display.source
        # No database opened (yet): the setting alone.
        _display.zone = source() if source is not None else settings_for(None).timezone or "UTC"
    return _display.zone


def open_reader(db: str | None) -> Reader:
    """The service's light queries, for read commands that need no engine, mail or workflow
    parsing: they start without importing those (bench/startup.py measures it)."""
    from dk2020flow.service.reads import open_reader as open_light

    settings = settings_for(db)
    reader = open_light(settings.database_url)

    def zone() -> str:
        from dk2020flow.service.timezone import reader_timezone

        return reader_timezone(reader, settings)

    _display.find_with(zone)
    return reader


def open_service(db: str | None, now: str | None = None, *, timezone: str | None = None) -> Service:
    """A service over the chosen database, with the clock fixed at `--now` if given; a
    `--now` without an offset is read in ``timezone``, else the display zone."""
    # Imported here so that `--help` and light commands start fast.
    from dk2020flow.service.core import open_service as open_at

    settings = settings_for(db)
    if now is not None:
        parse_now(now, timezone or "UTC")  # an unreadable --now is refused before the database
    service = open_at(settings.database_url, clock=SystemClock(), settings=settings)

    def zone() -> str:
        from dk2020flow.service.timezone import display_timezone

        return display_timezone(service)

    _display.find_with(zone)
    if now is not None:
        try:
            service.clock = FixedClock(parse_now(now, timezone))
        except BaseException:
            service.close()
            raise
    return service


class InvalidOptionError(Dk2020flowError):
    """An option's value cannot be read: one line naming the option, exit 2 (usage)."""

    exit_code = 2


def parse_now(
    now: str | None, timezone: str | None = None, *, option: str = "--now"
) -> dt.datetime:
    """``--now`` (or another instant option) as a UTC instant; None (not given) is the clock.
    Without an offset it is local time in ``timezone``, else in :func:`display_zone`.

    Given but empty, blank or unreadable is an error, never the clock: a rehearsal script
    whose variable is empty must not act at today's real time.
    """
    if now is None:
        return SystemClock().now()
    if not now.strip():
        raise InvalidOptionError(
            f"{option} is empty: give an instant ({INSTANT_FORMATS}), "
            f"or leave {option} out to act at the clock's time"
        )
    try:
        return parse_instant(now, timezone or display_zone())
    except ValueError as exc:
        message = str(exc).replace(repr(now), quoted(now))
        raise InvalidOptionError(f"{option}: {message}") from None


def actor_name(given: str | None) -> str:
    if given:
        return given
    try:
        return os.environ.get("DK2020FLOW_ACTOR") or getpass.getuser()
    except OSError:
        return "unknown"


def parse_pairs(pairs: list[str] | None, what: str) -> dict[str, str]:
    """`key=value` options into a dict; a clear message for anything else."""
    result: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidOptionError(f"{what}: {quoted(pair)} is not KEY=VALUE")
        result[key.strip()] = value
    return result


def print_json(value: Any) -> None:
    typer.echo(json.dumps(to_jsonable(value), ensure_ascii=False, indent=2))


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    return value


def local(instant: dt.datetime | None, tz: str | None = None) -> str:
    """An instant as a local time people read (with the offset, so it is unambiguous), in
    ``tz``, else in :func:`display_zone`."""
    if instant is None:
        return "—"
    from zoneinfo import ZoneInfo

    return instant.astimezone(ZoneInfo(tz or display_zone())).strftime("%Y-%m-%d %H:%M %z")


def handle_errors(func: F) -> F:
    """Turn every Dk2020flowError into one line on stderr and its exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Dk2020flowError as exc:
            err.print(f"error: {exc}", markup=False, style="red")
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]
