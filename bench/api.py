"""Benchmark 9: the REST API's throughput on PostgreSQL with two web workers, beside the
same work through the service in-process.

    python bench/run.py --only api
    python bench/api.py run --cases 5000 --seconds 5     # this section alone

The programme is bench/web.py's (the DK2020 workflow, 98 cases moved on into six states,
cloned to ``--cases``). ``dk2020flow serve --workers 2`` serves it (the rate limit raised
out of the way); ``CLIENTS`` client threads with keep-alive connections and a real token
(``Service.tokens.create``) send, for ``--seconds`` each:

- *cases list*: ``GET /api/v1/cases?state=decided&limit=50`` (a keyset page);
- *case*: ``GET /api/v1/cases/{id}`` of random cases (fields, deadlines, checklists …);
- *fire*: ``POST /api/v1/cases/{id}/triggers/decide_decline`` on invited cases, each once.

The same work in-process is the service calls those routes make (``web/api/reads.py``,
``casepage.case_page``, ``Service.fire``), from as many threads, on the same database. The
figure is the ratio API / in-process of requests (or calls) per second: what HTTP,
JSON, authentication and the workers cost or win (two processes against one GIL).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, Workdir, drop_pg, fresh_pg, phase, unavailable, wait_until

from web import NOW, Server, build_programme

SECTION = "9. api"
CLIENTS = 8
CLI = "from dk2020flow.cli import main; main()"


def _token(url: str) -> str:
    from dk2020flow.clock import ShiftedClock
    from dk2020flow.service.core import open_service
    from dk2020flow.settings import load_settings

    with open_service(url, clock=ShiftedClock(NOW), settings=load_settings()) as service:
        made = service.tokens.create(
            f"bench-{os.getpid()}-{time.monotonic_ns()}",
            ["secretariat", "follow_up"],
            created_by="bench",
        )
        return made.secret


def _invited(url: str) -> list[int]:
    from dk2020flow.clock import ShiftedClock
    from dk2020flow.service.core import open_service
    from dk2020flow.settings import load_settings
    from dk2020flow.store.port import CaseFilter

    with open_service(url, clock=ShiftedClock(NOW), settings=load_settings()) as service:
        return sorted(c.id or 0 for c in service.cases(CaseFilter(state="invited")))


def _wait_ready(server: Server, timeout: float = 120.0) -> None:
    import httpx2 as httpx

    def up() -> bool:
        if server.proc.poll() is not None:
            return True
        try:
            httpx.get(server.base + "/healthz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return True

    wait_until(up, timeout, interval=0.2)
    if server.proc.poll() is not None:
        raise RuntimeError(f"the server exited: {server.tail()}")


IDLE = object()
"""What a client's work returns when it has nothing left to do (its share of cases)."""


def _drive(work: Callable[[int, int], object], seconds: float) -> tuple[int, float, int]:
    """``CLIENTS`` threads calling ``work(client, n)`` until ``seconds`` pass or each has
    nothing left; (calls, seconds taken, failures)."""
    counts = [0] * CLIENTS
    failures = [0] * CLIENTS
    barrier = threading.Barrier(CLIENTS + 1)
    stop_at = [0.0]

    def client(index: int) -> None:
        barrier.wait()
        n = 0
        while time.perf_counter() < stop_at[0]:
            try:
                done = work(index, n)
            except Exception:
                done = False
            if done is IDLE:
                break  # this client has nothing left to do
            if done is False:
                failures[index] += 1
            n += 1
        counts[index] = n

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    stop_at[0] = start + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - start, sum(failures)


def _over_http(
    base: str, secret: str, case_ids: list[int], invited: list[int], seconds: float
) -> dict[str, tuple[int, float, int]]:
    import httpx2 as httpx

    headers = {"Authorization": f"Bearer {secret}"}
    clients = [httpx.Client(base_url=base, headers=headers, timeout=60.0) for _ in range(CLIENTS)]
    rng = [random.Random(i) for i in range(CLIENTS)]
    share = [invited[i::CLIENTS] for i in range(CLIENTS)]
    try:
        for client in clients:
            client.get("/api/v1/workflows")  # open the connection, warm the worker

        def cases(i: int, _n: int) -> bool:
            return clients[i].get("/api/v1/cases?state=decided&limit=50").status_code == 200

        def case(i: int, _n: int) -> bool:
            url = f"/api/v1/cases/{rng[i].choice(case_ids)}"
            return clients[i].get(url).status_code == 200

        def fire(i: int, n: int) -> object:
            if n >= len(share[i]):
                return IDLE
            answer = clients[i].post(
                f"/api/v1/cases/{share[i][n]}/triggers/decide_decline",
                json={"data": {"decision_date": "2021-11-20"}},
            )
            return answer.status_code == 200

        return {
            "cases list": _drive(cases, seconds),
            "case": _drive(case, seconds),
            "fire": _drive(fire, seconds),
        }
    finally:
        for client in clients:
            client.close()


def _in_process(
    url: str, case_ids: list[int], invited: list[int], seconds: float
) -> dict[str, tuple[int, float, int]]:
    from dk2020flow.clock import ShiftedClock
    from dk2020flow.service.casepage import case_page
    from dk2020flow.service.core import open_service
    from dk2020flow.settings import load_settings
    from dk2020flow.store.port import CaseSort
    from dk2020flow.web.api import reads

    clock = ShiftedClock(NOW)
    rng = [random.Random(100 + i) for i in range(CLIENTS)]
    share = [invited[i::CLIENTS] for i in range(CLIENTS)]
    with open_service(url, clock=clock, settings=load_settings(), pool_size=CLIENTS) as service:
        service.tokens.authenticate("dkf_warm-up", clock.now())

        def cases(_i: int, _n: int) -> object:
            reads.filter_choices(service, None)
            return reads.case_keyset_page(
                service,
                workflow=None,
                now=clock.now(),
                state="decided",
                cohort=None,
                region=None,
                late=None,
                search="",
                sort=CaseSort.ORGANISATION,
                descending=False,
                limit=50,
                after=None,
            )

        def case(i: int, _n: int) -> object:
            ref = f"#{rng[i].choice(case_ids)}"
            page = case_page(service, ref, roles=("secretariat",), language="en", now=clock.now())
            return service.documents.case_documents(ref, roles=("secretariat",)), page

        def fire(i: int, n: int) -> object:
            if n >= len(share[i]):
                return IDLE
            return service.fire(
                f"#{share[i][n]}",
                "decide_decline",
                actor="bench",
                role="follow_up",
                data={"decision_date": "2021-11-20"},
            )

        return {
            "cases list": _drive(cases, seconds),
            "case": _drive(case, seconds),
            "fire": _drive(fire, seconds),
        }


def measure(url: str, n_cases: int, seconds: float, work: Path) -> list[Result]:
    invited = _invited(url)
    half = len(invited) // 2
    case_ids = list(range(1, min(n_cases, 5000) + 1))
    secret = _token(url)
    server = Server(
        [
            sys.executable,
            "-c",
            CLI,
            "serve",
            "--db",
            url,
            "--workers",
            "2",
            "--now",
            NOW.isoformat(),
        ],
        url,
        work / "api-serve.log",
    )
    try:
        _wait_ready(server)
        api = _over_http(server.base, secret, case_ids, invited[:half], seconds)
    finally:
        server.stop()
    local = _in_process(url, case_ids, invited[half:], seconds)
    results: list[Result] = []
    for name in ("cases list", "case", "fire"):
        calls, taken, bad = api[name]
        done, spent, failed_calls = local[name]
        http_rate = (calls - bad) / taken
        local_rate = (done - failed_calls) / spent
        note = f"{CLIENTS} clients, {taken:.1f} s" + (f"; {bad} failed" if bad else "")
        if name == "fire":
            note += f"; {half} invited cases, each fired once"
        results += [
            Result(
                section=SECTION,
                name=f"API {name}, PostgreSQL, 2 workers",
                value=http_rate,
                unit="req/s",
                note=note,
            ),
            Result(
                section=SECTION,
                name=f"service {name}, PostgreSQL, in-process",
                value=local_rate,
                unit="calls/s",
                note=f"{CLIENTS} threads" + (f"; {failed_calls} failed" if failed_calls else ""),
            ),
            Result(
                section=SECTION,
                name=f"API / service {name}",
                value=http_rate / local_rate if local_rate else None,
                unit="x",
            ),
        ]
    return results


def run(work: Workdir, n_cases: int, seconds: float, pg_reason: str | None) -> list[Result]:
    if pg_reason is not None:
        return [unavailable(SECTION, "API on PostgreSQL", "req/s", pg_reason)]
    os.environ["DK2020FLOW_API_RATE_LIMIT"] = "1000000"
    pg = fresh_pg(f"api_{os.getpid()}")
    try:
        with phase(f"api: {n_cases:,} DK2020 cases, PostgreSQL"):
            build_programme(pg, n_cases)
        with phase("api: over HTTP (2 workers) and in-process"):
            os.environ["DK2020FLOW_API_RATE_LIMIT"] = "1000000"
            return measure(pg, n_cases, seconds, work.path)
    finally:
        os.environ.pop("DK2020FLOW_API_RATE_LIMIT", None)
        drop_pg(pg)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    alone = sub.add_parser("run", help="run this section alone")
    alone.add_argument("--cases", type=int, default=5000)
    alone.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    from common import pg_available

    work = Workdir()
    try:
        found = run(work, args.cases, args.seconds, pg_available())
    finally:
        work.cleanup()
    for result in found:
        shown = "–" if result.value is None else f"{result.value:.3g}"
        print(f"{result.name}: {shown} {result.unit} {result.note}")
    return 0


_: Callable[..., Any] = main

if __name__ == "__main__":
    sys.exit(main())
