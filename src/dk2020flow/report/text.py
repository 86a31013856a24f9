"""The report as rich tables, CSV (one long table) and JSON."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from dk2020flow.report.model import Report

STATUS_LABELS = {
    "met": "met",
    "partly_met": "partly met",
    "not_met": "not met",
    "not_applicable": "n/a",
}
CSV_COLUMNS = ("section", "group", "category", "value")


def local_time(report: Report, instant: dt.datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return instant.astimezone(ZoneInfo(report.timezone)).strftime(fmt)


# ----------------------------------------------------------------------------- rich


def render_table(report: Report) -> RenderableType:
    """Every section as a rich table, one after another."""
    header = Text.assemble(
        (report.title, "bold"),
        f"  ·  {report.workflow} {report.version}  ·  as of {local_time(report, report.at)}"
        f"  ·  {report.cases} cases",
    )
    parts: list[RenderableType] = [header]

    decisions = Table(title="Decisions and sign-ups per region", title_justify="left")
    decisions.add_column("region")
    decisions.add_column("cases", justify="right")
    cohorts = list(report.signups)
    for cohort in cohorts:
        decisions.add_column(report.cohort_titles.get(cohort, cohort), justify="right")
    for state in report.region_states:
        decisions.add_column(report.state_titles.get(state, state), justify="right")
    for row in report.regions:
        decisions.add_row(
            row.region,
            str(row.cases),
            *(str(row.by_round.get(c, 0)) for c in cohorts),
            *(str(row.by_state.get(s, 0)) for s in report.region_states),
        )
    decisions.add_row(
        "all",
        str(report.cases),
        *(str(report.signups[c]) for c in cohorts),
        *(str(sum(r.by_state.get(s, 0) for r in report.regions)) for s in report.region_states),
        style="bold",
    )
    parts.append(decisions)

    states = Table(title="Cases per state", title_justify="left")
    states.add_column("state")
    states.add_column("cases", justify="right")
    for state, n in report.by_state.items():
        states.add_row(report.state_titles.get(state, state), str(n))
    parts.append(states)

    matrix = Table(title="Cases per state × cohort × region", title_justify="left")
    for column in ("state", "cohort", "region"):
        matrix.add_column(column)
    matrix.add_column("cases", justify="right")
    for count in report.states:
        matrix.add_row(
            report.state_titles.get(count.state, count.state),
            report.cohort_titles.get(count.cohort, count.cohort),
            count.region,
            str(count.cases),
        )
    parts.append(matrix)

    overdue = Table(title=f"Overdue ({len(report.overdue)})", title_justify="left")
    for column in ("organisation", "state", "deadline", "due", "days late", "owner"):
        overdue.add_column(column, justify="right" if column == "days late" else "left")
    for late in report.overdue:
        overdue.add_row(
            late.organisation,
            report.state_titles.get(late.state, late.state),
            late.deadline,
            local_time(report, late.due_at),
            str(late.days_overdue),
            ", ".join(late.owners),
        )
    if not report.overdue:
        overdue.add_row("nothing is overdue", "", "", "", "", "")
    parts.append(overdue)

    if report.requirements:
        capf = Table(
            title=f"{report.checklist_title}: status per requirement "
            f"({report.screened_cases} screened cases)",
            title_justify="left",
        )
        capf.add_column("item")
        capf.add_column("requirement")
        for label in STATUS_LABELS.values():
            capf.add_column(label, justify="right")
        capf.add_column("needed revision", justify="right")
        capf.add_column("holding back", justify="right")
        for req in report.requirements:
            capf.add_row(
                req.item,
                req.title,
                *(str(req.by_status.get(s, 0)) for s in STATUS_LABELS),
                str(req.needed_revision),
                str(req.holding_back) if req.holding_back else "",
                style="yellow" if req.holding_back else None,
            )
        parts.append(capf)

    mail = Table(title="Mail", title_justify="left")
    for status in report.mail:
        mail.add_column(status, justify="right")
    mail.add_row(*(str(n) for n in report.mail.values()))
    parts.append(mail)
    return Group(*parts)


def print_table(report: Report, console: Console) -> None:
    console.print(render_table(report))


# ----------------------------------------------------------------------------- csv / json


def rows(report: Report) -> Iterator[tuple[str, str, str, Any]]:
    """The report as (section, group, category, value) rows."""
    yield ("report", "title", "", report.title)
    yield ("report", "workflow", report.version, report.workflow)
    yield ("report", "at", "", report.at.isoformat())
    yield ("report", "cases", "", report.cases)
    for cohort, n in report.signups.items():
        yield ("signups", cohort, "", n)
    for region in report.regions:
        yield ("regions", region.region, "cases", region.cases)
        for cohort, n in region.by_round.items():
            yield ("regions", region.region, cohort, n)
        for state, n in region.by_state.items():
            yield ("regions", region.region, state, n)
    for state, n in report.by_state.items():
        yield ("states", state, "", n)
    for count in report.states:
        yield ("state_cohort_region", count.state, f"{count.cohort}/{count.region}", count.cases)
    for row in report.overdue:
        yield (
            "overdue",
            row.organisation,
            f"{row.state}.{row.deadline} due {row.due_at.isoformat()} owner {' & '.join(row.owners)}",
            row.days_overdue,
        )
    for req in report.requirements:
        for status, n in req.by_status.items():
            yield ("requirements", req.item, status, n)
        yield ("requirements", req.item, "needed_revision", req.needed_revision)
        yield ("requirements", req.item, "holding_back", req.holding_back)
    for status, n in report.mail.items():
        yield ("mail", status, "", n)
    over = report.over_time
    for i, month in enumerate(over.months):
        for j, state in enumerate(over.states):
            yield ("over_time", month.isoformat(), state, over.counts[i][j])


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows(report))
    return buffer.getvalue()


def to_json(report: Report) -> str:
    return json.dumps(_jsonable(asdict(report)), ensure_ascii=False, indent=2)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value
