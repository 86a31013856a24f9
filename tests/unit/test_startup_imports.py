"""A command imports only what it needs (#15.18; bench/startup.py measures the time).

Each probe runs the command line in a fresh interpreter and reports which of the heavy
modules ended up in ``sys.modules``: a behavioural check, not a timing one.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dk2020flow.cli import COMMANDS, app
from dk2020flow.store.db import HEAD_REVISION, head_revision, upgrade

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
heavy = sys.argv[1].split(",")
sys.argv = ["dk2020flow", *sys.argv[2:]]
from dk2020flow.cli import app
try:
    app()
except SystemExit:
    pass
print("imported:" + ",".join(name for name in heavy if name in sys.modules), file=sys.stderr)
"""

# What no command that only reads the database needs: the migrations, the charts, the
# templates and calendars, the workflow parser, model and engine, the other sub-apps.
NOT_FOR_READS = (
    "alembic",
    "matplotlib",
    "jinja2",
    "icalendar",
    "holidays",
    "babel",
    "ruamel.yaml",
    "email_validator",
    "transitions",
    "dk2020flow.service.core",
    "dk2020flow.definition.loader",
    "dk2020flow.definition.model",
    "dk2020flow.engine.decide",
    "dk2020flow.notify.render",
    "dk2020flow.report",
    "dk2020flow.cli.process",
    "dk2020flow.cli.web",
)
# What `case show` and `report` (the full service, a stored definition compiled) need
# neither: rendering mail (Jinja2, babel, icalendar, the e-mail package), the calendar's
# holidays, the e-mail address check, the YAML parser and the definition checks (the
# stored definition comes from the parsed-definition cache, definition/cache.py), and
# the service modules of other operations (dispatch, migration, CSV import, log checks).
NOT_FOR_SERVICE_READS = (
    "alembic",
    "matplotlib",
    "jinja2",
    "babel",
    "icalendar",
    "holidays",
    "email_validator",
    "ruamel.yaml",
    "dk2020flow.cli.web",
    "dk2020flow.definition.source",
    "dk2020flow.definition.validate",
    "dk2020flow.definition.template_check",
    "dk2020flow.notify.render",
    "dk2020flow.notify.ics",
    "dk2020flow.notify.message",
    "dk2020flow.service.dispatch",
    "dk2020flow.service.migrate",
    "dk2020flow.service.participants",
    "dk2020flow.service.verify",
    "dk2020flow.service.overview",
    "dk2020flow.service.documents",
)
# What `version` and a `--help` need even less: the database and the settings.
NOT_FOR_HELP = (*NOT_FOR_READS, "sqlalchemy", "pydantic_settings", "dk2020flow.store.db")


def _imported(heavy: tuple[str, ...], *args: str, cwd: Path | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(heavy), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=cwd,
    )
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("imported:"), done.stderr
    return [name for name in last.removeprefix("imported:").split(",") if name]


@pytest.fixture(scope="module")
def programme(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with the DK2020 workflow and one case (#1)."""
    from dk2020flow.clock import SystemClock
    from dk2020flow.service.core import open_service
    from dk2020flow.settings import load_settings

    url = f"sqlite:///{tmp_path_factory.mktemp('startup') / 'programme.db'}"
    upgrade(url)
    with open_service(url, clock=SystemClock(), settings=load_settings()) as service:
        service.load_workflow(REPO / "workflows" / "dk2020.yaml")
        service.open_case("dk2020", "Aarhus", actor="test", role="follow_up")
    return url


def test_the_fast_schema_check_knows_the_newest_migration() -> None:
    assert head_revision() == HEAD_REVISION, "update store/db.py HEAD_REVISION"


def test_case_list_imports_neither_alembic_nor_the_engine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'small.db'}"
    upgrade(url)
    assert _imported(NOT_FOR_READS, "case", "list", "--db", url) == []
    assert _imported(NOT_FOR_HELP, "case", "list", "--help") == []


@pytest.mark.parametrize(
    "args", [("version",), ("scheduler", "--help"), ("outbox", "list", "--help")], ids=" ".join
)
def test_version_and_help_open_no_database(args: tuple[str, ...]) -> None:
    assert _imported(NOT_FOR_HELP, *args) == []


def test_the_top_help_imports_every_sub_app_but_opens_no_database() -> None:
    sub_apps = ("dk2020flow.cli.process", "dk2020flow.cli.web")
    assert _imported(NOT_FOR_HELP, "--help") == list(sub_apps)


@pytest.mark.parametrize(
    "args",
    [
        ("case", "list"),
        ("scheduler", "status"),
        ("outbox", "list"),
        ("participants", "list"),
        ("workflow", "list"),
    ],
    ids=" ".join,
)
def test_read_commands_need_no_migrations_charts_templates_or_engine(
    programme: str, args: tuple[str, ...]
) -> None:
    assert _imported(NOT_FOR_READS, *args, "--db", programme) == []


@pytest.mark.parametrize(
    "args", [("case", "show", "#1"), ("report", "--format", "json")], ids=" ".join
)
def test_service_commands_need_no_mail_parser_or_other_operations(
    programme: str, args: tuple[str, ...]
) -> None:
    # A first parse of the stored definition fills the parsed-definition cache (the
    # session's own, tests/conftest.py), unless it is there already; from then on no
    # command parses it again (tests/unit/definition/test_definition_cache.py).
    first = _imported(NOT_FOR_SERVICE_READS, *args, "--db", programme)
    assert set(first) <= {"ruamel.yaml", *NOT_FOR_SERVICE_READS[9:12]}, first
    assert _imported(NOT_FOR_SERVICE_READS, *args, "--db", programme) == []


def test_every_command_in_the_table_loads_and_is_listed_by_help() -> None:
    for name, target in COMMANDS.items():
        module, _, attribute = target.partition(":")
        found = getattr(import_module(module), attribute)
        assert isinstance(found, typer.Typer) or callable(found), name
    shown = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    listed = [line.split()[1] for line in shown.output.splitlines() if line.startswith("│ ")]
    assert [name for name in listed if name in COMMANDS] == list(COMMANDS)


def test_a_sub_app_of_one_command_stays_a_group_and_typos_get_a_suggestion() -> None:
    mail = CliRunner().invoke(app, ["mail", "--help"], env={"COLUMNS": "200"})
    assert mail.exit_code == 0 and "preview" in mail.output, mail.output
    typo = CliRunner().invoke(app, ["cse", "list"], env={"COLUMNS": "200"})
    assert typo.exit_code == 2
    assert "No such command 'cse'. Did you mean 'case'?" in typo.output
