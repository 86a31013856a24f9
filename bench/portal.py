"""Benchmark 11: the participants' portal, a case page under 20 signed-in contact persons.

    python bench/run.py --only portal
    python bench/portal.py --cases 100000 --db both    # this section alone

The programme of bench/web.py (``build_programme``: DK2020's 98 organisations moved on
through the service into six states, cloned with bulk SQL to ``--cases`` cases). The
contacts are imported as a secretariat would (``Service.import_participants`` reading a
contacts CSV): one contact person for each of 20 different organisations among the 98,
spread over the six states. Each of them is signed in through the service layer — the
sign-in request makes their participant account, as the mailed link would, and
``accounts.open_session`` opens their session — so 20 sessions of 20 people, each with
roles on one case only.

Two real uvicorn processes serve the same database: ``dk2020flow serve`` (its portal
route ``GET /portal/cases/{id}``) and the bare Starlette app of bench/web.py, whose
handler checks the same session, reads the same participant roles, makes the same
service calls (``portal_case``, ``documents.case_documents``) and logs the same
access-log entry (``privacy.record_read``) before returning a few lines of HTML. 20
keep-alive clients (``http_load.load``: wrk when installed), client *i* signed in as
person *i* and asking for their own case, one server then the other, in passes (the first warms the
caches and is not counted); p50 and p95 per request, and portal / bare. Target: p95 under
100 ms.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, Workdir, drop_pg, fresh_pg, percentile, phase, spread, unavailable
from http_load import load

SECTION = "11. portal"
CLIENTS = 20
PASSES = 3
"""Passes over both servers; the first one warms caches and is not counted."""
WARM_SECONDS = 2.0
"""The first pass's length (not counted)."""


def contact_email(code: str) -> str:
    return f"kontakt.{code}@bench.example.dk"


def sign_in_participants(
    url: str, codes: Sequence[str], now: dt.datetime, work: Path
) -> dict[str, str]:
    """Import a contact person for each organisation code (a contacts CSV, through the
    service) and sign each in through the service layer; code -> session cookie value."""
    from dk2020flow.clock import ShiftedClock
    from dk2020flow.service.core import open_service
    from dk2020flow.settings import load_settings

    path = work / f"contacts-{os.getpid()}-{len(codes)}.csv"
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["organisation", "role", "name", "email", "language"])
        for code in codes:
            writer.writerow([code, "contact_person", f"Kontakt {code}", contact_email(code), "da"])
    tokens: dict[str, str] = {}
    with open_service(url, clock=ShiftedClock(now), settings=load_settings()) as service:
        service.import_participants(path)
        for n, code in enumerate(codes):
            email = contact_email(code)
            # The request makes the participant's account (and queues their sign-in mail).
            service.accounts.request_sign_in(
                email, client=f"bench-{n}", base_url="http://127.0.0.1"
            )
            tokens[code] = service.accounts.open_session(
                email, method="bench", client=f"bench-{n}", user_agent="bench"
            )
    return tokens


def template_cases(url: str, count: int) -> dict[str, int]:
    """``count`` of the 98 template cases, spread over their six states: code -> case id."""
    from dk2020flow.clock import ShiftedClock
    from dk2020flow.service.core import open_service
    from dk2020flow.settings import load_settings
    from web import NOW

    settings = load_settings()
    with (
        open_service(url, clock=ShiftedClock(NOW), settings=settings) as service,
        service.store.read() as tx,
    ):
        cases = [c for i in range(1, 99) for c in tx.find_cases_by_ref(f"#{i}", "dk2020")]
    step = max(1, len(cases) // count)
    chosen = cases[::step][:count]
    return {c.organisation_code: int(c.id or 0) for c in chosen}


def measure(url: str, backend: str, seconds: float, work: Path, threads: int = 40) -> list[Result]:
    """The portal and the bare handler on ``url``: p50/p95 of 20 people's case pages."""
    import web

    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend]
    cases = template_cases(url, CLIENTS)
    tokens = sign_in_participants(url, list(cases), web.NOW, work)
    codes = list(cases)
    paths = [[f"/portal/cases/{cases[code]}"] for code in codes]
    sessions = [tokens[code] for code in codes]
    portal = web.console_server(url, work / f"portal-{backend}.log", threads=threads)
    bare = web.bare_server(url, work / f"portal-bare-{backend}.log", threads=threads)
    samples: dict[str, list[float]] = {"portal": [], "bare": []}
    per_pass: dict[str, list[float]] = {"portal": [], "bare": []}
    problems: list[str] = []
    client = "?"
    try:
        portal.wait_ready("/healthz")
        bare.wait_ready("/")
        for pass_ in range(PASSES):
            for name, server in (("portal", portal), ("bare", bare)):
                got = load(server.base, paths, sessions, WARM_SECONDS if pass_ == 0 else seconds)
                client = got.client
                bad = {code: n for code, n in got.statuses.items() if code != 200}
                if bad:
                    problems.append(f"{name}: status {bad}")
                if pass_ > 0:
                    samples[name].extend(got.latencies)
                    per_pass[name].append(percentile(got.latencies, 95) * 1000)
    finally:
        portal.stop()
        bare.stop()
    load_average = os.getloadavg()[0]
    note = "; ".join(problems)[:300] or (
        f"{len(samples['portal'])} requests, {CLIENTS} people each on their own case "
        f"({client} clients, {threads} threads), "
        f"load average {load_average:.1f}"
    )
    results: list[Result] = []
    for name in ("portal", "bare"):
        for p in (50, 95):
            results.append(
                Result(
                    section=SECTION,
                    name=f"{name} case page, {label}, p{p}",
                    value=percentile(samples[name], p) * 1000,
                    unit="ms",
                    note=note + (f"; p95 per pass {spread(per_pass[name])}" if p == 95 else ""),
                    samples=per_pass[name] if p == 95 else [],
                )
            )
    for p in (50, 95):
        results.append(
            Result(
                section=SECTION,
                name=f"portal / bare case page, {label}, p{p}",
                value=percentile(samples["portal"], p) / percentile(samples["bare"], p),
                unit="x",
                note="same run, passes alternating",
            )
        )
    return results


def run(
    work: Workdir,
    n_cases: int,
    seconds: float,
    pg_reason: str | None,
    backends: Sequence[str] = ("sqlite", "postgresql"),
    threads: int = 40,
) -> list[Result]:
    """The portal on a programme of ``n_cases`` cases, SQLite and PostgreSQL."""
    from web import build_programme

    results: list[Result] = []
    if "sqlite" in backends:
        url = work.sqlite("portal")
        with phase(f"portal: {n_cases:,} DK2020 cases, SQLite"):
            build_programme(url, n_cases)
        with phase("portal: 20 participants' case pages, portal and bare handler, SQLite"):
            results += measure(url, "sqlite", seconds, work.path, threads)
    if "postgresql" not in backends:
        return results
    if pg_reason is not None:
        return [*results, unavailable(SECTION, "portal case page, PostgreSQL", "ms", pg_reason)]
    pg = fresh_pg(f"portal_{os.getpid()}")
    try:
        with phase(f"portal: {n_cases:,} DK2020 cases, PostgreSQL"):
            build_programme(pg, n_cases)
        with phase("portal: 20 participants' case pages, portal and bare handler, PostgreSQL"):
            results += measure(pg, "postgresql", seconds, work.path, threads)
    finally:
        drop_pg(pg)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="of load per server and pass")
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql", "both"), default="both", dest="backend"
    )
    parser.add_argument("--threads", type=int, default=40, help="of each server")
    args = parser.parse_args(argv)
    from common import pg_available

    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    work = Workdir()
    try:
        found = run(
            work,
            args.cases,
            args.seconds,
            pg_available() if "postgresql" in backends else None,
            backends,
            args.threads,
        )
    finally:
        work.cleanup()
    for result in found:
        shown = "–" if result.value is None else f"{result.value:.3g}"
        print(f"{result.name}: {shown} {result.unit} {result.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
