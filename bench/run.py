"""Run every benchmark of dk2020flow side by side and print ratios.

    python bench/run.py            # the full run (2.5-4 minutes here)
    python bench/run.py --quick    # smaller sizes (about 2 minutes here)
    python bench/run.py --only dispatch,mail
    python bench/run.py --only revisions   # this checkout against HEAD (bench/revisions.py)
    python bench/run.py --only web         # the web console on 100k cases (bench/web.py)
    python bench/run.py --only documents   # a 20 MB upload beside a file copy (bench/documents.py)

These machines are shared and noisy: every comparison runs in the same
invocation, and what counts is the ratio. Absolute numbers are context only.
Results go to stdout, bench/results/latest.md and bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, Workdir, failed, pg_available

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SECTIONS = ("dispatch", "peers", "idle", "lateness", "mail", "memory", "startup")
OPT_IN = ("revisions", "web", "documents", "api", "webhooks")
"""Sections run only when --only names them (revisions: two revisions, several minutes;
web: the console on 100k cases, about 25 minutes; documents: a 20 MB upload, a minute)."""


@dataclass(frozen=True)
class Sizes:
    dispatch: int
    per_transaction: int
    peers: int
    tick_sizes: tuple[int, ...]
    tick_repeat: int
    idle_window: float
    lateness_timers: int
    lateness_spacing: float
    mail: int
    rss_cases: int
    rss_due: int
    web_cases: int = 100_000
    web_requests: int = 25
    """Requests per client, page and server (bench/web.py; 20 clients)."""


QUICK = Sizes(
    dispatch=400,
    per_transaction=150,
    peers=200,
    tick_sizes=(1_000, 10_000, 100_000),
    tick_repeat=30,
    idle_window=10.0,
    lateness_timers=15,
    lateness_spacing=0.3,
    mail=200,
    rss_cases=100_000,
    rss_due=300,
    web_requests=10,
)
FULL = Sizes(
    dispatch=2000,
    per_transaction=600,
    peers=600,
    tick_sizes=(1_000, 10_000, 100_000),
    tick_repeat=200,
    idle_window=60.0,
    lateness_timers=100,
    lateness_spacing=0.3,
    mail=1000,
    rss_cases=100_000,
    rss_due=2000,
)


@dataclass(frozen=True)
class Ratio:
    label: str
    numerator: str
    denominator: str
    target: float | None = None
    """The ratio must be at least this (None: context, no target)."""


@dataclass(frozen=True)
class Target:
    label: str
    result: str
    limit: float
    below: bool
    """True: the value must stay below the limit; False: at least the limit."""


DK_SQLITE = "dk2020flow, SQLite, 1 daemon"
DK_PG1 = "dk2020flow, PostgreSQL, 1 daemon"
DK_PG2 = "dk2020flow, PostgreSQL, 2 daemons"
APS = "APScheduler 3, SQLAlchemyJobStore on SQLite, a job per deadline"
SPIFF = "SpiffWorkflow 3, a BPMN timer event per deadline, SQLite"
PROC = "procrastinate 3 on PostgreSQL, a job per deadline"

RATIOS = (
    Ratio(
        "dk2020flow SQLite / raw SQLite batched 500",
        DK_SQLITE,
        "raw SQL, SQLite, batches of 500",
        0.25,
    ),
    Ratio(
        "dk2020flow SQLite / raw SQLite 1 per transaction",
        DK_SQLITE,
        "raw SQL, SQLite, 1 per transaction",
    ),
    Ratio(
        "dk2020flow PG 2 daemons / raw PG 2 workers SKIP LOCKED",
        DK_PG2,
        "raw SQL, PostgreSQL, 2 workers x 100 SKIP LOCKED",
        0.5,
    ),
    Ratio(
        "dk2020flow PG 1 daemon / raw PG batched 500", DK_PG1, "raw SQL, PostgreSQL, batches of 500"
    ),
    Ratio(
        "dk2020flow PG 1 daemon / raw PG 1 per transaction",
        DK_PG1,
        "raw SQL, PostgreSQL, 1 per transaction",
    ),
    Ratio("dk2020flow PG 2 daemons / 1 daemon", DK_PG2, DK_PG1),
    Ratio("dk2020flow SQLite / APScheduler job per deadline", DK_SQLITE, APS, 5.0),
    Ratio("dk2020flow SQLite / SpiffWorkflow", DK_SQLITE, SPIFF, 5.0),
    Ratio("dk2020flow PG 1 daemon / procrastinate", DK_PG1, PROC, 10.0),
    Ratio("dk2020flow PG 2 daemons / procrastinate", DK_PG2, PROC),
    Ratio(
        "start-up: dk2020flow case list / python -c pass",
        "dk2020flow case list (3 cases, SQLite)",
        "python -c pass",
    ),
    Ratio(
        "start-up: dk2020flow case list --help / python -c pass",
        "dk2020flow case list --help",
        "python -c pass",
    ),
    Ratio(
        "SMTP reused connection / connection per message",
        "SMTP, reused connection per batch (deliver_batch + SmtpTransport)",
        "SMTP, one connection per message",
    ),
)

TARGETS = (
    Target(
        "tick cost, 100k / 1k cases (fire_due)",
        "fire_due: cost at 100,000 / cost at 1,000",
        2.0,
        below=True,
    ),
    Target(
        "tick cost, 100k / 1k cases (next_due_at)",
        "next_due_at: cost at 100,000 / cost at 1,000",
        2.0,
        below=True,
    ),
    Target("idle daemon CPU", "idle daemon CPU", 1.0, below=True),
    Target("lateness p99", "due -> fired, p99", 100.0, below=True),
    Target("mail to local SMTP", "SMTP, reused connection per batch", 1000.0, below=False),
    Target("DK2020 simulation wall time", "DK2020 simulation (98 municipalities", 5.0, below=True),
    Target("daemon RSS at 100k cases", "daemon peak RSS, 100,000 cases", 150.0, below=True),
    *(
        Target(f"console p95, {what}, {db}", f"console {what}, {db}, p95", 100.0, below=True)
        for db in ("SQLite", "PostgreSQL")
        for what in ("overview", "cases page", "case page")
    ),
    *(
        Target(
            f"console / bare p95, {what}, {db}",
            f"console / bare {what}, {db}, p95",
            2.0,
            below=True,
        )
        for db in ("SQLite", "PostgreSQL")
        for what in ("overview", "cases page", "case page")
    ),
)


# ----------------------------------------------------------------------------- running


def _guard(section: str, name: str, unit: str, fn: Callable[[], list[Result]]) -> list[Result]:
    """Run one benchmark; a crash becomes an error row (with the reason), not a lost run."""
    try:
        return fn()
    except Exception as exc:
        traceback.print_exc()
        return [failed(section, name, unit, exc)]


def run(sizes: Sizes, only: set[str]) -> list[Result]:
    import dispatch
    import idle
    import mail
    import peers
    import simulation
    import startup

    pg_reason = pg_available()
    work = Workdir()
    results: list[Result] = []
    try:
        if "dispatch" in only:
            print("1. dispatch throughput", flush=True)
            results += _guard(
                "1. dispatch",
                "dispatch",
                "firings/s",
                lambda: dispatch.run(work, sizes.dispatch, sizes.per_transaction, pg_reason),
            )
        if "peers" in only:
            print("1. dispatch: peers", flush=True)
            results += _guard(
                "1. dispatch", APS, "firings/s", lambda: [peers.apscheduler(work, sizes.peers)]
            )
            results += _guard(
                "1. dispatch", SPIFF, "firings/s", lambda: [peers.spiffworkflow(work, sizes.peers)]
            )
            results += _guard(
                "1. dispatch",
                PROC,
                "firings/s",
                lambda: [peers.procrastinate(sizes.peers, pg_reason)],
            )
        tick_urls: dict[int, str] = {}
        if "idle" in only:
            print("2. cost with nothing due", flush=True)

            def ticks() -> list[Result]:
                found, urls = idle.tick_cost(work, list(sizes.tick_sizes), sizes.tick_repeat)
                tick_urls.update(urls)
                return found

            results += _guard("2. idle", "tick cost", "ms", ticks)
            largest = max(sizes.tick_sizes)
            if largest in tick_urls:
                results += _guard(
                    "2. idle",
                    "idle daemon CPU",
                    "% of a core",
                    lambda: [idle.idle_cpu(work, tick_urls[largest], largest, sizes.idle_window)],
                )
        if "lateness" in only:
            print("3. lateness", flush=True)
            results += _guard(
                "3. lateness",
                "lateness",
                "ms",
                lambda: idle.lateness(work, sizes.lateness_timers, sizes.lateness_spacing),
            )
        if "mail" in only:
            print("4. mail delivery", flush=True)
            results += _guard(
                "4. mail", "SMTP delivery", "mails/s", lambda: mail.delivery(work, sizes.mail)
            )
        if "memory" in only:
            print("5. simulation and memory", flush=True)
            results += _guard(
                "5. memory", "DK2020 simulation", "s", lambda: simulation.dk2020(work)
            )
            results += _guard(
                "5. memory",
                "daemon peak RSS",
                "MB",
                lambda: [
                    idle.daemon_rss(
                        work, sizes.rss_cases, sizes.rss_due, tick_urls.get(sizes.rss_cases)
                    )
                ],
            )
        if "revisions" in only:
            import revisions

            print("6. this checkout against another revision", flush=True)
            results += _guard(
                "6. revisions", "revisions", "x", lambda: revisions.compare(sizes.mail)
            )
        if "startup" in only:
            print("6. start-up of a read command", flush=True)
            results += _guard("6. start-up", "start-up", "s", lambda: startup.startup(work))
        if "web" in only:
            import web

            print("7. the web console on 100k cases", flush=True)
            results += _guard(
                "7. web",
                "web console",
                "ms",
                lambda: web.run(work, sizes.web_cases, sizes.web_requests, pg_reason),
            )
        if "documents" in only:
            import documents

            print("8. uploading a 20 MB plan", flush=True)
            results += _guard("8. documents", "documents", "MB/s", lambda: documents.run(work))
        if "api" in only:  # the REST API against the service, PostgreSQL (bench/api.py)
            import api

            print("9. the REST API on PostgreSQL, 2 workers", flush=True)
            results += _guard("9. api", "api", "x", lambda: api.run(work, 5000, 5.0, pg_reason))
        if "webhooks" in only:  # deliveries/s to a local HTTP receiver (bench/webhooks.py)
            import webhooks

            print("10. webhook deliveries to a local receiver", flush=True)
            results += _guard(
                "10. webhooks", "webhooks", "/s", lambda: webhooks.run(work, sizes.mail)
            )
    finally:
        work.cleanup()
    return results


# ----------------------------------------------------------------------------- reporting


def _find(results: list[Result], prefix: str) -> Result | None:
    for result in results:
        if result.name.startswith(prefix) and result.value is not None:
            return result
    return None


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return lines


def report(results: list[Result], command: str, seconds: float) -> tuple[str, dict[str, object]]:
    machine = (
        f"{platform.node()}: {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()} {platform.release()}, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    lines = [
        "# dk2020flow benchmark results",
        "",
        f"- command: `{command}`",
        f"- finished: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, after {seconds / 60:.1f} min",
        f"- machine: {machine}",
        "- absolute numbers are context only (shared, noisy machine); compare the ratios",
        "",
        "## Measurements",
        "",
    ]
    rows = [
        [r.section, r.name, _fmt(r.value) if r.status == "ok" else r.status.upper(), r.unit, r.note]
        for r in results
    ]
    lines += _table(["section", "what", "value", "unit", "note"], rows)

    ratio_rows: list[list[str]] = []
    ratio_data: list[dict[str, object]] = []
    for ratio in RATIOS:
        top, bottom = _find(results, ratio.numerator), _find(results, ratio.denominator)
        value = top.value / bottom.value if top and bottom and top.value and bottom.value else None
        met = (
            "–"
            if ratio.target is None or value is None
            else ("met" if value >= ratio.target else "MISSED")
        )
        target = "" if ratio.target is None else f">= {ratio.target:g}"
        ratio_rows.append([ratio.label, "–" if value is None else f"{value:.3g}", target, met])
        ratio_data.append(
            {"label": ratio.label, "value": value, "target": ratio.target, "met": met}
        )
    lines += ["", "## Ratios (dk2020flow against the others)", ""]
    lines += _table(["ratio", "value", "target", "verdict"], ratio_rows)

    target_rows: list[list[str]] = []
    target_data: list[dict[str, object]] = []
    for target in TARGETS:
        found = _find(results, target.result)
        if found is None or found.value is None:
            verdict, shown = "not measured", "–"
        else:
            ok = found.value < target.limit if target.below else found.value >= target.limit
            verdict, shown = ("met" if ok else "MISSED"), f"{_fmt(found.value)} {found.unit}"
        bound = f"{'<' if target.below else '>='} {target.limit:g}"
        target_rows.append([target.label, shown, bound, verdict])
        target_data.append(
            {
                "label": target.label,
                "value": None if found is None else found.value,
                "limit": target.limit,
                "below": target.below,
                "verdict": verdict,
            }
        )
    lines += ["", "## Absolute targets", ""]
    lines += _table(["target", "value", "bound", "verdict"], target_rows)
    data = {
        "command": command,
        "machine": machine,
        "seconds": seconds,
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "results": [r.as_dict() for r in results],
        "ratios": ratio_data,
        "targets": target_data,
    }
    return "\n".join(lines) + "\n", data


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 2 minutes)")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})",
    )
    args = parser.parse_args()
    # The engine's own log lines (per message, per firing) would drown the report.
    logging.getLogger("dk2020flow").setLevel(logging.ERROR)
    only = {part.strip() for part in args.only.split(",") if part.strip()}
    unknown = only - set(SECTIONS) - set(OPT_IN)
    if unknown:
        parser.error(
            f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}"
        )
    command = (
        "python bench/run.py"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if args.only != ",".join(SECTIONS) else "")
    )
    start = time.perf_counter()
    results = run(QUICK if args.quick else FULL, only)
    text, data = report(results, command, time.perf_counter() - start)
    print()
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "latest.md").write_text(text, encoding="utf-8")
    (RESULTS_DIR / "latest.json").write_text(
        json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8"
    )
    print(f"written: {RESULTS_DIR / 'latest.md'} and latest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
