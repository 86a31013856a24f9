"""Webhook delivery to a real HTTP receiver on loopback (the standard library's
``ThreadingHTTPServer``, HTTP/1.1 with kept-alive connections), driven by a ManualClock:
nothing here sleeps on a back-off."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.errors import PreconditionFailedError, RefusedError
from dk2020flow.runtime.daemon import Daemon
from dk2020flow.runtime.webhooks import WebhookSettings, WebhookWorker
from dk2020flow.service import Service
from dk2020flow.service.tokens import Idempotency
from dk2020flow.settings import Settings
from dk2020flow.store.port import WEBHOOK_EVENT_TYPES, WebhookStatus
from dk2020flow.store.repository import SqlStore

from .conftest import T0, LogWatch, log_actions

MINI = Path(__file__).parents[2] / "data" / "mini" / "workflows" / "mini.yaml"
LATER = dt.timedelta(hours=7)
"""Past any back-off of the first attempts (the cap is 6 hours)."""


# ------------------------------------------------------------------------ the receiver


@dataclass(frozen=True)
class Seen:
    """One request as the receiver got it."""

    delivery_id: str
    timestamp: str
    signature: str
    body: bytes
    client_port: int


class Receiver:
    """A real HTTP server on loopback: records each POST and answers ``answer``."""

    def __init__(self, port: int = 0) -> None:
        self.answer = 200
        self.seen: list[Seen] = []
        self.hold: Callable[[Seen], None] | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as receivers do
            timeout = 30

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                seen = Seen(
                    delivery_id=self.headers["webhook-id"],
                    timestamp=self.headers["webhook-timestamp"],
                    signature=self.headers["webhook-signature"],
                    body=body,
                    client_port=self.client_address[1],
                )
                with receiver._lock:
                    receiver.seen.append(seen)
                if receiver.hold is not None:
                    receiver.hold(seen)
                status = receiver.answer
                text = b"" if status < 300 else b"try again later"
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/dk2020"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # joins the request threads (their clients closed first)
        self._thread.join()


def closed_port() -> int:
    """A loopback port nobody listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def verified(secret: str, seen: Seen) -> bool:
    """The receiver's check, as docs/webhooks.md shows it."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{seen.delivery_id}.{seen.timestamp}.".encode() + seen.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(expected, given.removeprefix("v1,"))
        for given in seen.signature.split()
        if given.startswith("v1,")
    )


# ------------------------------------------------------------------------ fixtures


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def service(db_url: str, clock: ManualClock) -> Iterator[Service]:
    store = SqlStore(db_url)
    service = Service(store, clock=clock, settings=Settings())
    service.load_workflow(MINI)
    try:
        yield service
    finally:
        store.close()


@pytest.fixture
def workers() -> Iterator[Callable[..., WebhookWorker]]:
    """Makes webhook workers; closes them (their connections) at the end."""
    made: list[WebhookWorker] = []

    def make(service: Service, **settings: Any) -> WebhookWorker:
        worker = WebhookWorker(
            service.store,
            clock=service.clock,
            settings=WebhookSettings(**settings),
            rng=random.Random(7),
        )
        made.append(worker)
        return worker

    try:
        yield make
    finally:
        for worker in made:
            worker.close()


def _statuses(service: Service) -> Counter[WebhookStatus]:
    return Counter(d.status for d in service.webhooks.deliveries(limit=1000))


def _changes(service: Service, clock: ManualClock) -> None:
    """Changes of every kind through the service; the notices they give are
    ``EXPECTED``."""
    for code in ("751", "461", "101"):
        service.open_case("mini", code, actor="test", role="secretariat")
    service.set_data("#1", {"note": "Ærø"}, actor="test", role="secretariat")
    service.extend(
        "#2",
        "submit_by",
        actor="test",
        role="secretariat",
        reason="more time",
        to=T0 + dt.timedelta(days=20),
    )
    service.fire("#3", "submit", actor="anne", role="contact_person", comment="here it is")
    with pytest.raises(RefusedError):  # logged as a refusal: no notice
        service.fire("#2", "accept", actor="anne", role="contact_person")
    clock.advance(dt.timedelta(days=11))
    # The daemon's dispatch (the store's bulk path): #1 expires, #3 is accepted.
    while service.fire_due(clock.now()).total:
        pass


EXPECTED = Counter(
    {
        "case.opened": 3,
        "case.data_changed": 1,
        "case.deadline_extended": 1,
        "case.state_changed": 3,
        "case.closed": 2,
    }
)


# ------------------------------------------------------------------------ tests


def test_receiver_down_then_failing_then_up_loses_nothing(
    service: Service, clock: ManualClock, workers: Callable[..., WebhookWorker]
) -> None:
    port = closed_port()
    created = service.webhooks.add(
        f"http://127.0.0.1:{port}/hooks/dk2020",
        list(WEBHOOK_EVENT_TYPES),
        created_by="test",
    )
    _changes(service, clock)
    queued = {d.delivery_id: d for d in service.webhooks.deliveries()}
    assert Counter(d.event_type for d in queued.values()) == EXPECTED
    worker = workers(service)

    # 1. Nobody listens: every delivery waits for its next attempt, none is lost.
    result = worker.run_due()
    assert (result.claimed, result.retried, result.sent) == (10, 10, 0)
    down = service.webhooks.deliveries()
    assert all(d.status is WebhookStatus.PENDING and d.attempts == 1 for d in down)
    assert all(f"cannot connect to 127.0.0.1:{port}" in d.last_error for d in down)
    assert all(d.last_status is None and d.next_attempt_at > clock.now() for d in down)
    assert worker.run_due().claimed == 0  # not before their back-off

    receiver = Receiver(port)
    try:
        # 2. It answers 500: retried again, the status kept.
        receiver.answer = 500
        clock.advance(LATER)
        assert worker.run_due().retried == 10
        failing = service.webhooks.deliveries()
        assert all((d.attempts, d.last_status) == (2, 500) for d in failing)
        assert all(
            d.last_error == "HTTP 500 Internal Server Error: try again later" for d in failing
        )
        # 3. It answers 200: all sent.
        receiver.answer = 200
        clock.advance(LATER)
        assert worker.run_due().sent == 10
        before_up = len(receiver.seen) - 10
    finally:
        worker.close()
        receiver.stop()
    assert _statuses(service) == {WebhookStatus.SENT: 10}
    assert all(d.last_status == 200 and d.attempts == 3 for d in service.webhooks.deliveries())
    # Every delivery arrived (twice: at 500 and at 200), each time byte for byte the body
    # queued, signed with the subscription's secret; de-duplicated on the id they are
    # exactly the notices of the changes.
    assert len(receiver.seen) == 20
    assert Counter(s.delivery_id for s in receiver.seen) == dict.fromkeys(queued, 2)
    assert all(verified(created.secret, s) for s in receiver.seen)
    assert all(s.body == queued[s.delivery_id].body.encode() for s in receiver.seen)
    unique = {s.delivery_id: json.loads(s.body) for s in receiver.seen}
    assert Counter(body["type"] for body in unique.values()) == EXPECTED
    assert all(body["id"] == delivery_id for delivery_id, body in unique.items())
    events = {(b["case"]["id"], b["event"]["seq"], b["type"]) for b in unique.values()}
    assert len(events) == 10
    # One kept-alive connection carried each pass's requests.
    assert len({s.client_port for s in receiver.seen[:before_up]}) == 1
    assert len({s.client_port for s in receiver.seen[before_up:]}) == 1
    closed = [b for b in unique.values() if b["type"] == "case.closed"]
    assert sorted(b["case"]["state"] for b in closed) == ["accepted", "expired"]


def test_no_delivery_for_a_change_that_did_not_happen(
    service: Service, workers: Callable[..., WebhookWorker]
) -> None:
    receiver = Receiver()
    worker = workers(service)
    token = service.tokens.create("robot", ["secretariat"], created_by="test").token

    def fail(_case: object) -> tuple[int, dict[str, Any]]:
        # Runs in the change's transaction, after its events (and notices) were written.
        raise RuntimeError("the answer could not be made: the change is rolled back")

    try:
        service.webhooks.add(receiver.url, list(WEBHOOK_EVENT_TYPES), created_by="test")
        service.open_case("mini", "751", actor="test", role="secretariat")
        with pytest.raises(RuntimeError, match="rolled back"):
            service.fire_idempotent(
                "#1",
                "submit",
                idempotency=Idempotency(token.id, "key-1", "fingerprint", fail),
                actor="anne",
                role="contact_person",
            )
        with pytest.raises(RefusedError):
            service.fire("#1", "accept", actor="x", role="contact_person")
        with pytest.raises(PreconditionFailedError):
            service.set_data("#1", {"note": "x"}, actor="t", role="secretariat", expected_version=9)
        worker.run_due()
    finally:
        worker.close()
        receiver.stop()
    assert service.case("#1").state == "draft"
    assert [json.loads(s.body)["type"] for s in receiver.seen] == ["case.opened"]
    assert [d.event_type for d in service.webhooks.deliveries()] == ["case.opened"]


def test_dead_after_the_last_attempt_then_retried(
    service: Service, clock: ManualClock, workers: Callable[..., WebhookWorker]
) -> None:
    receiver = Receiver()
    worker = workers(service, webhook_max_attempts=3)
    try:
        receiver.answer = 503
        service.webhooks.add(receiver.url, "case.opened", created_by="test")
        service.open_case("mini", "751", actor="test", role="secretariat")
        for _ in range(3):
            worker.run_due()
            clock.advance(LATER)
        (dead,) = service.webhooks.deliveries(status=WebhookStatus.DEAD)
        assert (dead.attempts, dead.last_status) == (3, 503)
        assert dead.last_error.startswith("gave up after 3 attempts; last error: HTTP 503")
        assert worker.run_due().claimed == 0  # a dead letter is not sent again by itself
        health = service.scheduler_health(
            now=clock.now(), wall_now=clock.now(), stale_seconds=60, overdue_minutes=10
        )
        assert health.webhooks == {"pending": 0, "sent": 0, "dead": 1}
        assert any("1 dead webhook delivery" in reason for reason in health.reasons)
        back = service.webhooks.retry(dead.delivery_id)
        assert (back.status, back.attempts) == (WebhookStatus.PENDING, 0)
        receiver.answer = 204
        assert worker.run_due().sent == 1
    finally:
        worker.close()
        receiver.stop()
    assert [s.delivery_id for s in receiver.seen] == [dead.delivery_id] * 4
    assert len({s.body for s in receiver.seen}) == 1
    (sent,) = service.webhooks.deliveries()
    assert (sent.status, sent.attempts, sent.last_status) == (WebhookStatus.SENT, 1, 204)


def test_a_lease_that_ran_out_is_sent_again_with_the_same_id(
    service: Service, clock: ManualClock, workers: Callable[..., WebhookWorker]
) -> None:
    receiver = Receiver()
    worker = workers(service, webhook_lease_seconds=60)
    try:
        service.webhooks.add(receiver.url, "case.opened", created_by="test")
        service.open_case("mini", "751", actor="test", role="secretariat")
        with service.store.transaction() as tx:  # a daemon that claimed it, then died
            (claimed,) = tx.claim_webhooks(clock.now(), 10, clock.now() + dt.timedelta(seconds=60))
        assert worker.run_due().claimed == 0
        clock.advance(dt.timedelta(seconds=60))
        assert worker.run_due().sent == 1
    finally:
        worker.close()
        receiver.stop()
    assert [s.delivery_id for s in receiver.seen] == [claimed.delivery.delivery_id]
    (sent,) = service.webhooks.deliveries()
    assert (sent.status, sent.attempts) == (WebhookStatus.SENT, 2)


@pytest.mark.postgres
def test_two_daemons_never_send_one_delivery_at_the_same_time(
    pg_url: str, clock: ManualClock, workers: Callable[..., WebhookWorker]
) -> None:
    stores = [SqlStore(pg_url), SqlStore(pg_url)]
    services = [Service(store, clock=clock, settings=Settings()) for store in stores]
    first = services[0]
    first.load_workflow(MINI)
    receiver = Receiver()
    in_flight: set[str] = set()
    overlaps: list[str] = []
    meet = threading.Barrier(2, timeout=60)
    firsts: set[int] = set()
    lock = threading.Lock()

    def hold(seen: Seen) -> None:
        with lock:
            if seen.delivery_id in in_flight:
                overlaps.append(seen.delivery_id)
            in_flight.add(seen.delivery_id)
            new_connection = seen.client_port not in firsts
            firsts.add(seen.client_port)
        if new_connection:
            meet.wait()  # both daemons are sending at the same time
        with lock:
            in_flight.discard(seen.delivery_id)

    receiver.hold = hold
    try:
        first.webhooks.add(receiver.url, "case.opened", created_by="test")
        with first.store.read() as tx:
            codes = [m.code for m in tx.organisations()[:40]]
        for code in codes:
            first.open_case("mini", code, actor="test", role="secretariat")
        pair = [workers(s, webhook_batch_size=5, webhook_concurrency=1) for s in services]
        results: list[Any] = [None, None]

        def run(n: int) -> None:
            results[n] = pair[n].run_due()

        threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        for worker in pair:
            worker.close()
    finally:
        receiver.stop()
        for store in stores:
            store.close()
    assert overlaps == []
    assert len(firsts) == 2  # two connections: one per daemon, and they met
    assert all(result is not None and result.sent > 0 for result in results)
    assert sum(result.sent for result in results) == 40
    counts = Counter(s.delivery_id for s in receiver.seen)
    assert len(counts) == 40 and set(counts.values()) == {1}


def test_the_daemon_delivers_in_its_own_loop_and_stops(
    sqlite_url: str, clock: ManualClock, log_watch: LogWatch, tmp_path: Path
) -> None:
    from dk2020flow.notify.transports import FolderTransport

    store = SqlStore(sqlite_url)
    service = Service(store, clock=clock, settings=Settings())
    service.load_workflow(MINI)
    receiver = Receiver()
    daemon = Daemon(
        service,
        FolderTransport(tmp_path / "mail"),
        clock=clock,
        settings=Settings(sweep_seconds=3600),
        sender=("Mini", "mini@example.dk"),
    )
    runner = threading.Thread(target=daemon.run)
    try:
        service.webhooks.add(receiver.url, "case.opened,case.closed", created_by="test")
        for code in ("751", "461"):
            service.open_case("mini", code, actor="test", role="secretariat")
        runner.start()
        log_watch.wait_for(
            lambda records: sum(r["sent"] for r in log_actions(records, "webhooks")) == 2,
            "the two notices sent",
        )
        # The first pass has armed its next wake-up (as test_daemon.py waits for it).
        log_watch.wait_for(
            lambda records: (
                bool(log_actions(records, "tick"))
                and _first(records, "tick") < _last(records, "armed")
            ),
            "the daemon's first pass and the wake-up it arms",
        )
        # A dispatch that closes cases wakes the webhook loop (not its hourly sweep).
        clock.advance(dt.timedelta(days=11))
        daemon.wake()
        log_watch.wait_for(
            lambda records: sum(r["sent"] for r in log_actions(records, "webhooks")) == 4,
            "the two case.closed notices sent",
        )
    finally:
        daemon.stop()
        runner.join(timeout=60)
        receiver.stop()
        store.close()
    assert not runner.is_alive()
    types = sorted(json.loads(s.body)["type"] for s in receiver.seen)
    assert types == ["case.closed", "case.closed", "case.opened", "case.opened"]
    assert daemon.info().stats["webhooks_sent"] == 4


def _first(records: list[dict[str, Any]], action: str) -> int:
    return next(n for n, r in enumerate(records) if r.get("action") == action)


def _last(records: list[dict[str, Any]], action: str) -> int:
    found = [n for n, r in enumerate(records) if r.get("action") == action]
    return found[-1] if found else -1
