"""``dk2020flow workflow …``: validate, draw and describe workflow files; start new ones."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from dk2020flow.bundled import workflow_path
from dk2020flow.cli.admin import workflow_list, workflow_load
from dk2020flow.cli.common import handle_errors
from dk2020flow.errors import quoted

if TYPE_CHECKING:
    from dk2020flow.definition import Diagnostic, LoadedWorkflow

EXIT_INVALID = 2

workflow_app = typer.Typer(
    no_args_is_help=True,
    help="Validate, draw and describe workflow files.",
)


class GraphFormat(StrEnum):
    MERMAID = "mermaid"
    DOT = "dot"


def _expand(paths: list[Path]) -> list[Path]:
    """Folders stand for the .yaml/.yml files directly inside them; a name that is not a
    file may be a shipped workflow (``dk2020``)."""
    expanded: list[Path] = []
    for given in paths:
        path = workflow_path(given)
        if path.is_dir():
            inside = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            expanded += inside or [path]
        else:
            expanded.append(path)
    return expanded


def _check(path: Path) -> tuple[LoadedWorkflow | None, tuple[Diagnostic, ...]]:
    # The definition layer is imported when a command needs it (a faster CLI start).
    from dk2020flow.definition import DefinitionError, load_workflow

    try:
        loaded = load_workflow(path)
    except DefinitionError as exc:
        return None, exc.diagnostics
    return loaded, loaded.warnings


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@workflow_app.command("validate")
def validate_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Workflow files (or folders of them) to check.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout instead.")
    ] = False,
) -> None:
    """Check workflow files and their templates; report every problem as FILE:LINE:COLUMN.

    Exit status 0 when every file is valid (warnings allowed), 2 when any has errors.
    """
    results: list[dict[str, Any]] = []
    errors = warnings = 0
    for path in _expand(paths):
        loaded, diagnostics = _check(path)
        file_errors = sum(1 for d in diagnostics if d.is_error)
        errors += file_errors
        warnings += len(diagnostics) - file_errors
        results.append(_result(path, loaded, diagnostics))
        if as_json:
            continue
        for diagnostic in diagnostics:
            typer.echo(str(diagnostic), err=True)
        if loaded is not None:
            workflow = loaded.workflow
            typer.echo(
                f"{path}: ok - {workflow.workflow} {workflow.version}, "
                f"{_plural(len(workflow.states), 'state')}, "
                f"{_plural(len(workflow.transitions), 'transition')}, "
                f"{_plural(len(loaded.templates), 'template file')}"
            )
    if as_json:
        summary = {"files": results, "errors": errors, "warnings": warnings}
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        typer.echo(
            f"{_plural(len(results), 'file')} checked: {_plural(errors, 'error')}, "
            f"{_plural(warnings, 'warning')}",
            err=True,
        )
    if errors:
        raise typer.Exit(EXIT_INVALID)


def _result(
    path: Path, loaded: LoadedWorkflow | None, diagnostics: tuple[Diagnostic, ...]
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "path": str(path),
        "valid": loaded is not None,
        "diagnostics": [d.to_json() for d in diagnostics],
    }
    if loaded is not None:
        result |= {
            "workflow": loaded.workflow.workflow,
            "version": loaded.workflow.version,
            "content_hash": loaded.content_hash,
        }
    return result


@workflow_app.command("graph")
def graph_command(
    path: Annotated[Path, typer.Argument(help="The workflow file to draw.")],
    output_format: Annotated[
        GraphFormat, typer.Option("--format", "-f", help="mermaid (no Graphviz needed) or dot.")
    ] = GraphFormat.MERMAID,
) -> None:
    """Print the state diagram: every state, transitions with triggers and roles, timers.

    Templates are not checked here, so a workflow can be drawn before its mails exist.
    """
    from dk2020flow.definition import DefinitionError, load_workflow
    from dk2020flow.definition.graph import to_dot, to_mermaid

    path = workflow_path(path)
    try:
        loaded = load_workflow(path, check_templates=False)
    except DefinitionError as exc:
        for diagnostic in exc.diagnostics:
            typer.echo(str(diagnostic), err=True)
        typer.echo(f"{path}: cannot draw a workflow with errors", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    draw = to_mermaid if output_format is GraphFormat.MERMAID else to_dot
    typer.echo(draw(loaded.workflow), nl=False)


@workflow_app.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of workflow files (for editors' validation and completion)."""
    from dk2020flow.definition.schema_export import schema_text

    typer.echo(schema_text(), nl=False)


# ----------------------------------------------------------------------------- init, export

SCHEMA_LINE = "# yaml-language-server: $schema="
"""The first line of a workflow file: where editors find the JSON Schema."""


@workflow_app.command("init")
def init_command(
    name: Annotated[str, typer.Argument(help="The new workflow's name (e.g. covenant).")],
    folder: Annotated[Path, typer.Argument(help="The programme folder to create it in.")],
    languages: Annotated[
        str,
        typer.Option(
            "--languages",
            help="The programme's languages, the first the default: ISO 639-1 codes "
            "separated by commas (e.g. en,fr). Texts other than Danish and English start "
            "as the English ones, to translate.",
        ),
    ] = "da,en",
    timezone: Annotated[
        str,
        typer.Option(
            "--timezone",
            help="The IANA zone its dates and times of day are read in "
            "(e.g. Europe/Brussels, America/Toronto).",
        ),
    ] = "UTC",
    country: Annotated[
        str | None,
        typer.Option(
            "--country",
            help="The country whose public holidays are not business days (an ISO 3166-1 "
            "code the holidays package knows, e.g. DE); default: none, weekends only.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start a new programme: a small valid workflow with its templates, to edit.

    Writes FOLDER/workflows/NAME.yaml, its templates in FOLDER/notifications/NAME/ (one
    file per template and language), its data set FOLDER/workflows/data/NAME_organisations.csv
    (three organisations to replace) and the JSON Schema beside the workflow; refuses to
    overwrite a file that exists.
    """
    from dk2020flow.definition.model import NAME_PATTERN
    from dk2020flow.definition.starter import starter_files

    if not re.fullmatch(NAME_PATTERN, name) or len(name) > 64:
        _refuse(
            f"{name!r} is not a workflow name: use lower-case letters, digits and _, "
            "starting with a letter (e.g. covenant)",
            EXIT_INVALID,
        )
    written = starter_files(
        name, _languages(languages), timezone=_timezone(timezone), country=_country(country)
    )
    files = {f"workflows/{name}.yaml": _with_schema_line(written["workflow"])}
    files |= {
        f"notifications/{name}/{file}": text
        for file, text in written.items()
        if file not in ("workflow", "organisations")
    }
    data_set = {f"workflows/data/{name}_organisations.csv": written["organisations"]}
    _write_programme(folder, name, files, data_set)


def _timezone(given: str) -> str:
    """``--timezone`` as an IANA zone name; an unknown one refused."""
    from dk2020flow.clock import zone

    name = given.strip()
    try:
        zone(name)
    except ValueError as exc:
        _refuse(f"--timezone: {exc}".replace(repr(name), quoted(name)), EXIT_INVALID)
    return name


def _country(given: str | None) -> str | None:
    """``--country`` as a country code the ``holidays`` package knows (upper case); None
    when not given."""
    if given is None:
        return None
    import difflib

    from dk2020flow.definition.calendar import supported_countries

    code = given.strip().upper()
    countries = supported_countries()
    if code not in countries:
        close = difflib.get_close_matches(code, sorted(countries), n=1)
        hint = f"did you mean {close[0]}?" if close else "write an ISO 3166-1 code such as DE"
        _refuse(
            f"--country: the holidays package knows no country {quoted(given)} ({hint})",
            EXIT_INVALID,
        )
    return code


def _languages(given: str) -> tuple[str, ...]:
    """``en,fr`` as language codes; a code Babel does not know, or one given twice, refused."""
    from dk2020flow.definition.model import (
        babel_knows,
        language_shape_problem,
        unknown_language_hint,
    )

    codes = tuple(code.strip() for code in given.split(","))
    for code in codes:
        if not code:
            _refuse("--languages: a language is empty: write codes such as en,fr", EXIT_INVALID)
        problem = language_shape_problem(code)
        if problem is not None:
            _refuse(f"--languages: {problem}", EXIT_INVALID)
        if not babel_knows(code):
            _refuse(
                f"--languages: Babel has no locale for the language `{code}` "
                f"({unknown_language_hint(code)})",
                EXIT_INVALID,
            )
    if len(set(codes)) != len(codes):
        twice = next(code for code in codes if codes.count(code) > 1)
        _refuse(f"--languages: `{twice}` is given twice", EXIT_INVALID)
    return codes


@workflow_app.command("export")
def export_command(
    name: Annotated[
        str, typer.Argument(help="A shipped workflow: dk2020, eu_mission or status_reports.")
    ],
    folder: Annotated[Path, typer.Argument(help="The programme folder to copy it into.")],
) -> None:
    """Copy a shipped workflow and its templates into a folder, to adapt as your own.

    Writes FOLDER/workflows/NAME.yaml, FOLDER/notifications/NAME/, the JSON Schema
    beside the workflow, its data set (its `organisations:` file) and its simulation
    profile (FOLDER/workflows/behaviour/NAME.yaml) when it ships them; refuses to
    overwrite a file that exists.
    """
    from dk2020flow.bundled import bundled_workflows, own_profile
    from dk2020flow.definition.loader import default_template_dir, load_workflow

    shipped = bundled_workflows()
    source = shipped.get(name)
    if source is None:
        known = ", ".join(shipped) or "none (this installation has no shipped workflows)"
        _refuse(f"no shipped workflow {name!r}; shipped: {known}", EXIT_INVALID)
    templates = default_template_dir(source, name)
    files = {f"workflows/{name}.yaml": _with_schema_line(source.read_text(encoding="utf-8"))}
    for file in sorted(templates.glob("*.jinja")):
        files[f"notifications/{name}/{file.name}"] = file.read_text(encoding="utf-8")
    profile = own_profile(source, name)
    extra = {}
    if profile.is_file():  # so `simulate` runs from the copy as from the shipped one
        extra[f"workflows/{profile.parent.name}/{profile.name}"] = profile.read_text(
            encoding="utf-8"
        )
    data_set = load_workflow(source, check_templates=False).organisations_file
    if data_set is not None:  # so `workflow load` adds its organisations from the copy too
        relative = data_set.relative_to(source.absolute().parent.resolve())
        extra[f"workflows/{relative.as_posix()}"] = data_set.read_text(encoding="utf-8")
    _write_programme(folder, name, files, extra)


def _with_schema_line(text: str) -> str:
    """The workflow text pointing editors at the schema written beside it."""
    line = f"{SCHEMA_LINE}workflow.schema.json\n"
    first, newline, rest = text.partition("\n")
    if first.startswith(SCHEMA_LINE):
        return line + rest
    return line + first + newline + rest


def _write_programme(
    folder: Path, name: str, files: dict[str, str], extra: dict[str, str] | None = None
) -> None:
    """Write the workflow, its templates and the schema (and ``extra`` files: a
    simulation profile), or nothing when one of them exists."""
    from dk2020flow.definition.schema_export import schema_text

    templates = len(files) - 1
    files = {**files, **(extra or {}), "workflows/workflow.schema.json": schema_text()}
    existing = [relative for relative in files if (folder / relative).exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        _refuse(
            f"{folder / existing[0]} already exists{more}; nothing was written "
            "(choose another folder, or move those files away)",
            1,
        )
    try:
        for relative, text in files.items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("x", encoding="utf-8", newline="") as stream:
                stream.write(text)
    except OSError as exc:
        _refuse(f"cannot write into {folder}: {exc.strerror or exc}", 1)
    workflow = folder / "workflows" / f"{name}.yaml"
    typer.echo(
        f"wrote {workflow} and {_plural(templates, 'template file')} in "
        f"{folder / 'notifications' / name}"
    )
    typer.echo(f"check it with: dk2020flow workflow validate {workflow}")


def _refuse(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


# `workflow load` and `workflow list` use the database: they live with the admin commands.
workflow_app.command("load")(handle_errors(workflow_load))
workflow_app.command("list")(handle_errors(workflow_list))
