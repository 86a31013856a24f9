"""Run every benchmark of dk2020flow side by side and print ratios.

    python bench/run.py            # the full run (about 10 minutes here, quiet machine)
    python bench/run.py --quick    # smaller sizes (about 5 minutes here)
    python bench/run.py --only dispatch,mail
    python bench/run.py --only revisions   # this checkout against HEAD (bench/revisions.py)
    python bench/run.py --only web         # the web console on 100k cases (bench/web.py)
    python bench/run.py --only documents   # a 20 MB upload beside a file copy (bench/documents.py)
    python bench/run.py --only portal      # 20 participants' case pages (bench/portal.py)
    python bench/run.py --scale 1000000    # every section and a million cases (bench/scale.py)
    python bench/run.py --only scale       # the million cases alone (--scale N for another N)
    python bench/run.py --quick --results /tmp/smoke   # a smoke run, kept out of bench/results

These machines are shared and noisy: every comparison runs in the same
invocation, and what counts is the ratio. Absolute numbers are context only.
Results go to stdout, bench/results/latest.md and bench/results/latest.json (or the
folder --results names). A run started with a load average above half the CPUs is
labelled SMOKE RUN in them: it proves the bench runs, its figures are not for quoting.
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

import dispatch
import peers
from common import Result, Workdir, failed, fmt, pg_available

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SECTIONS = ("dispatch", "peers", "idle", "lateness", "mail", "memory", "startup")
OPT_IN = ("revisions", "web", "documents", "portal", "api", "webhooks", "scale")
"""Sections run only when --only names them (revisions: two revisions, several minutes;
web: the console on 100k cases, about 25 minutes; documents: 20 MB uploads through the
service and the portal's HTTP route, a few minutes; portal: 20 participants' case pages
on 100k cases, SQLite and PostgreSQL, about 15 minutes; scale: a million cases on
PostgreSQL, about 30 minutes, also run by ``--scale N``)."""
SCALE_CASES = 1_000_000
"""Open cases of the scale section (issue 17 point 3) unless ``--scale N`` says otherwise."""


@dataclass(frozen=True)
class Sizes:
    dispatch: int
    """Due timers every contender of benchmark 1 fires (the same N for each)."""
    samples: int
    """Interleaved samples per figure of benchmark 1 (the median is reported)."""
    tick_sizes: tuple[int, ...]
    tick_repeat: int
    idle_window: float
    lateness_timers: int
    lateness_spacing: float
    mail: int
    rss_cases: int
    rss_due: int
    web_cases: int = 100_000
    web_seconds: float = 10.0
    """Seconds of load per page, server and pass (bench/web.py, bench/portal.py; 20 clients)."""
    portal_cases: int = 100_000
    documents_repeat: int = 5
    migrate_cases: int = 1_000_000
    """Open cases ``case migrate`` moves in the scale section (bench/scale.py), at most the
    section's own N (issue 17 point 3: a dry run and apply of 1,000,000 cases)."""


QUICK = Sizes(
    dispatch=400,
    samples=3,
    tick_sizes=(1_000, 10_000, 100_000),
    tick_repeat=30,
    idle_window=10.0,
    lateness_timers=15,
    lateness_spacing=0.3,
    mail=200,
    rss_cases=100_000,
    rss_due=300,
    web_seconds=3.0,
    portal_cases=2_000,
    documents_repeat=3,
    migrate_cases=2_000,
)
FULL = Sizes(
    dispatch=2000,
    samples=5,
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
    fsync: bool = False
    """True: the two sides commit a different number of times per firing (one a batch
    against one a firing), so the ratio moves with the disk's fsync speed; False: the
    same commits on both sides (or none on the disk), a ratio of the work itself."""


@dataclass(frozen=True)
class Target:
    label: str
    result: str
    limit: float
    below: bool
    """True: the value must stay below the limit; False: at least the limit."""


BATCH = dispatch.batch_size()
RAW = dispatch.raw_names(BATCH)
DK_SQLITE = dispatch.DK_SQLITE
DK_PG1 = dispatch.DK_PG1
DK_PG2 = dispatch.DK_PG2

RATIOS = (
    Ratio(
        f"dk2020flow SQLite / raw SQL + render SQLite, batches of {BATCH} (the limit)",
        DK_SQLITE,
        RAW["sqlite"],
        0.5,
    ),
    Ratio(
        f"raw SQL + render / raw SQL without render, SQLite, batches of {BATCH}",
        RAW["sqlite"],
        RAW["sqlite_rows"],
    ),
    Ratio(
        "dk2020flow SQLite / raw SQL + render SQLite, 1 per transaction",
        DK_SQLITE,
        RAW["sqlite_1"],
        fsync=True,
    ),
    Ratio(
        "dk2020flow SQLite: with / without the console-count triggers",
        DK_SQLITE,
        dispatch.DK_SQLITE_NO_TRIGGERS,
    ),
    Ratio(
        "dk2020flow SQLite: with / without the webhook hook",
        DK_SQLITE,
        dispatch.DK_SQLITE_NO_HOOK,
    ),
    Ratio(
        f"dk2020flow PG 2 daemons / raw PG + render 2 workers x {BATCH} SKIP LOCKED",
        DK_PG2,
        RAW["pg_2"],
        0.7,
    ),
    Ratio(
        f"dk2020flow PG 1 daemon / raw PG + render, batches of {BATCH}",
        DK_PG1,
        RAW["pg"],
    ),
    Ratio(
        "dk2020flow PG 1 daemon / raw PG + render, 1 per transaction",
        DK_PG1,
        RAW["pg_1"],
        fsync=True,
    ),
    Ratio(
        "dk2020flow PG 1 daemon: with / without the console-count triggers",
        DK_PG1,
        dispatch.DK_PG1_NO_TRIGGERS,
    ),
    Ratio(
        "dk2020flow PG 1 daemon: with / without the webhook hook",
        DK_PG1,
        dispatch.DK_PG1_NO_HOOK,
    ),
    Ratio("dk2020flow PG 2 daemons / 1 daemon", DK_PG2, DK_PG1),
    Ratio(
        "dk2020flow SQLite / APScheduler job per deadline", DK_SQLITE, peers.APS, 5.0, fsync=True
    ),
    Ratio("dk2020flow SQLite / APScheduler batched sweep", DK_SQLITE, peers.APS_BATCHED),
    Ratio("dk2020flow SQLite / SpiffWorkflow", DK_SQLITE, peers.SPIFF, 5.0, fsync=True),
    Ratio("dk2020flow PG 1 daemon / procrastinate", DK_PG1, peers.PROC, 10.0, fsync=True),
    Ratio("dk2020flow PG 2 daemons / procrastinate", DK_PG2, peers.PROC, fsync=True),
    Ratio(
        "start-up: dk2020flow case list / python -c pass",
        "dk2020flow case list (",  # "(98 cases)": bench/startup.py's demo programme
        "python -c pass",
    ),
    Ratio(
        "start-up: dk2020flow case list --help / python -c pass",
        "dk2020flow case list --help",
        "python -c pass",
    ),
    Ratio(
        "scale: 4 daemons / 1 daemon, PostgreSQL (2 CPUs)",
        "scale: fire_due, 4 daemon",
        "scale: fire_due, 1 daemon",
    ),
    Ratio(
        "scale: 4 daemons / 2 daemons, PostgreSQL (2 CPUs)",
        "scale: fire_due, 4 daemon",
        "scale: fire_due, 2 daemon",
    ),
    Ratio(
        "scale: 2 daemons / 1 daemon, PostgreSQL (2 CPUs)",
        "scale: fire_due, 2 daemon",
        "scale: fire_due, 1 daemon",
    ),
    Ratio(
        "SMTP dk2020flow (reused connection) / bare aiosmtplib client, the same bytes",
        "SMTP, reused connection per batch (deliver_batch + SmtpTransport)",
        "SMTP, bare aiosmtplib client",
        0.8,
        fsync=True,  # dk2020flow marks sent mail in a commit every 10; the bare client, never
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
    Target("DK2020 simulation wall time", "DK2020 simulation (98 organisations", 5.0, below=True),
    Target("daemon RSS at 100k cases", "daemon peak RSS, 100,000 cases", 150.0, below=True),
    Target(
        "scale: tick cost, 1M / 1k cases (fire_due), PostgreSQL",
        "scale: fire_due(now) nothing due, cost at",
        2.0,
        below=True,
    ),
    Target(
        "scale: tick cost, 1M / 1k cases (next_due_at), PostgreSQL",
        "scale: next_due_at(), cost at",
        2.0,
        below=True,
    ),
    Target("scale: daemon RSS at 1M cases", "scale: daemon peak RSS", 200.0, below=True),
    Target(
        "scale: `case list --region` at 1M cases (wall, as installed)",
        "scale: dk2020flow case list",
        1.0,
        below=True,
    ),
    Target(
        "scale: `report` at 1M cases (wall, as installed)",
        "scale: dk2020flow report",
        1.0,
        below=True,
    ),
    Target(
        "scale: `case migrate --apply` commits in chunks (transactions)",
        "scale: case migrate --apply",
        2.0,
        below=False,
    ),
    *(
        Target(f"console p95, {what}, {db}", f"console {what}, {db}, p95", 100.0, below=True)
        for db in ("SQLite", "PostgreSQL")
        for what in ("overview", "cases page", "case page")
    ),
    *(
        Target(f"portal case page p95, {db}", f"portal case page, {db}, p95", 100.0, below=True)
        for db in ("SQLite", "PostgreSQL")
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


def run(sizes: Sizes, only: set[str], scale_cases: int = SCALE_CASES) -> list[Result]:
    # Each section's module is imported when it runs: a missing optional library
    # (psutil, aiosmtpd) costs its section, not the run.

    pg_reason = pg_available()
    work = Workdir()
    results: list[Result] = []
    try:
        if "dispatch" in only or "peers" in only:
            print(f"1. dispatch throughput: {sizes.samples} interleaved rounds", flush=True)
            results += _guard(
                "1. dispatch",
                "dispatch",
                "firings/s",
                lambda: dispatch.run(
                    work,
                    sizes.dispatch,
                    sizes.samples,
                    pg_reason,
                    core="dispatch" in only,
                    with_peers="peers" in only,
                ),
            )
        tick_urls: dict[int, str] = {}
        if only & {"idle", "lateness", "memory"}:
            import idle
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
            import mail

            print("4. mail delivery", flush=True)
            results += _guard(
                "4. mail", "SMTP delivery", "mails/s", lambda: mail.delivery(work, sizes.mail)
            )
        if "memory" in only:
            import simulation

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
            import startup

            print("6. start-up of a read command", flush=True)
            results += _guard("6. start-up", "start-up", "s", lambda: startup.startup(work))
        if "web" in only:
            import web

            print("7. the web console on 100k cases", flush=True)
            results += _guard(
                "7. web",
                "web console",
                "ms",
                lambda: web.run(work, sizes.web_cases, sizes.web_seconds, pg_reason),
            )
        if "documents" in only:
            import documents

            print("8. uploading a 20 MB plan", flush=True)
            results += _guard(
                "8. documents",
                "documents",
                "MB/s",
                lambda: documents.run(work, sizes.documents_repeat),
            )
        if "portal" in only:
            import portal

            print("11. the participants' portal: 20 people's case pages", flush=True)
            results += _guard(
                "11. portal",
                "portal case page",
                "ms",
                lambda: portal.run(work, sizes.portal_cases, sizes.web_seconds, pg_reason),
            )
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
        if "scale" in only:  # a million cases on PostgreSQL (bench/scale.py)
            import scale

            print(f"12. scale: {scale_cases:,} open cases on PostgreSQL", flush=True)
            results += _guard(
                "12. scale",
                "scale",
                "",
                lambda: scale.run(
                    work,
                    scale_cases,
                    repeat=sizes.tick_repeat,
                    rate_due=sizes.dispatch,
                    rate_rounds=sizes.samples,
                    migrate_cases=min(sizes.migrate_cases, scale_cases),
                ),
            )
    finally:
        work.cleanup()
    return results


# ----------------------------------------------------------------------------- reporting


def _find(results: list[Result], prefix: str) -> Result | None:
    """The result of that name, else the first whose name starts with it."""
    measured = [r for r in results if r.value is not None]
    exact = [r for r in measured if r.name == prefix]
    return (exact or [r for r in measured if r.name.startswith(prefix)] or [None])[0]


def _ratio_spread(top: Result, bottom: Result) -> str:
    """Min–max of the per-round ratios (samples taken in the same round are paired)."""
    if len(top.samples) < 2 or len(top.samples) != len(bottom.samples):
        return ""
    paired = [a / b for a, b in zip(top.samples, bottom.samples, strict=True) if b]
    return f"{min(paired):.3g}–{max(paired):.3g}" if paired else ""


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return lines


SMOKE_LOAD = 0.5
"""Load average per CPU at the start above which a run is labelled a smoke run."""


def report(
    results: list[Result], command: str, seconds: float, start_load: float = 0.0
) -> tuple[str, dict[str, object]]:
    cpus = os.cpu_count() or 1
    smoke = start_load / cpus > SMOKE_LOAD
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
        *(
            [
                f"- **SMOKE RUN**: load average {start_load:.1f} on {cpus} CPUs at the start; "
                "proves the bench runs, not for quoting"
            ]
            if smoke
            else []
        ),
        "",
        "## Measurements",
        "",
    ]
    rows = [
        [
            r.section,
            r.name,
            fmt(r.value) if r.status == "ok" else r.status.upper(),
            r.spread,
            r.unit,
            r.note,
        ]
        for r in results
    ]
    lines += [
        "Each figure with samples is the median of interleaved samples (every contender once a",
        "round, round after round); *spread* is their min–max and count.",
        "",
    ]
    lines += _table(["section", "what", "value", "spread", "unit", "note"], rows)

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
        paired = _ratio_spread(top, bottom) if top and bottom else ""
        fsync = "yes" if ratio.fsync else "no"
        shown = "–" if value is None else f"{value:.3g}"
        ratio_rows.append([ratio.label, shown, paired, fsync, target, met])
        ratio_data.append(
            {
                "label": ratio.label,
                "value": value,
                "spread": paired,
                "fsync_dependent": ratio.fsync,
                "target": ratio.target,
                "met": met,
            }
        )
    lines += [
        "",
        "## Ratios (dk2020flow against the others)",
        "",
        "The ratio of the medians; *spread*: min–max of the per-round ratios. *fsync*: yes",
        "where one side commits once a firing and the other once a batch, so the ratio moves",
        "with the disk's fsync speed (compare those only within one run on one machine).",
        "",
    ]
    lines += _table(["ratio", "value", "spread", "fsync", "target", "verdict"], ratio_rows)

    target_rows: list[list[str]] = []
    target_data: list[dict[str, object]] = []
    for target in TARGETS:
        found = _find(results, target.result)
        if found is None or found.value is None:
            verdict, shown = "not measured", "–"
        else:
            ok = found.value < target.limit if target.below else found.value >= target.limit
            verdict, shown = ("met" if ok else "MISSED"), f"{fmt(found.value)} {found.unit}"
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
        "smoke": smoke,
        "start_load": start_load,
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
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 5 minutes)")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        help=f"folder for latest.md and latest.json (default: {RESULTS_DIR})",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=None,
        metavar="N",
        help="also run the scale section (bench/scale.py) with N open cases on PostgreSQL; "
        f"--only scale alone takes {SCALE_CASES:,}",
    )
    args = parser.parse_args()
    # The engine's own log lines (per message, per firing) would drown the report.
    logging.getLogger("dk2020flow").setLevel(logging.ERROR)
    # The batched APScheduler peer's sweep outlasts its 1 s interval: "skipped" warnings.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    only = {part.strip() for part in args.only.split(",") if part.strip()}
    unknown = only - set(SECTIONS) - set(OPT_IN)
    if unknown:
        parser.error(
            f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}"
        )
    if args.scale is not None:
        if args.scale < 1:
            parser.error("--scale N needs N >= 1 (open cases)")
        only.add("scale")
    command = (
        "python bench/run.py"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if args.only != ",".join(SECTIONS) else "")
        + (f" --scale {args.scale}" if args.scale is not None else "")
    )
    start_load = os.getloadavg()[0]
    start = time.perf_counter()
    results = run(QUICK if args.quick else FULL, only, args.scale or SCALE_CASES)
    text, data = report(results, command, time.perf_counter() - start, start_load)
    print()
    print(text)
    folder: Path = args.results
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.md").write_text(text, encoding="utf-8")
    (folder / "latest.json").write_text(
        json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8"
    )
    print(f"written: {folder / 'latest.md'} and latest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
