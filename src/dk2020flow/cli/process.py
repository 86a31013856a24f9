"""`dk2020flow simulate`, `report` and `demo`: the process owner's view.

Exit codes: 0 when the command did its work, also when the simulation flagged
problems (they are printed; add ``--strict`` to exit 1 on any); 2 for bad input
(an unreadable date, a behaviour file that does not fit the workflow); the
error's own code for anything else dk2020flow refuses.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dk2020flow.bundled import bundled_workflows, workflow_path
from dk2020flow.cli.common import (
    DbOption,
    JsonOption,
    console,
    err,
    handle_errors,
    local,
    open_service,
    out,
    print_json,
    settings_for,
)
from dk2020flow.clock import FixedClock, SystemClock
from dk2020flow.errors import Dk2020flowError, quoted

if TYPE_CHECKING:
    from dk2020flow.simulate.result import SimulationResult

DEMO_START = dt.date(2020, 6, 1)
DEMO_END = dt.date(2023, 12, 31)
DEMO_ACCOUNT = "sekretariat@dk2020.example.dk"
DEMO_PUBLIC_URL = "http://127.0.0.1:8020"
"""Where `dk2020flow serve` listens by default: the links in the demo's mail go there
(unless DK2020FLOW_PUBLIC_URL says otherwise)."""
"""The staff account `demo` makes, to sign in to `dk2020flow serve` with (docs/web.md)."""
DEMO_BROWSE_AT = "2024-03-01T10:00"
"""Where `serve --now` puts the console's clock on the demo: two months after the simulated
programme stopped (its cases are as they were then), when the organisations that had not
finished are late on a deadline (Fanø, round 2, Syddanmark, on its resubmission)."""
TIMELINE_SHOWN = 12
FORMATS = ("table", "csv", "json", "html")


class DemoExistsError(Dk2020flowError):
    """The demo folder already has a database: refuse rather than overwrite it."""


# ----------------------------------------------------------------------------- helpers


def _date(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise typer.BadParameter(
            f"{quoted(text)} is not a date; write YYYY-MM-DD", param_hint=option
        ) from None


def _default_period(workflow_path: Path) -> tuple[dt.date, dt.date]:
    """From the first of the month two months before the initial state's first fixed deadline
    (or today); to seven months after the latest cohort's planned end (or a year later)."""
    from dk2020flow.definition.loader import load_workflow

    workflow = load_workflow(workflow_path, check_templates=False).workflow
    fixed = [
        t.due.at
        for t in workflow.states[workflow.initial_state].timers.values()
        if t.due.at is not None
    ]
    if fixed:
        first = min(d.date() if isinstance(d, dt.datetime) else d for d in fixed)
        month = first.month - 2
        start = dt.date(first.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
    else:
        start = SystemClock().now().date()
    ends = [
        c.planned_end.date() if isinstance(c.planned_end, dt.datetime) else c.planned_end
        for c in workflow.cohorts.values()
    ]
    if ends:
        last = max(ends)
        month = last.month + 7
        end = dt.date(last.year + (month - 1) // 12, (month - 1) % 12 + 1, 1) - dt.timedelta(days=1)
    else:
        end = start.replace(year=start.year + 1)
    return start, max(end, start + dt.timedelta(days=1))


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]simulating[/]"),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=1.0)

        def update(fraction: float, label: str) -> None:
            bar.update(task, completed=fraction, description=label)

        yield update


def _summary_tables(result: SimulationResult) -> None:
    summary = result.summary
    if summary is None:  # a run always sums up; nothing to show otherwise
        return
    from rich.table import Table

    table = Table(title="Cases at the end", title_justify="left")
    table.add_column("state")
    cohorts = list(summary.by_cohort)
    for cohort in cohorts:
        table.add_column(cohort, justify="right")
    table.add_column("all", justify="right", style="bold")
    for state, total in summary.by_state.items():
        table.add_row(
            state,
            *(str(summary.by_cohort_state.get(c, {}).get(state, "")) for c in cohorts),
            str(total),
        )
    table.add_row(
        "all", *(str(summary.by_cohort[c]) for c in cohorts), str(summary.cases), style="bold"
    )
    out.print(table)
    mail = ", ".join(f"{n} {status}" for status, n in sorted(summary.mail.items())) or "none"
    out.print(
        f"{summary.actions} participant actions, {summary.timer_firings} timer firings, "
        f"{summary.refusals} refused; mail: {mail}; {summary.instants} instants in "
        f"{summary.wall_seconds:.1f} s"
    )


def _problems(result: SimulationResult) -> None:
    if not result.problems:
        out.print("[green]no problems found[/]")
        return
    out.print(f"[bold yellow]{len(result.problems)} problem(s) to fix:[/]")
    for problem in result.problems:
        examples = f" — e.g. {', '.join(problem.cases)}" if problem.cases else ""
        out.print(f"  [yellow]{problem.kind.value}[/]: {problem.message}{examples}", markup=True)
        out.print(f"      fix: {problem.hint}", markup=False, style="dim")


def _timeline_lines(result: SimulationResult) -> list[str]:
    """The timeline in the workflow's own time zone."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(result.timezone)
    return [
        f"{e.at.astimezone(zone):%Y-%m-%d %H:%M}  {e.organisation:<18} {e.text}"
        for e in result.timeline
    ]


def _find_workflow(start: Path) -> Path:
    """workflows/dk2020.yaml in the working or demo folder, else the copy shipped with dk2020flow."""
    for folder in (Path.cwd(), start):
        candidate = folder / "workflows" / "dk2020.yaml"
        if candidate.is_file():
            return candidate
    bundled = bundled_workflows().get("dk2020")
    if bundled is not None:
        return bundled
    raise Dk2020flowError(
        "cannot find workflows/dk2020.yaml (not here and not shipped with this install); "
        "run the demo from a clone of dk2020flow"
    )


# ----------------------------------------------------------------------------- commands


def simulate(
    workflow: Annotated[
        Path | None,
        typer.Argument(
            help="The workflow file to simulate, or a shipped workflow's name (dk2020).",
            show_default=False,
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from", help="First day (YYYY-MM-DD); default: shortly before the first deadline."
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--to", help="Last day (YYYY-MM-DD); default: a while after the last cohort ends."
        ),
    ] = None,
    participants: Annotated[
        Path | None,
        typer.Option("--participants", help="CSV of organisations and/or contacts to simulate."),
    ] = None,
    behaviour: Annotated[
        Path | None,
        typer.Option(
            "--behaviour",
            help="Behaviour profile (YAML/JSON); default: the workflow's own, behaviour/WORKFLOW.yaml beside its file (DK2020: the built-in one).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: the same seed, the same run.")
    ] = 0,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the mails (.eml) and the full timeline."),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when problems are flagged.")
    ] = False,
    print_behaviour: Annotated[
        bool,
        typer.Option("--print-behaviour", help="Print the default behaviour profile and stop."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the programme on a simulated clock through the real engine, scheduler and mail code.

    Uses a throwaway database; prints a timeline, a summary and the problems a process owner
    must fix. Exit 0 (also with problems; --strict: 1), 2 for bad input.
    """
    from dk2020flow.simulate import run_simulation
    from dk2020flow.simulate.profile import default_profile_path

    if print_behaviour:
        typer.echo(default_profile_path().read_text(encoding="utf-8"), nl=False)
        return
    if workflow is None:
        raise typer.BadParameter("give the workflow file to simulate", param_hint="WORKFLOW")
    workflow = workflow_path(workflow)
    if not workflow.is_file():
        raise typer.BadParameter(f"{workflow} is not a file", param_hint="WORKFLOW")
    for path, hint in ((participants, "--participants"), (behaviour, "--behaviour")):
        if path is not None and not path.is_file():
            raise typer.BadParameter(f"{path} is not a file", param_hint=hint)
    first, last = _date(start, "--from"), _date(end, "--to")
    if first is None or last is None:
        default_first, default_last = _default_period(workflow)
        first, last = first or default_first, last or default_last
    if last <= first:
        raise typer.BadParameter(f"--to {last} is not after --from {first}", param_hint="--to")
    with _progress(not as_json) as progress:
        result = run_simulation(
            workflow,
            start=first,
            end=last,
            participants_csv=participants,
            behaviour=behaviour,
            seed=seed,
            out_dir=out_dir,
            progress=progress,
        )
    if as_json:
        data = asdict(result)
        data["out_dir"] = str(out_dir) if out_dir else None
        print_json(data)
    else:
        _print_simulation(result, out_dir)
    if strict and result.problems:
        raise typer.Exit(1)


def _print_simulation(result: SimulationResult, out_dir: Path | None) -> None:
    lines = _timeline_lines(result)
    # The whole timeline is kept only where asked (--out): no folder left in /tmp (#15.20).
    timeline_file = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        timeline_file = out_dir / "timeline.txt"
        timeline_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.print(
        f"[bold]{result.workflow} {result.version}[/], profile {result.profile}, seed {result.seed}: "
        f"{local(result.start)[:10]} to {local(result.end)[:10]}"
    )
    if len(lines) <= 2 * TIMELINE_SHOWN:
        shown = lines
    else:
        hidden = len(lines) - 2 * TIMELINE_SHOWN
        shown = [*lines[:TIMELINE_SHOWN], f"   … {hidden} more …", *lines[-TIMELINE_SHOWN:]]
    for line in shown:
        out.print(line, markup=False, highlight=False)
    if timeline_file is None:
        out.print(
            f"full timeline ({len(lines)} events): run with --out DIR to keep it and the mails"
        )
    else:
        out.print(f"full timeline ({len(lines)} events): {timeline_file}")
        out.print(f"mails: {out_dir}/*.eml")
    _summary_tables(result)
    _problems(result)


def report(
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="The workflow to report on.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Report as of this day (YYYY-MM-DD, end of day); default: now."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv, json or html.")] = "table",
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file.")
    ] = None,
    db: DbOption = None,
) -> None:
    """The programme's report: sign-ups, states, overdue cases, CAPF requirements, mail."""
    from dk2020flow.report import render_html, render_table, to_csv, to_json

    if fmt not in FORMATS:
        raise typer.BadParameter(
            f"{quoted(fmt)}: choose one of {', '.join(FORMATS)}", param_hint="--format"
        )
    day = _date(at, "--at")  # its end, in the workflow's time zone (the report's)
    with open_service(db) as service:
        result = service.report(workflow=workflow, at=day)
    if fmt == "table":
        if out_file is None:
            out.print(render_table(result))
            return
        from rich.console import Console

        with out_file.open("w", encoding="utf-8") as handle:
            Console(file=handle, width=160, color_system=None).print(render_table(result))
    else:
        text = {"csv": to_csv, "json": to_json, "html": render_html}[fmt](result)
        if out_file is None:
            typer.echo(text, nl=False)
            return
        out_file.write_text(text, encoding="utf-8")
    err.print(f"wrote {out_file}", markup=False)


def demo(
    folder: Annotated[
        Path, typer.Option("--dir", help="Where to put the database, mails and report.")
    ] = Path(),
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh", help="Delete an earlier demo's database, outbox/ and report.html first."
        ),
    ] = False,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed of the simulated programme.")
    ] = 0,
) -> None:
    """Set up the shipped DK2020 programme to explore: database, its 98 municipalities, 2020-2023 simulated.

    Writes ./dk2020flow.db, the mails to ./outbox/ and the report to ./report.html. A second
    run refuses to touch an existing demo; --fresh starts over.
    """
    from rich.markup import escape

    from dk2020flow.definition.loader import load_workflow
    from dk2020flow.definition.model import text_in
    from dk2020flow.definition.template_check import language_name
    from dk2020flow.report import render_html
    from dk2020flow.service.core import open_service as open_at
    from dk2020flow.simulate import run_simulation
    from dk2020flow.simulate.runner import sqlite_file

    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "dk2020flow.db"
    outbox = folder / "outbox"
    report_file = folder / "report.html"
    if database.exists() and not fresh:
        raise DemoExistsError(
            f"{database} already exists: explore it (`dk2020flow case list`), or run "
            "`dk2020flow demo --fresh` to delete it, outbox/ and report.html and start over"
        )
    if fresh:
        for leftover in (database, Path(f"{database}-wal"), Path(f"{database}-shm"), report_file):
            leftover.unlink(missing_ok=True)
        if outbox.is_dir():
            shutil.rmtree(outbox)
    workflow = _find_workflow(folder)
    url = f"sqlite:///{database.resolve()}"
    assert sqlite_file(url) is not None
    programme = load_workflow(workflow, check_templates=False).workflow
    title = text_in(programme.title, programme.default_language, programme.workflow)
    out.print(f"simulating {title} from {DEMO_START} to {DEMO_END} ({workflow})", markup=False)
    with _progress(True) as progress:
        result = run_simulation(
            workflow,
            start=DEMO_START,
            end=DEMO_END,
            seed=seed,
            out_dir=outbox,
            db_url=url,
            progress=progress,
            public_url=DEMO_PUBLIC_URL,
        )
    with open_at(url, clock=FixedClock(result.end), settings=settings_for(None)) as service:
        report = service.report(workflow=result.workflow, at=result.end)
        service.accounts.add_user(
            DEMO_ACCOUNT,
            "DK2020-sekretariatet (demo)",
            ["secretariat", "follow_up", "admin"],
            actor="demo",
        )
    report_file.write_text(render_html(report), encoding="utf-8")
    _summary_tables(result)
    if result.problems:
        out.print(f"the simulation flagged {len(result.problems)} problem(s) in the workflow:")
        for problem in result.problems:
            out.print(f"  {problem.kind.value}: {problem.message}", markup=False)
    mails = len(list(outbox.glob("*.eml")))
    here = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder} && "
    out.print(
        f"""
[bold]Ready.[/] {escape(title)}, {DEMO_START.year}-{DEMO_END.year}, simulated through the real engine:
  database   {database}   (SQLite; the scheduler's and every command's default here)
  mails      {outbox}/    ({mails} .eml files, in {language_name(programme.default_language)})
  report     {report_file}   (open it in a browser)

Try next:
  {here}dk2020flow case list
  {here}dk2020flow case show Aarhus
  {here}dk2020flow case history Aarhus
  {here}dk2020flow report --at {DEMO_END}
  {here}dk2020flow scheduler status --now {DEMO_END}T23:59
  (the programme's clock stopped at the end of {DEMO_END.year}: as of today, without
  --now, the timers still pending from then show as overdue)

Browse it in the web console:
  {here}dk2020flow serve --now {DEMO_BROWSE_AT}
  then open http://127.0.0.1:8020/ and sign in as {DEMO_ACCOUNT}:
  the sign-in link arrives in {outbox}/ as the newest .eml file (docs/web.md)
Start over with `dk2020flow demo --fresh`."""
    )


def register(app: typer.Typer) -> None:
    """Mount the commands on the main app."""
    app.command("simulate")(handle_errors(simulate))
    app.command("report")(handle_errors(report))
    app.command("demo")(handle_errors(demo))


__all__ = ["demo", "register", "report", "simulate"]
