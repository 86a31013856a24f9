"""`dk2020flow case …`: open, list, show, fire, set, check, extend, history, verify, migrate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dk2020flow.cli.common import (
    ActorOption,
    DbOption,
    InvalidOptionError,
    JsonOption,
    NowOption,
    WorkflowOption,
    actor_name,
    handle_errors,
    local,
    open_reader,
    open_service,
    out,
    parse_now,
    parse_pairs,
    print_json,
    to_jsonable,
)
from dk2020flow.cli.documents import documents_app
from dk2020flow.errors import quoted

if TYPE_CHECKING:
    from dk2020flow.engine.records import CaseSnapshot
    from dk2020flow.service.migrate import MigrationPlan

case_app = typer.Typer(
    no_args_is_help=True, help="Open cases and move them through their workflow."
)
case_app.add_typer(documents_app)  # attach, documents, download (cli/documents.py)

DataOption = Annotated[
    list[str] | None,
    typer.Option("--data", "-d", help="FIELD=VALUE carried by the trigger (repeat for more)."),
]
CommentOption = Annotated[str, typer.Option("--comment", "-m", help="A comment for the log.")]


def _summary(case: CaseSnapshot) -> dict[str, object]:
    return {
        "id": case.id,
        "workflow": case.workflow,
        "organisation": case.organisation_name,
        "code": case.organisation_code,
        "region": case.region,
        "cohort": case.cohort,
        "state": case.state,
        "entered_at": case.entered_at,
        "version": case.version,
    }


def _said(case: CaseSnapshot, verb: str) -> None:
    out.print(
        f"case {case.id} ({case.organisation_name}, {case.workflow}) {verb}: state {case.state}"
    )


@case_app.command("open")
@handle_errors
def open_(
    workflow: Annotated[str, typer.Argument(help="The workflow, e.g. dk2020 or eu_mission.")],
    organisation: Annotated[
        str | None,
        typer.Argument(help="Organisation name or code (or --all / --from FILE)."),
    ] = None,
    every: Annotated[
        bool,
        typer.Option("--all", help="Open a case for every organisation that has none yet."),
    ] = False,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Open a case for each organisation in FILE (UTF-8, one code or name a line; "
            "blank lines and # comments are ignored).",
        ),
    ] = None,
    role: Annotated[str | None, typer.Option("--role", "-r", help="Your role.")] = None,
    cohort: Annotated[
        str | None, typer.Option("--cohort", help="The cohort (round), if known.")
    ] = None,
    state: Annotated[
        str | None,
        typer.Option("--state", help="Open directly in this later state (needs --reason)."),
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", help="Why the case starts in a later state.")
    ] = "",
    data: DataOption = None,
    actor: ActorOption = None,
    db: DbOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open a case for an organisation in a workflow (timers are computed from --now).

    With --all or --from FILE, many in one transaction: all are opened or none; those that
    already have a case in the workflow are skipped and listed.
    """
    given = [
        n
        for n, on in (
            ("ORGANISATION", organisation is not None),
            ("--all", every),
            ("--from", from_file is not None),
        )
        if on
    ]
    if len(given) != 1:
        raise InvalidOptionError(
            "give one of ORGANISATION, --all or --from FILE"
            + (f" (not {' and '.join(given)} together)" if given else "")
        )
    entries = _organisation_lines(from_file) if from_file is not None else None
    service = open_service(db, now)
    if organisation is None:
        done = service.open_cases(
            workflow,
            entries,
            actor=actor_name(actor),
            role=role,
            cohort=cohort,
            state=state,
            reason=reason,
            data=parse_pairs(data, "--data"),
        )
        if as_json:
            print_json(
                {
                    "opened": [_summary(c) for c in done.opened],
                    "skipped": [_summary(c) for c in done.skipped],
                }
            )
            return
        out.print(f"opened {len(done.opened)} case(s) in {workflow}", markup=False)
        if done.skipped:
            names = ", ".join(f"{c.organisation_name} (#{c.id})" for c in done.skipped)
            out.print(
                f"skipped {len(done.skipped)} that already have a case: {names}", markup=False
            )
        return
    case = service.open_case(
        workflow,
        organisation,
        actor=actor_name(actor),
        role=role,
        cohort=cohort,
        state=state,
        reason=reason,
        data=parse_pairs(data, "--data"),
    )
    if as_json:
        print_json(_summary(case))
    else:
        _said(case, "opened")


def _organisation_lines(path: Path) -> list[tuple[str, str]]:
    """``--from FILE``: (``FILE:LINE``, code or name) for each line that names one."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InvalidOptionError(f"--from: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise InvalidOptionError(
            f"--from: {path}:{line}: not UTF-8 text; save the file as UTF-8"
        ) from None
    entries = [
        (f"{path}:{number}", line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("#")
    ]
    if not entries:
        raise InvalidOptionError(f"--from: {path} names no organisation")
    return entries


@case_app.command("list")
@handle_errors
def list_(
    workflow: WorkflowOption = None,
    state: Annotated[str | None, typer.Option("--state", help="Only cases in this state.")] = None,
    cohort: Annotated[str | None, typer.Option("--cohort", help="Only this cohort.")] = None,
    region: Annotated[str | None, typer.Option("--region", help="Only this region.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only cases past a deadline.")] = False,
    db: DbOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """List cases, filtered by workflow, state, cohort, region or overdue."""
    from dk2020flow.store.port import CaseFilter

    # Without --overdue, the light queries: no engine, mail or workflow parsing to import (#15.18).
    source = open_service(db, now) if overdue else open_reader(db)
    # Parsed once the database is open: a --now without an offset is in its programme's
    # timezone. A given but empty or unreadable --now is refused either way.
    instant = parse_now(now)
    flt = CaseFilter(
        workflow=workflow,
        state=state,
        cohort=cohort,
        region=region,
        overdue_at=instant if overdue else None,
    )
    cases = source.cases(flt)
    if as_json:
        print_json([_summary(c) for c in cases])
        return
    from rich.table import Table

    table = Table(title=f"{len(cases)} case(s)")
    for column in ("id", "workflow", "organisation", "region", "cohort", "state", "since"):
        table.add_column(column)
    for c in cases:
        table.add_row(
            str(c.id),
            c.workflow,
            c.organisation_name,
            c.region,
            c.cohort or "—",
            c.state,
            local(c.entered_at),
        )
    out.print(table)


@case_app.command("show")
@handle_errors
def show(
    case: Annotated[str, typer.Argument(help="Case number (#12), or organisation code or name.")],
    workflow: WorkflowOption = None,
    db: DbOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a case: state, data, checklists, pending deadlines, queued mail, warnings."""
    service = open_service(db, now)
    details = service.show(case, workflow=workflow)
    c = details.case
    if as_json:
        print_json(
            {
                **_summary(c),
                "definition_version": details.definition_version,
                "data": dict(c.data),
                "checklists": {
                    k: {
                        i: {"status": v.status, "comment": v.comment, "answer": v.answer}
                        for i, v in items.items()
                    }
                    for k, items in c.checklists.items()
                },
                "pending_timers": [
                    {
                        "timer": t.timer,
                        "kind": t.kind,
                        "index": t.index,
                        "due_at": t.due_at,
                        "deadline_at": t.deadline_at,
                    }
                    for t in details.timers
                ],
                "outbox": [
                    {
                        "id": m.id,
                        "template": m.template,
                        "status": m.status,
                        "subject": m.subject,
                        "not_before": m.not_before,
                    }
                    for m in details.outbox
                ],
                "possible_triggers": details.possible_triggers,
                "warnings": details.warnings,
            }
        )
        return
    out.print(f"[bold]case {c.id}[/] {c.organisation_name} ({c.organisation_code}, {c.region})")
    out.print(
        f"workflow {c.workflow} version {details.definition_version}, cohort {c.cohort or '—'}"
    )
    out.print(f"state [bold]{c.state}[/] since {local(c.entered_at)}; opened {local(c.opened_at)}")
    if c.data:
        out.print("data: " + ", ".join(f"{k}={v}" for k, v in sorted(c.data.items())), markup=False)
    for name, items in c.checklists.items():
        counts: dict[str, int] = {}
        for item in items.values():
            counts[item.status] = counts.get(item.status, 0) + 1
        out.print(f"checklist {name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        from dk2020flow.definition.model import ANSWERABLE_STATUSES  # not for `case list`

        for item_id, item in items.items():
            if item.status in ANSWERABLE_STATUSES:
                answer = f"; answer: {item.answer}" if item.answer else "; not answered"
                out.print(f"  {item_id} {item.status}: {item.comment or '—'}{answer}", markup=False)
    out.print("possible triggers: " + (", ".join(details.possible_triggers) or "none"))
    from rich.table import Table

    timers = Table(title="pending deadlines")
    for column in ("timer", "firing", "due", "deadline"):
        timers.add_column(column)
    for t in details.timers:
        timers.add_row(
            t.timer,
            f"{t.kind}{'#' + str(t.index) if t.index else ''}",
            local(t.due_at),
            local(t.deadline_at),
        )
    out.print(timers)
    mail = Table(title="mail")
    for column in ("id", "template", "status", "to", "subject"):
        mail.add_column(column)
    for m in details.outbox:
        mail.add_row(
            str(m.id), m.template, m.status, ", ".join(a for _, a in m.to) or "—", m.subject
        )
    out.print(mail)
    for warning in details.warnings:
        out.print(f"[yellow]warning:[/] {warning}")


@case_app.command("fire")
@handle_errors
def fire(
    case: Annotated[str, typer.Argument(help="Case number (#12), or organisation code or name.")],
    trigger: Annotated[str, typer.Argument(help="The trigger, e.g. decide_participate.")],
    role: Annotated[str, typer.Option("--role", "-r", help="The role you act in.")],
    data: DataOption = None,
    comment: CommentOption = "",
    actor: ActorOption = None,
    workflow: WorkflowOption = None,
    db: DbOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fire a trigger on a case. A refusal says why, exits 3 and changes nothing."""
    service = open_service(db, now)
    moved = service.fire(
        case,
        trigger,
        actor=actor_name(actor),
        role=role,
        data=parse_pairs(data, "--data"),
        comment=comment,
        workflow=workflow,
    )
    if as_json:
        print_json(_summary(moved))
    else:
        _said(moved, f"{trigger}")


@case_app.command("set")
@handle_errors
def set_(
    case: Annotated[str, typer.Argument(help="Case number (#12), or organisation code or name.")],
    values: Annotated[list[str], typer.Argument(help="FIELD=VALUE pairs.")],
    role: Annotated[str, typer.Option("--role", "-r", help="The role you act in.")],
    comment: CommentOption = "",
    actor: ActorOption = None,
    workflow: WorkflowOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Set or correct case data outside a transition (logged)."""
    service = open_service(db, now)
    changed = service.set_data(
        case,
        parse_pairs(values, "FIELD=VALUE"),
        actor=actor_name(actor),
        role=role,
        comment=comment,
        workflow=workflow,
    )
    _said(changed, "updated")


@case_app.command("check")
@handle_errors
def check(
    case: Annotated[str, typer.Argument(help="Case number (#12), or organisation code or name.")],
    checklist: Annotated[str, typer.Argument(help="The checklist, e.g. capf.")],
    items: Annotated[
        list[str],
        typer.Argument(help="ITEM=STATUS pairs (met, partly_met, not_met, not_applicable)."),
    ],
    role: Annotated[str, typer.Option("--role", "-r", help="The role you act in.")],
    comment: CommentOption = "",
    actor: ActorOption = None,
    workflow: WorkflowOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Record checklist statuses (e.g. the CAPF screening) for one or many items."""
    service = open_service(db, now)
    pairs = parse_pairs(items, "ITEM=STATUS")
    changed = service.check(
        case,
        checklist,
        {k: (v, comment) for k, v in pairs.items()},
        actor=actor_name(actor),
        role=role,
        workflow=workflow,
    )
    _said(changed, f"{checklist} recorded")


@case_app.command("answer")
@handle_errors
def answer(
    case: Annotated[str, typer.Argument(help="Case number (#12), or organisation code or name.")],
    checklist: Annotated[str, typer.Argument(help="The checklist, e.g. capf.")],
    answers: Annotated[
        list[str],
        typer.Argument(help="ITEM=ANSWER pairs, for items that need revision (quote the answer)."),
    ],
    role: Annotated[str, typer.Option("--role", "-r", help="The role you act in.")],
    actor: ActorOption = None,
    workflow: WorkflowOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Answer the reviewer's comments on checklist items that need revision (partly_met or
    not_met), e.g. as the organisation's contact person."""
    service = open_service(db, now)
    pairs = parse_pairs(answers, "ITEM=ANSWER")
    changed = service.answer(
        case,
        checklist,
        pairs,
        actor=actor_name(actor),
        role=role,
        workflow=workflow,
    )
    _said(changed, f"{checklist} answered")


@case_app.command("extend")
@handle_errors
def extend(
    case: Annotated[str, typer.Argument(help="Case number (#12), or organisation code or name.")],
    timer: Annotated[str, typer.Argument(help="The deadline (timer name), e.g. plan_due.")],
    role: Annotated[str, typer.Option("--role", "-r", help="The role you act in.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the deadline moves (logged).")],
    to: Annotated[str | None, typer.Option("--to", help="The new deadline (ISO 8601).")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Move by a span, e.g. P1M.")] = None,
    actor: ActorOption = None,
    workflow: WorkflowOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Move one deadline of one case, with a reason; reminders are recomputed."""
    service = open_service(db, now)
    from dk2020flow.definition.durations import parse_duration

    try:
        span = parse_duration(by) if by is not None else None
    except ValueError as exc:
        message = str(exc).replace(repr(by), quoted(by or ""))
        raise InvalidOptionError(f"--by: {message}") from None
    new = parse_now(to, option="--to") if to is not None else None
    changed = service.extend(
        case,
        timer,
        actor=actor_name(actor),
        role=role,
        reason=reason,
        to=new,
        by=span,
        workflow=workflow,
    )
    _said(changed, f"deadline {timer} moved")


@case_app.command("history")
@handle_errors
def history(
    case: Annotated[str, typer.Argument(help="Case number (#12), or organisation code or name.")],
    workflow: WorkflowOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The case's append-only log: every change with actor, role, trigger and time."""
    service = open_service(db)
    snapshot, events = service.history(case, workflow=workflow)
    if as_json:
        print_json(
            [
                {
                    "seq": e.seq,
                    "at": e.record.at,
                    "kind": e.record.kind,
                    "actor": e.record.actor,
                    "role": e.record.role,
                    "trigger": e.record.trigger,
                    "from": e.record.from_state,
                    "to": e.record.to_state,
                    "comment": e.record.comment,
                    "data": dict(e.record.data),
                }
                for e in events
            ]
        )
        return
    from rich.table import Table

    table = Table(title=f"case {snapshot.id} {snapshot.organisation_name}: {len(events)} event(s)")
    for column in ("#", "at", "kind", "who", "trigger", "from → to", "comment"):
        table.add_column(column)
    for e in events:
        r = e.record
        who = f"{r.actor} ({r.role})" if r.role else r.actor
        move = f"{r.from_state or '—'} → {r.to_state or '—'}"
        table.add_row(str(e.seq), local(r.at), r.kind, who, r.trigger or "", move, r.comment)
    out.print(table)


@case_app.command("verify")
@handle_errors
def verify(
    case: Annotated[
        str | None,
        typer.Argument(help="Case number (#12), or organisation code or name (or --all)."),
    ] = None,
    all_cases: Annotated[
        bool, typer.Option("--all", help="Every case (of --workflow, if given).")
    ] = False,
    workflow: WorkflowOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the audit log: each event's hash chain, and that replaying it gives the case.

    Exit 0 when every case checks out, 7 when one does not (a line per problem).
    """
    if (case is None) == (not all_cases):
        raise InvalidOptionError("give a CASE or --all (not both)")
    from dk2020flow.service.verify import VERIFY_FAILED_EXIT

    service = open_service(db)
    checks = service.verify(case, workflow=workflow)
    failed = [c for c in checks if not c.ok]
    if as_json:
        print_json(
            [
                {
                    "case": c.case_id,
                    "workflow": c.workflow,
                    "organisation": c.organisation,
                    "events": c.events,
                    "ok": c.ok,
                    "problems": list(c.problems),
                }
                for c in checks
            ]
        )
    else:
        for c in failed:
            for problem in c.problems:
                out.print(
                    f"case {c.case_id} ({c.organisation}, {c.workflow}): {problem}", markup=False
                )
        events = sum(c.events for c in checks)
        if failed:
            out.print(
                f"{len(failed)} of {len(checks)} case(s) do not check out ({events} event(s) read)",
                markup=False,
            )
        else:
            out.print(
                f"{len(checks)} case(s), {events} event(s): every hash chain is intact and "
                "every log replays to its case",
                markup=False,
            )
    if failed:
        raise typer.Exit(VERIFY_FAILED_EXIT)


MIGRATE_ROWS = 50
"""Cases a migration's table shows (``--json`` has every case): at a million cases a row
per case is more than anyone reads, and most of the command's time."""


@case_app.command("migrate")
@handle_errors
def migrate(
    workflow: Annotated[
        str, typer.Argument(help="The workflow whose open cases move to its newest version.")
    ],
    mapping: Annotated[
        list[str] | None, typer.Option("--map", help="OLD_STATE=NEW_STATE (repeat for more).")
    ] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Migrate; without it, a dry run.")] = False,
    actor: ActorOption = None,
    db: DbOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move running cases to the newest loaded version: a dry run first, then --apply."""
    service = open_service(db, now)
    plan = service.migrate(
        workflow,
        state_map=parse_pairs(mapping, "--map"),
        actor=actor_name(actor),
        dry_run=not apply,
        items_kept=None if as_json else MIGRATE_ROWS,
    )
    if as_json:
        print_plan_json(plan)
    else:
        _print_plan(plan)
    if plan.problems:
        raise typer.Exit(3)


def print_plan_json(plan: MigrationPlan) -> None:
    """``print_json(plan)``'s very text, written an item at a time: at a million cases the
    whole text at once (and the copies ``asdict`` makes on the way) would take gigabytes."""
    import json
    from dataclasses import replace

    head = json.dumps(to_jsonable(replace(plan, items=[])), ensure_ascii=False, indent=2)
    before, after = head.split('"items": []', 1)
    typer.echo(before + '"items": [', nl=False)
    for n, item in enumerate(plan.items):
        text = json.dumps(to_jsonable(item), ensure_ascii=False, indent=2)
        typer.echo(("," if n else "") + "\n    " + text.replace("\n", "\n    "), nl=False)
    typer.echo(("\n  ]" if plan.items else "]") + after)


def _print_plan(plan: MigrationPlan) -> None:
    """The first ``MIGRATE_ROWS`` cases of the plan, how many cases go from which state to
    which, and every case with a problem (what must be fixed before anything moves): what
    ``Service.migrate(items_kept=MIGRATE_ROWS)`` returns."""
    from rich.table import Table

    table = Table(
        title=f"{plan.workflow}: {', '.join(plan.from_versions) or '—'} → {plan.to_version}"
    )
    columns = ("case", "organisation", "state", "timers", "kept", "not re-armed", "problem")
    for column in columns:
        table.add_column(column)
    for item in plan.items[:MIGRATE_ROWS]:
        timers = "; ".join(f"{t} {k} {local(at)}" for t, k, at in item.timers)
        kept = "; ".join(f"{t} extended to {local(at)}" for t, at in item.kept_deadlines)
        done = "; ".join(f"{t} {k} (fired {local(at)})" for t, k, at in item.not_rearmed)
        table.add_row(
            str(item.case_id),
            item.organisation,
            f"{item.from_state} → {item.to_state}",
            timers,
            kept,
            done,
            item.problem,
        )
    out.print(table)
    more = plan.cases - MIGRATE_ROWS
    if more > 0:
        out.print(f"… {more:,} more case(s): --json lists every case", markup=False)
    if plan.cases:
        out.print(f"{plan.cases:,} case(s), by state (old → new):", markup=False)
    else:
        out.print("no case to move: every open case is on the newest version")
    for old, new, count in plan.moves:
        out.print(f"  {old} → {new}: {count:,}", markup=False)
    problems = plan.problems
    if problems:
        out.print(f"{len(problems):,} case(s) with a problem:", markup=False)
        for item in problems:
            out.print(
                f"  case {item.case_id} ({item.organisation}, {item.from_state}): {item.problem}",
                markup=False,
            )
    if plan.applied:
        out.print(f"migrated {plan.moved} case(s)")
    elif problems:
        out.print("nothing migrated: fix the problems above (e.g. with --map)")
    else:
        out.print("dry run: nothing changed; run again with --apply to migrate")
