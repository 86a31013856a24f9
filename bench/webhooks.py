"""Benchmark 10 (opt-in): webhook deliveries per second to a local HTTP receiver.

The deliveries are queued by real firings (``fire_due`` of the bench workflow: every firing
is a ``case.state_changed`` notice for one subscription), then the daemon's webhook loop
(``WebhookWorker.run_due``) sends them to a receiver in its own process on this machine
(the standard library's ``ThreadingHTTPServer``, HTTP/1.1, answering 204): once over kept-
alive connections (what the daemon does), once with a new connection per delivery. Beside
it, the cost of queueing the notices: the same firings with no subscription.

    python bench/run.py --only webhooks
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from typing import Any

from common import Result, Workdir, free_port, phase, wait_until
from sqlalchemy import update
from workload import FIRE_AT, prepare

SECTION = "10. webhooks"
UNIT = "deliveries/s"

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _fire_all(url: str, subscribe: str | None) -> tuple[int, float]:
    """Fire every due timer (with ``subscribe`` as the one subscription); (fired, seconds)."""
    from dk2020flow.clock import ManualClock
    from dk2020flow.service import Service
    from dk2020flow.store.repository import SqlStore

    store = SqlStore(url)
    service = Service(store, clock=ManualClock(FIRE_AT))
    try:
        if subscribe is not None:
            service.webhooks.add(subscribe, "case.state_changed", created_by="bench")
        service.next_due_at()  # connect and check the schema before the clock starts
        fired = 0
        start = time.perf_counter()
        while (done := service.fire_due(FIRE_AT)).total:
            fired += done.fired
        return fired, time.perf_counter() - start
    finally:
        store.close()


def _requeue(url: str) -> None:
    from dk2020flow.store import tables as t
    from dk2020flow.store.repository import SqlStore

    store = SqlStore(url)
    try:
        with store.engine.begin() as conn:
            conn.execute(
                update(t.webhook_deliveries).values(
                    status="pending",
                    attempts=0,
                    sent_at=None,
                    lease_until=None,
                    next_attempt_at=FIRE_AT,
                )
            )
    finally:
        store.close()


class _ConnectionPerDelivery:
    """The naive way: a new connection for every POST (the poster's pool emptied each time)."""

    def __init__(self, timeout: float) -> None:
        from dk2020flow.runtime.webhooks import HttpPoster

        self.inner = HttpPoster(timeout)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Any:
        try:
            return self.inner.post(url, body, headers)
        finally:
            self.inner.close()

    def close(self) -> None:
        self.inner.close()


def _drain(url: str, poster: Any) -> tuple[int, float]:
    """The daemon's webhook loop until nothing is due; (sent, seconds)."""
    from dk2020flow.clock import ManualClock
    from dk2020flow.runtime.webhooks import WebhookSettings, WebhookWorker
    from dk2020flow.store.repository import SqlStore

    store = SqlStore(url)
    worker = WebhookWorker(
        store,
        clock=ManualClock(FIRE_AT),
        settings=WebhookSettings(),
        rng=random.Random(1),
        poster=poster,
    )
    try:
        start = time.perf_counter()
        result = worker.run_due()
        return result.sent, time.perf_counter() - start
    finally:
        worker.close()
        store.close()


def run(work: Workdir, n: int) -> list[Result]:
    from dk2020flow.runtime.webhooks import HttpPoster

    port = free_port()
    target = f"http://127.0.0.1:{port}/hooks"
    results: list[Result] = []
    with phase(f"webhooks: {n} firings without a subscription and with one, twice each"):
        # Alternated, the best of two each: the first run also pays for warming up.
        bare_rates: list[float] = []
        rates_with: list[float] = []
        for round_ in range(2):
            bare = work.sqlite(f"webhooks-bare-{round_}")
            prepare(bare, n)
            fired_bare, seconds_bare = _fire_all(bare, None)
            bare_rates.append(fired_bare / seconds_bare)
            url = work.sqlite(f"webhooks-{round_}")
            prepare(url, n)
            fired, seconds = _fire_all(url, target)
            rates_with.append(fired / seconds)
    results.append(
        Result(
            section=SECTION,
            name="fire_due, no subscription",
            value=max(bare_rates),
            unit="firings/s",
        )
    )
    results.append(
        Result(
            section=SECTION,
            name="fire_due, one subscription (a notice per firing queued)",
            value=max(rates_with),
            unit="firings/s",
            note=f"{max(rates_with) / max(bare_rates):.2f} x the rate without",
        )
    )
    server = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_until(lambda: _port_open(port), timeout=20):
            raise RuntimeError("the HTTP receiver did not start")
        rates: dict[str, float] = {}
        for label, poster in (
            ("kept-alive connection (the daemon's WebhookWorker)", HttpPoster(10.0)),
            ("one connection per delivery", _ConnectionPerDelivery(10.0)),
        ):
            _requeue(url)
            with phase(f"webhooks: {label}"):
                sent, seconds = _drain(url, poster)
            rates[label] = sent / seconds
            note = "" if sent == fired else f"only {sent} of {fired} sent"
            if label.startswith("one") and rates:
                first = next(iter(rates.values()))
                note = (note + "; " if note else "") + f"kept-alive is {first / rates[label]:.2f} x"
            results.append(
                Result(
                    section=SECTION,
                    name=f"webhooks, {label}",
                    value=rates[label],
                    unit=UNIT,
                    note=note,
                )
            )
    finally:
        server.terminate()
        server.wait(10)
    return results
