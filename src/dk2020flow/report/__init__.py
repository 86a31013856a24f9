"""The programme report: numbers from the case logs, as tables, CSV, JSON or one HTML page."""

from dk2020flow.report.html import render_html
from dk2020flow.report.model import (
    MonthlyStates,
    OverdueCase,
    RegionDecisions,
    Report,
    RequirementStatus,
    StateCount,
    build_report,
)
from dk2020flow.report.text import print_table, render_table, to_csv, to_json

__all__ = [
    "MonthlyStates",
    "OverdueCase",
    "RegionDecisions",
    "Report",
    "RequirementStatus",
    "StateCount",
    "build_report",
    "print_table",
    "render_html",
    "render_table",
    "to_csv",
    "to_json",
]
