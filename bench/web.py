"""Benchmark 7: the web console on 100k cases, beside a bare Starlette handler.

    python bench/run.py --only web
    python bench/web.py --cases 100000 --db sqlite   # this section alone (--db both: and PG)

The programme: the DK2020 workflow with a case for each of the 98 organisations,
moved on through the real service into six different states (invited and late,
declined, decided for round 1 or round 2, application submitted — its document uploaded
first —, awaiting the start), then cloned with bulk SQL to ``--cases`` cases (rows as
the service writes them: the case, its events with their hash chain, its timers, its
queued mail without the HTML part), each clone in one of the five regions in turn. The
database's triggers keep the console's counts and each case's region as the clones go
in (migration 0004), as they do for every write. The console's clock is 1 December 2021, as in the
web tests: round 2's application deadline has passed, so "round 2, Syddanmark, late"
is about 1/30 of the cases.

Two real uvicorn processes serve the same database: ``dk2020flow serve`` (the console)
and a bare Starlette app (this file, ``bare`` subcommand) whose ``def`` handlers check
the same session and call the same service methods as the console's pages, then
return a few lines of HTML (it answers the portal's case page too, for bench/portal.py).
20 keep-alive clients (wrk when installed, else Python threads: ``http_load.py``) load one
server, then the other, page by page, for ``--seconds`` a pass; p50 and p95 of the wall
time per request.
The ratio console / bare is the figure; the absolute times move with the machine (and
SQLite's with the disk's page cache: the first pass warms it, and only later passes are
counted).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import html
import os
import random
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, Workdir, drop_pg, fresh_pg, percentile, phase, unavailable
from http_load import Server, load
from workload import organisation_code, organisation_row

SECTION = "7. web"
CLIENTS = 20
NOW = dt.datetime(2021, 12, 1, 9, 0, tzinfo=dt.UTC)
"""The console's clock (``serve --now``): round 2 is late on its application."""
OPENED_AT = dt.datetime(2020, 8, 3, 9, 0, tzinfo=dt.UTC)
REGIONS = ("Hovedstaden", "Midtjylland", "Nordjylland", "Sjælland", "Syddanmark")
CASES_QUERY = "round=round2&region=Syddanmark&late=1&sort=-since"
CHUNK = 5000
CLI = "from dk2020flow.cli import main; main()"
BENCH_USER = "bench@staff.example.dk"
WARM_SECONDS = 2.0
"""The first pass's length per page and server (not counted)."""


# ----------------------------------------------------------------------------- the programme


def _decide(service: Any, ref: str, cohort: str, at: dt.datetime) -> None:
    service.fire(
        ref,
        "decide_participate",
        actor="kl@example.dk",
        role="follow_up",
        data={
            "cohort": cohort,
            "decision_date": at.date().isoformat(),
            "contact_person_name": f"Kontakt {ref.lstrip('#')}",
            "contact_person_email": "kontakt@example.dk",
        },
        workflow="dk2020",
        now=at,
    )


def _submit(service: Any, ref: str, at: dt.datetime) -> None:
    import io

    from dk2020flow.service.filetypes import sample

    # The application needs its document (``needs_documents``), uploaded first.
    service.documents.attach(
        ref,
        "application",
        io.BytesIO(sample("pdf", f"Ansøgning {ref}")),
        filename="ansøgning.pdf",
        actor="kontakt@example.dk",
        role="contact_person",
        workflow="dk2020",
        now=at,
    )
    service.fire(
        ref,
        "submit_application",
        actor="kontakt@example.dk",
        role="contact_person",
        data={"commitment_signed": True, "staff_hours_per_week": 20},
        workflow="dk2020",
        now=at,
    )


def _template(url: str) -> None:
    """The 98 organisations' cases, in six states (a sixth each)."""
    from dk2020flow.bundled import workflow_path
    from dk2020flow.clock import ManualClock
    from dk2020flow.service.core import open_service
    from dk2020flow.settings import load_settings

    day = dt.timedelta(days=1)
    with open_service(url, clock=ManualClock(OPENED_AT), settings=load_settings()) as service:
        service.load_workflow(workflow_path("dk2020"), now=OPENED_AT)
        opened = service.open_cases(
            "dk2020", None, actor="setup", role="secretariat", now=OPENED_AT
        ).opened
        for i, case in enumerate(sorted(opened, key=lambda c: c.id or 0)):
            ref = f"#{case.id}"
            kind = i % 6
            if kind == 1:
                service.fire(
                    ref,
                    "decide_decline",
                    actor="kl@example.dk",
                    role="follow_up",
                    data={"decision_date": "2020-08-20"},
                    workflow="dk2020",
                    now=OPENED_AT + 17 * day,
                )
            elif kind in (2, 3):
                _decide(service, ref, "round1", OPENED_AT + 10 * day)
                if kind == 3:
                    _submit(service, ref, OPENED_AT + 60 * day)
            elif kind in (4, 5):
                _decide(service, ref, "round2", OPENED_AT + 300 * day)
                if kind == 5:
                    _submit(service, ref, OPENED_AT + 320 * day)
                    service.fire(
                        ref,
                        "accept_application",
                        actor="sekretariat@example.dk",
                        role="secretariat",
                        workflow="dk2020",
                        now=OPENED_AT + 330 * day,
                    )


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


def build_programme(url: str, n_cases: int) -> None:
    """A migrated database with ``n_cases`` DK2020 cases (the template, then clones)."""
    from sqlalchemy import func, insert, select, text

    from dk2020flow.store import db
    from dk2020flow.store import tables as t
    from dk2020flow.store.chain import GENESIS, row_hash
    from dk2020flow.store.repository import SqlStore

    db.upgrade(url)
    _template(url)
    store = SqlStore(url)
    try:
        with store.engine.begin() as conn:
            cases = [dict(r._mapping) for r in conn.execute(select(t.cases).order_by(t.cases.c.id))]
            events: dict[int, list[dict[str, Any]]] = {}
            for row in conn.execute(select(t.events).order_by(t.events.c.case_id, t.events.c.seq)):
                events.setdefault(row.case_id, []).append(dict(row._mapping))
            timers: dict[int, list[dict[str, Any]]] = {}
            for row in conn.execute(select(t.timers).order_by(t.timers.c.id)):
                timers.setdefault(row.case_id, []).append(dict(row._mapping))
            mails: dict[int, list[dict[str, Any]]] = {}
            for row in conn.execute(select(t.outbox).order_by(t.outbox.c.id)):
                if row.case_id is not None:
                    mails.setdefault(row.case_id, []).append(dict(row._mapping))
            next_id = int(conn.execute(select(func.max(t.cases.c.id))).scalar_one()) + 1
            clones = n_cases - len(cases)
            new_organisations: list[dict[str, Any]] = []
            new_cases: list[dict[str, Any]] = []
            new_events: list[dict[str, Any]] = []
            new_timers: list[dict[str, Any]] = []
            new_mails: list[dict[str, Any]] = []
            for k in range(clones):
                source = cases[k % len(cases)]
                code = organisation_code(k)
                case_id = next_id + k
                new_organisations.append(organisation_row(k, REGIONS[k % len(REGIONS)]))
                new_cases.append({**source, "id": case_id, "organisation_code": code})
                prev = GENESIS
                for event in events.get(source["id"], []):
                    row = {key: v for key, v in event.items() if key != "id"}
                    row["case_id"] = case_id
                    prev = row["hash"] = row_hash(row, prev)
                    new_events.append(row)
                for timer in timers.get(source["id"], []):
                    new_timers.append(
                        {**{key: v for key, v in timer.items() if key != "id"}, "case_id": case_id}
                    )
                for n, mail in enumerate(mails.get(source["id"], [])):
                    new_mails.append(
                        {
                            **{key: v for key, v in mail.items() if key != "id"},
                            "case_id": case_id,
                            "message_id": f"<bench.{case_id}.{n}@dk2020flow.local>",
                            "html": "",  # 3 kB a message: 750 MB at 100k cases
                        }
                    )
            for table, rows in (
                (t.organisations, new_organisations),
                (t.cases, new_cases),
                (t.events, new_events),
                (t.timers, new_timers),
                (t.outbox, new_mails),
            ):
                for chunk in _chunks(rows):
                    conn.execute(insert(table), chunk)
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT setval(pg_get_serial_sequence('cases', 'id'), max(id)) FROM cases")
                )
        # Statistics for the planners, and on PostgreSQL the visibility map (index-only
        # scans) and the count tables' change rows cleared, as autovacuum would have done
        # on a database that has been running: the bench measures a settled database.
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE" if conn.dialect.name == "postgresql" else "ANALYZE"))
    finally:
        store.close()


def sign_in_token(url: str) -> str:
    """A session of a read-only staff account, made through the service (as the sign-in
    link would make it); the token is the cookie's value."""
    from dk2020flow.clock import ShiftedClock
    from dk2020flow.service.core import open_service
    from dk2020flow.settings import load_settings

    with open_service(url, clock=ShiftedClock(NOW), settings=load_settings()) as service:
        known = {u.email for u in service.accounts.list_users()}
        if BENCH_USER not in known:
            service.accounts.add_user(BENCH_USER, "Bench", ["read_only"], actor="bench")
        token: str = service.accounts.open_session(
            BENCH_USER, method="bench", client="127.0.0.1", user_agent="bench"
        )
        return token


# ----------------------------------------------------------------------------- the bare handler


def bare_app(url: str, threads: int = 40) -> Any:
    """A Starlette app with the console's three pages as bare ``def`` handlers: the same
    session check and service calls as the console's routes, a few lines of HTML out."""
    import anyio.to_thread
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Route

    from dk2020flow.clock import ShiftedClock
    from dk2020flow.service.core import open_service
    from dk2020flow.settings import load_settings

    clock = ShiftedClock(NOW)
    service = open_service(url, clock=clock, settings=load_settings(), pool_size=threads)

    def signed_in(request: Request) -> Any:
        token = request.cookies.get("dk2020flow_session")
        return service.accounts.session_user(token, clock.now()) if token else None

    def page(title: str, rows: Sequence[object]) -> Response:
        items = "".join(f"<li>{html.escape(str(row)[:200])}</li>" for row in rows[:50])
        return HTMLResponse(f"<!doctype html><title>{title}</title><ul>{items}</ul>")

    def overview(request: Request) -> Response:
        if signed_in(request) is None:
            return Response(status_code=303)
        return page("overview", bare_overview(service, clock.now()))

    def cases(request: Request) -> Response:
        user = signed_in(request)
        if user is None:
            return Response(status_code=303)
        return page("cases", bare_cases(service, user, list(request.query_params.multi_items())))

    def case(request: Request) -> Response:
        user = signed_in(request)
        if user is None:
            return Response(status_code=303)
        ref = request.path_params["ref"]
        return page("case", bare_case(service, user, ref, clock.now()))

    def portal_case(request: Request) -> Response:
        # The session and the person's roles, read together (``Accounts.session``), as
        # the portal reads them.
        token = request.cookies.get("dk2020flow_session")
        found = service.accounts.session(token, clock.now()) if token else None
        if found is None:
            return Response(status_code=303)
        user, known = found
        if known is None:
            return Response(status_code=403)
        case_id = int(request.path_params["case_id"])
        return page(
            "portal case", bare_portal_case(service, known, user.email, case_id, clock.now())
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        # The thread pool that runs the `def` handlers, as large as the console's.
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        try:
            yield
        finally:
            service.close()

    return Starlette(
        routes=[
            Route("/", overview),
            Route("/cases", cases),
            Route("/cases/{ref}", case),
            Route("/portal/cases/{case_id:int}", portal_case),
        ],
        lifespan=lifespan,
    )


def bare_overview(service: Any, now: dt.datetime) -> list[object]:
    """The overview's query, as routes/overview.py asks it."""
    found = service.overview(now, days=14, limit=50)
    return [found]


def bare_cases(service: Any, user: Any, params: list[tuple[str, str]]) -> list[object]:
    """The cases page's queries, as routes/cases.py asks them (``Console.page``: the
    query, its rows, the user's views and bulk triggers, in one transaction)."""
    page = service.console.page(params, user_id=user.user_id, roles=tuple(user.roles))
    return [page.table, *page.views]


def bare_case(service: Any, user: Any, ref: str, now: dt.datetime) -> list[object]:
    """The case page's query and its access-log row, as routes/case.py asks them (the
    diagram is the console's own rendering, not a query)."""
    from dk2020flow.service.casepage import case_page

    page = case_page(service, ref, roles=tuple(user.roles), language="da", now=now)
    _record_read(service, user.email, "staff", "console", page.case.id)
    return [page]


def _record_read(service: Any, actor: str, kind: str, via: str, case_id: int | None) -> None:
    """The access-log entry the console and the portal log after a case page's read
    (``service.privacy.record_read``: into the batch written within a second), so the bare
    handler does the same work; nothing on a checkout that has no access log."""
    try:
        from dk2020flow.service.privacy import record_read
    except ImportError:
        return
    record_read(service, actor=actor, actor_kind=kind, via=via, case_id=case_id)


def bare_portal_case(
    service: Any, known: Any, email: str, case_id: int, now: dt.datetime
) -> list[object]:
    """The portal case page's queries, as routes/portal.py asks them: the access check and
    the case as the person sees it (``portal_case``), its access-log row, then the case's
    documents."""
    from dk2020flow.service.portal import portal_case

    view = portal_case(
        service, case_id, known.by_organisation, email=email, language=known.language, now=now
    )
    _record_read(service, email, "participant", "portal", case_id)
    documents = service.documents.case_documents(f"#{case_id}", roles=view.roles)
    return [view, documents]


# ----------------------------------------------------------------------------- servers


def console_server(url: str, log: Path, now: dt.datetime = NOW, threads: int = 40) -> Server:
    """``dk2020flow serve`` on ``url`` (the console and the portal), its clock at ``now``."""
    argv = [sys.executable, "-c", CLI, "serve", "--db", url, "--now", now.isoformat()]
    return Server([*argv, "--threads", str(threads)], url, log)


def bare_server(url: str, log: Path, threads: int = 40) -> Server:
    """The bare app, with as many threads as the console's."""
    script = str(Path(__file__).resolve())
    argv = [sys.executable, script, "bare", "--db", url, "--threads", str(threads)]
    return Server(argv, url, log)


# ----------------------------------------------------------------------------- the benchmark


PAGES: dict[str, str] = {
    "overview": "GET /",
    "cases page": f"GET /cases?{CASES_QUERY}",
    "case page": "GET /cases/%23{id} (random cases, 20 clients)",
}


def _paths(page: str, case_ids: list[int], seed: int) -> list[list[str]]:
    """Each client's requests, sent in turn for as long as the pass lasts."""
    rng = random.Random(seed)
    if page == "overview":
        return [["/"] for _ in range(CLIENTS)]
    if page == "cases page":
        return [[f"/cases?{CASES_QUERY}"] for _ in range(CLIENTS)]
    return [[f"/cases/%23{rng.choice(case_ids)}" for _ in range(50)] for _ in range(CLIENTS)]


def measure(
    url: str, backend: str, n_cases: int, seconds: float, work: Path, threads: int = 40
) -> list[Result]:
    """Both servers on ``url`` (``threads`` each); p50/p95 of each page, and the ratios."""
    token = sign_in_token(url)
    console = console_server(url, work / f"console-{backend}.log", threads=threads)
    bare = bare_server(url, work / f"bare-{backend}.log", threads=threads)
    try:
        console.wait_ready("/healthz")
        bare.wait_ready("/")
        # The 98 template cases and 90 clones spread over the rest.
        case_ids = list(range(1, 99)) + list(range(99, n_cases + 1, max(1, n_cases // 90)))
        samples: dict[tuple[str, str], list[float]] = {}
        problems: list[str] = []
        client = "?"
        # Two passes over both servers, page by page, alternating: the first warms
        # caches and connection pools and is not counted.
        for pass_ in range(3):
            for page in PAGES:
                for name, server in (("console", console), ("bare", bare)):
                    length = WARM_SECONDS if pass_ == 0 else seconds
                    got = load(server.base, _paths(page, case_ids, pass_), token, length)
                    client = got.client
                    bad = {code: n for code, n in got.statuses.items() if code != 200}
                    if bad:
                        problems.append(f"{name} {page}: status {bad}")
                    if pass_ > 0:
                        samples.setdefault((page, name), []).extend(got.latencies)
    finally:
        console.stop()
        bare.stop()
    load_average = os.getloadavg()[0]
    results: list[Result] = []
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend]
    note_bad = "; ".join(problems)[:300]
    for page, what in PAGES.items():
        for name in ("console", "bare"):
            values = samples[(page, name)]
            for p in (50, 95):
                results.append(
                    Result(
                        section=SECTION,
                        name=f"{name} {page}, {label}, p{p}",
                        value=percentile(values, p) * 1000,
                        unit="ms",
                        note=note_bad
                        or f"{what}: {len(values)} requests, {CLIENTS} {client} clients, "
                        f"{threads} threads, "
                        f"load average {load_average:.1f}",
                        status="ok",
                    )
                )
        for p in (50, 95):
            top = percentile(samples[(page, "console")], p)
            bottom = percentile(samples[(page, "bare")], p)
            results.append(
                Result(
                    section=SECTION,
                    name=f"console / bare {page}, {label}, p{p}",
                    value=top / bottom,
                    unit="x",
                    note="target: within 2x" if p == 95 else "",
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
    """The console on ``n_cases`` cases, SQLite and PostgreSQL (``backends``)."""
    results: list[Result] = []
    if "sqlite" in backends:
        url = work.sqlite("web")
        with phase(f"web: {n_cases:,} DK2020 cases, SQLite"):
            build_programme(url, n_cases)
        with phase("web: console and bare handler, SQLite"):
            results += measure(url, "sqlite", n_cases, seconds, work.path, threads)
    if "postgresql" not in backends:
        return results
    if pg_reason is not None:
        return [*results, unavailable(SECTION, "console on PostgreSQL", "ms", pg_reason)]
    pg = fresh_pg(f"web_{os.getpid()}")
    try:
        with phase(f"web: {n_cases:,} DK2020 cases, PostgreSQL"):
            build_programme(pg, n_cases)
        with phase("web: console and bare handler, PostgreSQL"):
            results += measure(pg, "postgresql", n_cases, seconds, work.path, threads)
    finally:
        drop_pg(pg)
    return results


def _serve_bare(db: str, port: int, threads: int) -> None:
    import uvicorn

    app = bare_app(db, threads)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    bare = sub.add_parser("bare", help="serve the bare Starlette app (used by the bench)")
    bare.add_argument("--db", required=True)
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--threads", type=int, default=40)
    sub.add_parser("run", help="run this section alone (the default)")
    for target in (parser, sub.choices["run"]):
        target.add_argument("--cases", type=int, default=100_000)
        target.add_argument(
            "--seconds", type=float, default=10.0, help="of load per page, server and pass"
        )
        target.add_argument(
            "--threads", type=int, default=40, help="of each server (serve --threads)"
        )
        target.add_argument(
            "--db", choices=("sqlite", "postgresql", "both"), default="both", dest="backend"
        )
    args = parser.parse_args(argv)
    if args.command == "bare":
        _serve_bare(args.db, args.port, args.threads)
        return 0
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


_: Callable[..., object] = main

if __name__ == "__main__":
    sys.exit(main())
