"""The report's charts as inline SVG, drawn with matplotlib (no display needed).

``matplotlib.figure.Figure`` is used directly, without pyplot, so no GUI
backend and no global figure state is involved; the SVG keeps its text as
text (``svg.fonttype: none``) so it is small and takes the page's font.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.dates as mdates
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from dk2020flow.report.model import Report

INK = "#1f2933"
MUTED = "#6b7785"
GRID = "#e4e7eb"
STATE_COLOURS = {
    "invited": "#c7d7ea",
    "declined": "#b8bec6",
    "not_participating": "#dde1e6",
    "withdrawn": "#d9534f",
    "approved": "#2e9e5b",
}
FLOW = [
    "#9ecae1",
    "#6baed6",
    "#4292c6",
    "#2171b5",
    "#08519c",
    "#5e4fa2",
    "#8e63b5",
    "#c07ec9",
    "#e8a33d",
    "#f0c75e",
]
REGION_COLOURS = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d"]
STATUS_COLOURS = {
    "met": "#2e9e5b",
    "partly_met": "#f0a030",
    "not_met": "#d9534f",
    "not_applicable": "#8a94a0",
    "needed_revision": "#c0607a",
    "holding_back": "#7b4fa6",
}
_XML_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)

_STYLE: Any = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.edgecolor": GRID,
    "axes.labelcolor": MUTED,
    "axes.titlesize": 11,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def state_colours(states: Sequence[str]) -> dict[str, str]:
    """A colour per state: the flow states in blues and purples, the outcomes as signals."""
    colours: dict[str, str] = {}
    flow = iter(FLOW)
    for state in states:
        colours[state] = STATE_COLOURS.get(state) or next(flow, "#7f8c99")
    return colours


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    with mpl.rc_context(_STYLE):
        figure.savefig(buffer, format="svg", bbox_inches="tight", transparent=True)
    text = _XML_PROLOGUE.sub("", buffer.getvalue(), count=1)
    # Scale with the page: drop the fixed size, keep the viewBox.
    return re.sub(
        r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart"', text, count=1
    )


def states_over_time(report: Report) -> str:
    """Stacked area: cases per state at the start of every month."""
    over = report.over_time
    with mpl.rc_context(_STYLE):
        figure = Figure(figsize=(10.5, 4.2))
        axes = figure.add_subplot()
        if not over.months:
            axes.text(0.5, 0.5, "no events yet", ha="center", va="center", color=MUTED)
            axes.set_axis_off()
            return _svg(figure)
        colours = state_colours(over.states)
        series = [[row[j] for row in over.counts] for j in range(len(over.states))]
        labels = [report.state_titles.get(s, s) for s in over.states]
        xs = [float(x) for x in mdates.date2num(over.months)]  # type: ignore[no-untyped-call]
        axes.stackplot(
            xs,
            series,
            labels=labels,
            colors=[colours[s] for s in over.states],
            linewidth=0.4,
            edgecolor="white",
        )
        axes.set_xlim(xs[0], xs[-1])
        locator = mdates.AutoDateLocator(minticks=4, maxticks=12)  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        axes.set_ylim(0, max(1, *(sum(row) for row in over.counts)) * 1.02)
        axes.set_ylabel("cases")
        axes.grid(axis="y", color=GRID, linewidth=0.6)
        axes.set_axisbelow(True)
        handles, names = axes.get_legend_handles_labels()
        axes.legend(
            handles[::-1],
            names[::-1],
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            frameon=False,
            fontsize=9,
        )
        return _svg(figure)


def signups_per_round(report: Report) -> str:
    """Bars: cases that joined each round, stacked by region."""
    cohorts = list(report.signups)
    regions = [r.region for r in report.regions]
    with mpl.rc_context(_STYLE):
        figure = Figure(figsize=(6.2, 3.9))
        axes = figure.add_subplot()
        labels = [report.cohort_titles.get(c, c) for c in cohorts]
        bottom = [0] * len(cohorts)
        for number, region in enumerate(report.regions):
            values = [region.by_round.get(c, 0) for c in cohorts]
            axes.bar(
                labels,
                values,
                bottom=bottom,
                label=region.region,
                color=REGION_COLOURS[number % len(REGION_COLOURS)],
                width=0.6,
                edgecolor="white",
                linewidth=0.6,
            )
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        for x, total in enumerate(bottom):
            axes.text(x, total, f"{total}", ha="center", va="bottom", color=INK, fontweight="bold")
        axes.set_ylim(0, max([1, *bottom]) * 1.15)
        axes.set_ylabel("organisations")
        axes.grid(axis="y", color=GRID, linewidth=0.6)
        axes.set_axisbelow(True)
        if regions:
            axes.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _svg(figure)


def requirement_heatmap(report: Report) -> str:
    """Requirements × status: how many screened cases got each status for each requirement."""
    requirements = report.requirements
    columns = [*STATUS_COLOURS]
    titles = ["met", "partly met", "not met", "n/a", "needed\nrevision", "holding\nback"]
    with mpl.rc_context(_STYLE):
        figure = Figure(figsize=(9.5, 0.3 * max(4, len(requirements)) + 0.9))
        axes = figure.add_subplot()
        if not requirements:
            axes.text(0.5, 0.5, "no checklist", ha="center", va="center", color=MUTED)
            axes.set_axis_off()
            return _svg(figure)
        values = [
            [
                *(req.by_status.get(s, 0) for s in columns[:-2]),
                req.needed_revision,
                req.holding_back,
            ]
            for req in requirements
        ]
        peaks = [max(1, *(row[j] for row in values)) for j in range(len(columns))]
        image = []
        for row in values:
            cells = []
            for j, value in enumerate(row):
                r, g, b, _ = to_rgba(STATUS_COLOURS[columns[j]])
                strength = 0.08 + 0.92 * (value / peaks[j]) if value else 0.0
                cells.append(
                    (1 - strength * (1 - r), 1 - strength * (1 - g), 1 - strength * (1 - b))
                )
            image.append(cells)
        axes.imshow(image, aspect="auto", interpolation="nearest")
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                dark = value and value / peaks[j] > 0.55
                axes.text(
                    j,
                    i,
                    str(value) if value else "·",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if dark else INK,
                )
        axes.set_xticks(range(len(columns)), titles)
        axes.xaxis.tick_top()
        axes.set_yticks(
            range(len(requirements)),
            [f"{req.item}  {_short(req.title, 60)}" for req in requirements],
        )
        axes.tick_params(length=0)
        for spine in axes.spines.values():
            spine.set_visible(False)
        return _svg(figure)


def _short(text: str, limit: int = 42) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
