"""The report as one self-contained HTML file: inline CSS, charts as inline SVG."""

from __future__ import annotations

from html import escape

from dk2020flow import __version__
from dk2020flow.report.model import Report
from dk2020flow.report.text import STATUS_LABELS, local_time

CSS = """
:root { --ink:#1f2933; --muted:#6b7785; --line:#e4e7eb; --bg:#f6f7f9; --card:#fff;
        --accent:#1d5fa8; --good:#2e9e5b; --warn:#d98b1c; --bad:#c9413d; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:linear-gradient(120deg,#0f3d6e,#1d5fa8 60%,#2e9e5b); color:#fff; padding:28px 40px 24px; }
header h1 { margin:0 0 4px; font-size:26px; font-weight:650; letter-spacing:-.01em; }
header p { margin:0; opacity:.88; }
main { max-width:1180px; margin:0 auto; padding:24px 32px 48px; }
.kpis { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:14px; margin:-44px 0 24px; }
.kpi { background:var(--card); border-radius:10px; padding:14px 16px; box-shadow:0 1px 3px rgba(15,35,60,.12); }
.kpi b { display:block; font-size:28px; line-height:1.1; font-weight:650; }
.kpi span { color:var(--muted); font-size:13px; }
.kpi.good b { color:var(--good); } .kpi.warn b { color:var(--warn); } .kpi.bad b { color:var(--bad); }
section { background:var(--card); border-radius:10px; padding:18px 22px 20px; margin:0 0 20px; overflow-x:auto;
          box-shadow:0 1px 3px rgba(15,35,60,.08); }
section h2 { margin:0 0 4px; font-size:18px; }
section p.lead { margin:0 0 12px; color:var(--muted); font-size:14px; }
.row { display:grid; grid-template-columns:minmax(0,1fr) minmax(0,1fr); gap:20px; }
.row.split { grid-template-columns:minmax(0,5fr) minmax(0,6fr); }
@media (max-width: 900px) { .row { grid-template-columns:1fr; } }
svg.chart { width:100%; height:auto; display:block; }
table { border-collapse:collapse; width:100%; font-size:14px; font-variant-numeric:tabular-nums; }
th, td { padding:6px 8px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { font-weight:600; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
td.n, th.n { text-align:right; }
tr.total td { font-weight:650; border-top:2px solid var(--ink); }
tbody tr:hover { background:#f3f6fa; }
.pill { display:inline-block; padding:1px 8px; border-radius:99px; font-size:12px; background:#eef2f7; }
.late { color:var(--bad); font-weight:600; }
.empty { color:var(--muted); font-style:italic; }
.scroll { max-height:420px; overflow:auto; }
details { margin-top:10px; } summary { cursor:pointer; color:var(--accent); }
footer { color:var(--muted); font-size:12px; text-align:center; padding:8px 0 32px; }
"""


def _n(value: int) -> str:
    return f'<td class="n">{value}</td>'


def _table(head: list[str], body: list[str], *, numeric_from: int = 1, total: str = "") -> str:
    cells = "".join(
        f'<th class="n">{escape(h)}</th>' if i >= numeric_from else f"<th>{escape(h)}</th>"
        for i, h in enumerate(head)
    )
    rows = "".join(body) + total
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table>"


def render_html(report: Report) -> str:
    from dk2020flow.report import charts  # matplotlib: only the HTML report pays its import

    title = escape(report.title)
    when = local_time(report, report.at)
    joined = sum(report.signups.values())
    kpis = [
        ("", report.cases, "cases"),
        ("", joined, "joined a round"),
        *(
            ("good", report.by_state.get(state, 0), report.state_titles.get(state, state))
            for state in report.completed_states
        ),
        ("warn" if report.overdue else "", len(report.overdue), "overdue deadlines"),
        ("", report.mail.get("sent", 0), "mails sent"),
        (
            "bad" if report.mail.get("dead", 0) + report.mail.get("parked", 0) else "",
            report.mail.get("dead", 0) + report.mail.get("parked", 0),
            "mails dead or parked",
        ),
    ]
    kpi_html = "".join(
        f'<div class="kpi {cls}"><b>{value}</b><span>{escape(label)}</span></div>'
        for cls, value, label in kpis
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — report {escape(when)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>{title}</h1>
<p>Programme report as of <b>{escape(when)}</b> ({escape(report.timezone)}) ·
workflow {escape(report.workflow)} {escape(report.version)}</p></header>
<main>
<div class="kpis">{kpi_html}</div>
<section><h2>The programme over time</h2>
<p class="lead">Cases in each state at the start of every month, from the case logs.</p>
{charts.states_over_time(report)}</section>
<div class="row split">
<section><h2>Sign-ups per round</h2>
<p class="lead">Organisations that joined each round, by region.</p>
{charts.signups_per_round(report)}</section>
<section><h2>Cases per state</h2>{_states(report)}</section>
</div>
<section><h2>Decisions per region</h2>
<p class="lead">Who joined which round, and where the others are: still deciding, declined or
not selected, or ended (each a state of the workflow).</p>
{_regions(report)}</section>
<section><h2>{escape(report.checklist_title or "Checklist")}: which requirements hold cases back</h2>
<p class="lead">For each requirement, the latest screening status across the {report.screened_cases}
screened cases; <i>needed revision</i> counts cases where it fell short in at least one screening,
<i>holding back</i> open cases in screening or revision where it is partly or not met now.</p>
{charts.requirement_heatmap(report)}
<details><summary>The requirements in full</summary>{_requirements(report)}</details>
</section>
<section><h2>Overdue ({len(report.overdue)})</h2>
<p class="lead">Deadlines that have passed while the case is still in the state; the owner is the role the
deadline mails.</p>
<div class="scroll">{_overdue(report)}</div></section>
<div class="row split">
<section><h2>Mail</h2><p class="lead">The outbox: sent, waiting, and what needs an operator.</p>
{_mail(report)}</section>
<section><h2>Cases per state, cohort and region</h2><div class="scroll">{_matrix(report)}</div></section>
</div>
</main>
<footer>dk2020flow {escape(__version__)} · generated from the case logs ·
<code>dk2020flow report --format html</code></footer>
</body></html>
"""


def _regions(report: Report) -> str:
    cohorts = list(report.signups)
    head = [
        "region",
        "cases",
        *(report.cohort_titles.get(c, c) for c in cohorts),
        *(report.state_titles.get(s, s) for s in report.region_states),
    ]
    body = [
        f"<tr><td>{escape(r.region)}</td>{_n(r.cases)}"
        + "".join(_n(r.by_round.get(c, 0)) for c in cohorts)
        + "".join(_n(r.by_state.get(s, 0)) for s in report.region_states)
        + "</tr>"
        for r in report.regions
    ]
    total = (
        f'<tr class="total"><td>all</td>{_n(report.cases)}'
        + "".join(_n(report.signups[c]) for c in cohorts)
        + "".join(
            _n(sum(r.by_state.get(s, 0) for r in report.regions)) for s in report.region_states
        )
        + "</tr>"
    )
    return _table(head, body, total=total)


def _requirements(report: Report) -> str:
    head = ["item", "requirement", *STATUS_LABELS.values(), "needed revision", "holding back"]
    body = [
        f"<tr><td><b>{escape(r.item)}</b></td><td>{escape(r.title)}</td>"
        + "".join(_n(r.by_status.get(s, 0)) for s in STATUS_LABELS)
        + _n(r.needed_revision)
        + (f'<td class="n late">{r.holding_back}</td>' if r.holding_back else _n(0))
        + "</tr>"
        for r in report.requirements
    ]
    if not body:
        return '<p class="empty">The workflow has no checklist.</p>'
    return _table(head, body, numeric_from=2)


def _overdue(report: Report) -> str:
    if not report.overdue:
        return '<p class="empty">Nothing is overdue.</p>'
    body = [
        f"<tr><td>{escape(r.organisation)}</td><td>{escape(r.region)}</td>"
        f'<td><span class="pill">{escape(report.state_titles.get(r.state, r.state))}</span></td>'
        f"<td>{escape(r.deadline)}<br><small>{escape(r.description)}</small></td>"
        f"<td>{escape(local_time(report, r.due_at))}</td>"
        f'<td class="n late">{r.days_overdue}</td><td>{escape(", ".join(r.owners))}</td></tr>'
        for r in report.overdue
    ]
    return _table(
        ["organisation", "region", "state", "deadline", "was due", "days late", "owner"],
        body,
        numeric_from=99,
    )


def _states(report: Report) -> str:
    from dk2020flow.report import charts

    colours = charts.state_colours(list(report.by_state))
    body = [
        f'<tr><td><span class="pill" style="background:{colours[s]}33;border-left:4px solid {colours[s]}">'
        f"{escape(report.state_titles.get(s, s))}</span></td>{_n(n)}</tr>"
        for s, n in report.by_state.items()
    ]
    return _table(["state", "cases"], body)


def _mail(report: Report) -> str:
    body = [f"<tr><td>{escape(status)}</td>{_n(n)}</tr>" for status, n in report.mail.items()]
    return _table(["status", "messages"], body)


def _matrix(report: Report) -> str:
    body = [
        f"<tr><td>{escape(report.state_titles.get(c.state, c.state))}</td>"
        f"<td>{escape(report.cohort_titles.get(c.cohort, c.cohort))}</td>"
        f"<td>{escape(c.region)}</td>{_n(c.cases)}</tr>"
        for c in report.states
    ]
    return _table(["state", "cohort", "region", "cases"], body, numeric_from=3)
